"""Tra cứu hồ sơ: what proves the right to look a dossier up, and what the citizen is shown (plain Python).

A dossier code is public knowledge (printed on papers, read out at the desk), so it opens nothing alone.
The proof is the receipt's **secret**, made at filing, printed on Form 01 and in its QR code, and stored
only as an HMAC under the server's key (a leaked table alone does not give the secrets back); or the
applicant's **identity number**, compared the same way. Every comparison is of two HMACs, in constant
time, and is made even when there is nothing to compare with (an unknown code), so a wrong secret and an
unknown code cost the same and are answered the same. Wrong guesses for a code lock it for a while.

The view shows the dossier's progress, never the applicant: no name, identity number, phone or address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from services.dossier.domain.model import Action, Dossier
from shared.auth import LOOKUP_DEVELOPMENT_KEY
from shared.units import UnitRegistry, UnknownUnit
from shared.vocabulary import FINAL, ReturnMethod, Status

# No 0/O, 1/I/L: what is read aloud at the desk or typed from paper cannot be mistaken.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SECRET_LENGTH = 8  # 31^8 ≈ 2^39.6; with the lock-out, a few hundred guesses a day per code at most
PAGE_PATH = "/tra-cuu"
REFUSAL = (
    "Không tìm thấy hồ sơ với mã hồ sơ và thông tin xác minh này (no dossier with this code and proof). "
    "Kiểm tra lại mã trên Giấy tiếp nhận; sau nhiều lần nhập sai, hãy thử lại sau ít phút."
)
# Development only (dependencies.py refuses it elsewhere): anyone can read it (shared/auth.py).
DEVELOPMENT_KEY = LOOKUP_DEVELOPMENT_KEY
_NOTHING = hashlib.sha256(b"motcua: nothing to compare with").hexdigest()


@dataclass(frozen=True)
class LookupSettings:
    """The server's HMAC key and the lock-out: ``max_failures`` wrong guesses lock a code for ``lock``."""

    key: bytes
    max_failures: int = 5
    lock: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Guesses:
    """A code's row: the secret's HMAC (None: no secret issued) and its wrong guesses."""

    secret_hmac: str | None = None
    failures: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def new_secret() -> str:
    """A fresh secret of :data:`SECRET_LENGTH` characters of :data:`ALPHABET` (from the OS's CSPRNG)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))


def printed(secret: str) -> str:
    """As printed and read aloud: two groups of four (``ABCD-EFGH``)."""
    return f"{secret[:4]}-{secret[4:]}"


def normalised_secret(text: str) -> str:
    """What the citizen typed, as stored: capitals, without spaces or hyphens."""
    return "".join(text.split()).replace("-", "").upper()


def digest(key: bytes, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` for ``purpose`` (``secret`` or ``id_number``: one never matches the other)."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def same(expected: str | None, given: str) -> bool:
    """Constant-time equality of two HMACs; with nothing expected, the same work and False."""
    return hmac.compare_digest(expected or _NOTHING, given) and expected is not None


def proven(
    settings: LookupSettings,
    guesses: Guesses | None,
    dossier: Dossier | None,
    *,
    secret: str | None,
    id_number: str | None,
) -> bool:
    """Whether ``secret`` (or ``id_number``) proves the right to look at ``dossier``; the same work
    whichever of the dossier, its secret or the proof is missing."""
    if secret is not None:
        expected = guesses.secret_hmac if guesses is not None else None
        return same(expected, digest(settings.key, "secret", normalised_secret(secret)))
    given = digest(settings.key, "id_number", (id_number or "").strip())
    stored = dossier.applicant.get("id_number") if dossier is not None else None
    expected = digest(settings.key, "id_number", stored) if stored else None
    return id_number is not None and same(expected, given)


def link(base: str, code: str, secret: str | None = None) -> str:
    """The lookup page's address, code and secret in the fragment (``#ma=…&s=…``): a browser sends
    neither to any server (no access log, no Referer), the page reads them and posts them."""
    fragment = f"ma={quote(code, safe='')}" + (f"&s={secret}" if secret else "")
    return f"{base.rstrip('/')}{PAGE_PATH}#{fragment}"


def _local(moment: datetime | None, zone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


def unit_name(units: UnitRegistry, code: str) -> str:
    try:
        return units.get(code).name
    except UnknownUnit:
        return code


def _to_do(kind: str, *, items: Sequence[str] = (), amount_vnd: int | None = None) -> dict[str, Any]:
    return {"kind": kind, "items": list(items), "amount_vnd": amount_vnd}


def citizen_view(
    dossier: Dossier,
    *,
    procedure_name: str,
    units: UnitRegistry,
    zone: tzinfo,
    payment_amounts: Sequence[int] = (),
    tracking_numbers: Sequence[str] = (),
) -> dict[str, Any]:
    """What the citizen is shown (LookupSchema): progress, appointment, what to do; nothing personal.
    ``payment_amounts``: what the agency asked to be paid, in order (the last request counts);
    ``tracking_numbers``: the result's deliveries by post, in order (the last one is shown)."""
    status = dossier.status
    apology = dossier.latest_notice(Action.APOLOGIZE)
    view: dict[str, Any] = {
        "code": dossier.code,
        "status": int(status),
        "status_name": status.vietnamese,
        "procedure_name": procedure_name,
        "receiving_unit_name": unit_name(units, dossier.receiving_unit),
        "received_at": _local(dossier.received_at, zone),
        "appointment": None
        if dossier.due_at is None
        else {
            "due_at": _local(dossier.due_at, zone),
            "rescheduled_by_apology": apology is not None,
            "apologized_at": _local(apology.issued_at, zone) if apology else None,
        },
        "return_method": dossier.return_method.label,
        # The operator's consignment number of the result's latest delivery: no address, no name.
        "postal_tracking_number": tracking_numbers[-1] if tracking_numbers else None,
        "now_at": None,
        "to_do": None,
    }
    if status not in FINAL and status is not Status.RESOLVED:
        current = [step.name for step in dossier.plan if step.stage == dossier.stage]
        unit = dossier.handling_unit if status is not Status.REGISTERED else dossier.receiving_unit
        view["now_at"] = {"unit_name": unit_name(units, unit), "steps": current}
    if status is Status.SUPPLEMENT_REQUESTED:
        notice = dossier.latest_notice(Action.REQUEST_SUPPLEMENT)
        view["to_do"] = _to_do("supplement", items=list(notice.items) if notice else [])
    elif status is Status.AWAITING_PAYMENT and payment_amounts:
        view["to_do"] = _to_do("payment", amount_vnd=payment_amounts[-1])
    elif status is Status.RESOLVED and dossier.return_method is ReturnMethod.COUNTER:
        view["to_do"] = _to_do("collect")
    return view
