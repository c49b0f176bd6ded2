"""The payment service's use cases: start a payment, take the platform's confirmation, reconcile what
is still open, record a paid one on the dossier, read one. Plain functions ``(command, uow, context)``
(shared/usecase.py); they raise the domain's errors and import no HTTP.

Exactly once, whatever the order: a payment becomes ``paid`` under its row's lock, from a confirmation
or from a query, whichever comes first (the other finds it paid and changes nothing); the dossier takes
it through ``record_payment`` with the reference as the Idempotency-Key, tried after the commit and
again by every reconciliation until the dossier answered. So a lost confirmation, a repeated one, a
dossier service that is down, or a crash between the two leave a paid payment owed, never lost, and the
dossier publishes ``dossier.paid`` once.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.payment import metrics
from services.payment.domain import protocol
from services.payment.domain.model import AmountMismatch, Payment, Window
from services.payment.dossier_client import DossierClient, DossierRefused, DossierUnavailable, Dues
from services.payment.platform import Order, PaymentPlatform, PlatformRefused, PlatformUnavailable
from services.payment.repository import Payments
from shared.auth import Principal
from shared.domain import Conflict, DomainError, Forbidden, NotFound
from shared.uow import Transaction
from shared.usecase import Context, UnitOfWork
from shared.vocabulary import Status

log = logging.getLogger(__name__)

DESK_ROLES = ("desk_officer",)
READER_ROLES = ("desk_officer", "handling_officer", "auditor", "admin")
AWAITING_PAYMENT = int(Status.AWAITING_PAYMENT)  # 6, Yêu cầu thực hiện nghĩa vụ tài chính
REFUSAL = "Không tìm thấy hồ sơ với mã hồ sơ và thông tin xác minh này (no dossier with this code and proof)."


class Unavailable(DomainError):
    """An outside party (the platform, the dossier service) cannot answer now: retry later (503)."""


class ConfirmationRejected(Exception):
    """A confirmation that is not the platform's (``reason``): kept for forensics, nothing changes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True, kw_only=True)
class PaymentContext(Context):
    platform: PaymentPlatform
    dossiers: DossierClient
    partner: str  # MaDoiTac
    secret: str
    window: Window = Window()
    batch: int = 200
    payments: Callable[[Transaction, Any], Payments] = Payments


# --- starting a payment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPayment:
    """The citizen (``principal`` None: the code and the receipt's proof) or the desk (a desk officer
    of the receiving unit's jurisdiction) asks for the payment link of a dossier awaiting payment."""

    code: str
    client_ip: str
    secret: str | None = None
    id_number: str | None = None
    principal: Principal | None = None


@dataclass(frozen=True)
class Started:
    payment: Payment
    reused: bool


def start_payment(cmd: StartPayment, uow: UnitOfWork, context: PaymentContext) -> Started:
    """The payment link. The amount is the dossier service's (what the agency asked for), never the
    caller's. A pending payment of the same amount whose link is fresh is given again; a dossier that
    does not await payment is a Conflict; a wrong proof the one same NotFound as the lookup's."""
    if cmd.principal is None and cmd.secret is None and cmd.id_number is None:
        raise NotFound(REFUSAL)
    dues = _dues(cmd, context)
    if cmd.principal is not None:
        cmd.principal.require_role(*DESK_ROLES)
        cmd.principal.require_jurisdiction(context.units, dues.receiving_unit)
    if dues.status != AWAITING_PAYMENT or not dues.amount_vnd:
        raise Conflict(
            f"dossier {dues.code} does not await payment (status {dues.status})", status=dues.status
        )
    now = context.clock()
    with uow.transaction() as tx:
        payments = context.payments(tx, context.units)
        for earlier in payments.of_dossier(dues.code, for_update=True):
            if earlier.owes_record:
                raise Conflict(
                    f"dossier {dues.code} is paid (payment {earlier.reference}); it is being recorded"
                )
            if earlier.reusable(dues.amount_vnd, now, context.window):
                return Started(earlier, reused=True)
        payment = payments.add(
            Payment(
                reference=new_reference(now),
                dossier_code=dues.code,
                receiving_unit=dues.receiving_unit,
                amount_vnd=dues.amount_vnd,
                started_at=now,
                started_by="citizen" if cmd.principal is None else cmd.principal.sub,
            )
        )
    # Stored first, so a link the platform gave is never for a payment motcua does not know.
    order = Order(
        reference=payment.reference,
        amount_vnd=payment.amount_vnd,
        description=f"Nop phi, le phi ho so {dues.code}",
        client_ip=cmd.client_ip,
        at=now,
        receipt=_receipt_information(dues),
    )
    try:
        url = context.platform.init(order)
    except (PlatformUnavailable, PlatformRefused) as exc:
        metrics.PLATFORM_CALLS.labels("init", type(exc).__name__).inc()
        with uow.transaction() as tx:
            failed = context.payments(tx, context.units).get(payment.reference, for_update=True)
            if failed is not None:
                failed.failed(error_code=getattr(exc, "code", "init"), at=context.clock(), via="init")
        raise Unavailable(f"the payment platform cannot open the payment now; retry later ({exc})") from exc
    metrics.PLATFORM_CALLS.labels("init", "ok").inc()
    with uow.transaction() as tx:
        opened = context.payments(tx, context.units).get(payment.reference, for_update=True)
        opened.payment_url = url
    metrics.PAYMENTS.labels("started").inc()
    return Started(opened, reused=False)


def new_reference(now: datetime) -> str:
    """MaThamChieu: ``MC``, the Vietnam-local date and time, and 8 random hex digits (unique, sortable)."""
    return f"MC{protocol.timestamp(now)}{secrets.token_hex(4).upper()}"


def _receipt_information(dues: Dues) -> dict[str, Any]:
    """ThongTinBienLai: what the platform's receipt names (no personal data)."""
    return {
        "MaHoSo": dues.code,
        "MaThuTuc": dues.procedure_code,
        "TenThuTuc": dues.procedure_name,
        "MaDonVi": dues.receiving_unit,
        "TenDonVi": dues.receiving_unit_name,
        "DanhSachPhiLePhi": [
            {"TenPhiLePhi": fee.get("name"), "SoTien": fee.get("amount_vnd")} for fee in dues.fees
        ],
    }


def _dues(cmd: StartPayment, context: PaymentContext) -> Dues:
    try:
        return context.dossiers.dues(cmd.code.strip(), secret=cmd.secret, id_number=cmd.id_number)
    except DossierUnavailable as exc:
        raise Unavailable(f"the dossier service cannot answer now; retry later ({exc})") from exc
    except DossierRefused as exc:
        if exc.status == 404:
            raise NotFound(REFUSAL) from exc
        log.error("the dossier service refused the payment service's dues read: %s", exc)
        raise Unavailable("the dossier service refused this service's read; an operator must look") from exc


# --- the platform's confirmation ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveConfirmation:
    raw_body: bytes
    remote_addr: str | None


@dataclass(frozen=True)
class Confirmed:
    reference: str
    outcome: str  # paid, failed, repeated, unknown_reference, amount_mismatch


def receive_confirmation(cmd: ReceiveConfirmation, uow: UnitOfWork, context: PaymentContext) -> Confirmed:
    """A confirmation, verified over its own fields (ConfirmationRejected, kept, when it is not the
    platform's); stored, then applied under the payment's lock. ``MaLoi`` "00" is a success. A repeat
    changes nothing. A newly paid payment is recorded on the dossier at once (owed if that fails)."""
    now = context.clock()
    message = _verified_confirmation(cmd, uow, context, now)
    reference, code = str(message["MaThamChieu"]), str(message["MaLoi"])
    with uow.transaction() as tx:
        payments = context.payments(tx, context.units)
        payment = payments.get(reference, for_update=True)
        outcome = _apply(payment, message, now) if payment is not None else "unknown_reference"
        payments.keep_confirmation(reference, code, now, outcome, cmd.raw_body.decode("utf-8", "replace"))
    metrics.CONFIRMATIONS.labels(outcome).inc()
    if outcome == "unknown_reference":
        log.warning("a confirmation for reference %s, which this service never started", reference)
    if outcome in ("paid", "failed"):
        metrics.PAYMENTS.labels(outcome).inc()
    if outcome == "paid":
        record(reference, uow, context)
    return Confirmed(reference, outcome)


def _apply(payment: Payment, message: dict[str, Any], now: datetime) -> str:
    try:
        amount = int(message["SoTien"])
    except (TypeError, ValueError):
        return "malformed"
    try:
        if message["MaLoi"] == protocol.SUCCESS:
            news = payment.paid(
                amount_vnd=amount, transaction=message.get("MaGiaoDich"), at=now, via="confirmation"
            )
            return "paid" if news else "repeated"
        return (
            "failed"
            if payment.failed(error_code=str(message["MaLoi"]), at=now, via="confirmation")
            else "repeated"
        )
    except AmountMismatch as exc:
        log.error("%s", exc)
        return "amount_mismatch"
    except Conflict as exc:
        log.warning("%s", exc)
        return "contradicted"


def _verified_confirmation(
    cmd: ReceiveConfirmation, uow: UnitOfWork, context: PaymentContext, now: datetime
) -> dict[str, Any]:
    try:
        message = json.loads(cmd.raw_body)
    except (ValueError, RecursionError):
        message = None
    reason = None
    if not isinstance(message, dict):
        reason, message = "not_json", {}
    elif not protocol.verified(message, protocol.CONFIRMATION_FIELDS, context.secret):
        reason = "checksum"
    elif message.get("MaDoiTac") != context.partner or message.get("LoaiBanTin") != protocol.CONFIRMATION:
        reason = "not_for_us"
    elif not message.get("MaThamChieu") or message.get("MaLoi") is None:
        reason = "incomplete"
    if reason is None:
        return message
    with uow.transaction() as tx:
        context.payments(tx, context.units).keep_rejection(
            at=now,
            reason=reason,
            reference=str(message.get("MaThamChieu"))[:100] if message.get("MaThamChieu") else None,
            remote_addr=cmd.remote_addr,
            body=cmd.raw_body.decode("utf-8", "replace")[:65536],
        )
    metrics.CONFIRMATIONS.labels(f"rejected_{reason}").inc()
    log.warning("a confirmation refused (%s) from %s", reason, cmd.remote_addr)
    raise ConfirmationRejected(reason, f"not a confirmation of the payment platform ({reason})")


# --- recording on the dossier ------------------------------------------------------------------------


def record(reference: str, uow: UnitOfWork, context: PaymentContext) -> bool:
    """Record a paid payment on its dossier (once per reference); True when the dossier has it now.
    A dossier service that cannot answer leaves it owed: the reconciliation tries again."""
    with uow.transaction() as tx:
        payment = context.payments(tx, context.units).get(reference)
        if payment is None or not payment.owes_record:
            return payment is not None and payment.recorded_at is not None
        code = payment.dossier_code
    try:
        context.dossiers.record_payment(code, reference)
        outcome = "recorded"
    except DossierUnavailable as exc:
        metrics.RECORDS.labels("owed").inc()
        log.warning("payment %s of dossier %s not recorded yet (retried): %s", reference, code, exc)
        return False
    except DossierRefused as exc:
        if exc.status != 409:
            metrics.RECORDS.labels("refused").inc()
            log.error("the dossier service refused payment %s of %s (retried): %s", reference, code, exc)
            return False
        # The dossier no longer awaits payment: paid at the counter too, or withdrawn. An operator
        # looks (docs/runbook.md "Online payment"): the citizen may be owed a refund.
        outcome = "dossier_not_awaiting"
        log.error("payment %s is paid but dossier %s no longer awaits payment: %s", reference, code, exc)
    with uow.transaction() as tx:
        payment = context.payments(tx, context.units).get(reference, for_update=True)
        payment.record(at=context.clock(), outcome=outcome)
    metrics.RECORDS.labels(outcome).inc()
    return True


# --- reconciliation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconcile:
    pass


def reconcile(cmd: Reconcile, uow: UnitOfWork, context: PaymentContext) -> dict[str, int]:
    """Ask the platform about every payment pending for longer than the window's start (a lost
    confirmation), expire what is past its end, record what the dossier has not taken, fetch the
    receipts; one payment's failure does not stop the others. Returns counts by what happened."""
    now = context.clock()
    counts: dict[str, int] = {}
    with uow.transaction() as tx:
        payments = context.payments(tx, context.units)
        references = payments.open_references(now - context.window.after, context.batch)
        oldest = payments.oldest_pending()
    metrics.OLDEST_PENDING.set(0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
    for reference in references:
        try:
            what = _reconcile_one(reference, uow, context, now)
        except (PlatformUnavailable, PlatformRefused) as exc:
            metrics.PLATFORM_CALLS.labels("query", type(exc).__name__).inc()
            log.warning("reconciliation of %s: the platform did not answer (%s)", reference, exc)
            what = "platform_unavailable"
        counts[what] = counts.get(what, 0) + 1
    with uow.transaction() as tx:
        metrics.PAYMENTS_OWED.set(context.payments(tx, context.units).owed())
    return counts


def _reconcile_one(reference: str, uow: UnitOfWork, context: PaymentContext, now: datetime) -> str:
    with uow.transaction() as tx:
        payment = context.payments(tx, context.units).get(reference)
        if payment is None:
            return "gone"
        if payment.expire(now, context.window):
            metrics.PAYMENTS.labels("expired").inc()
            return "expired"
        asks = payment.due_for_query(now, context.window) or payment.owes_receipt
    what = "unchanged"
    if asks:
        answer = context.platform.query(reference, now)
        metrics.PLATFORM_CALLS.labels("query", "ok").inc()
        with uow.transaction() as tx:
            payment = context.payments(tx, context.units).get(reference, for_update=True)
            if answer.state == protocol.PAID:
                try:
                    if payment.paid(
                        amount_vnd=answer.amount_vnd, transaction=answer.transaction, at=now, via="query"
                    ):
                        what = "paid"
                except AmountMismatch as exc:
                    log.error("%s", exc)
                    return "amount_mismatch"
                except Conflict as exc:
                    log.warning("%s", exc)
                    return "contradicted"
            elif answer.state == protocol.FAILED:
                what = "failed" if payment.failed(error_code="query", at=now, via="query") else what
            else:
                payment.still_pending(at=now)
            fetch = payment.owes_receipt and answer.receipt_url
        if what in ("paid", "failed"):
            metrics.PAYMENTS.labels(what).inc()
        if fetch:
            content, content_type = context.platform.receipt(answer.receipt_url)
            with uow.transaction() as tx:
                payment = context.payments(tx, context.units).get(reference, for_update=True)
                payment.keep_receipt(url=answer.receipt_url, content=content, content_type=content_type)
    with uow.transaction() as tx:
        owed = context.payments(tx, context.units).get(reference).owes_record
    if owed and record(reference, uow, context) and what == "unchanged":
        what = "recorded"
    return what


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadPayment:
    principal: Principal
    reference: str


def read_payment(cmd: ReadPayment, tx: Transaction, context: PaymentContext) -> Payment:
    """A payment, for staff whose jurisdiction covers its dossier's receiving unit (else NotFound)."""
    if not cmd.principal.has_role(*READER_ROLES):
        raise Forbidden(f"reading payments needs one of the roles: {', '.join(READER_ROLES)}")
    payment = context.payments(tx, context.units).get(cmd.reference)
    if payment is None or not cmd.principal.covers(context.units, payment.receiving_unit):
        raise NotFound(f"no payment {cmd.reference}")
    return payment


def dossier_payments(cmd: ReadPayment, tx: Transaction, context: PaymentContext) -> list[Payment]:
    """A dossier's payments (``cmd.reference`` is the dossier code here), newest first, for staff."""
    if not cmd.principal.has_role(*READER_ROLES):
        raise Forbidden(f"reading payments needs one of the roles: {', '.join(READER_ROLES)}")
    found = context.payments(tx, context.units).of_dossier(cmd.reference)
    return [p for p in found if cmd.principal.covers(context.units, p.receiving_unit)]
