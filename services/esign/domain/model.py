"""The signing request (yêu cầu ký số): who signs the result document, in which order, and what happens.

Plain Python: no nameko, no SQL, no cryptography. The request names its ordered signers — the
competent leader of the handling unit (chữ ký của người có thẩm quyền), then a clerk (văn thư) of the
issuing organisation, who applies the organisation's signature, "the seal" (Decree 30/2020, Art. 14
and 17). The state machine::

    awaiting_leader --sign--> awaiting_seal --seal--> sealed
          |
          +--refuse(reason)--> refused      (the dossier goes back to the handling agency for appraisal)

The document's number and date are given when it is issued — at the seal, by the clerk — from the
issuing unit's register of the Vietnam-local year (:class:`DocumentNumber`): 01, 02, … from 1 January.
A request refused before its seal took no number, so a refusal leaves no gap in the register.

Who may act is decided here for the role: a leader signs or refuses, a clerk seals, else
:class:`~shared.domain.Forbidden` (403); that the slot's unit is in the caller's jurisdiction is the
use case's check (``Principal.require_jurisdiction``, services/esign/service_layer.py). Acting out of
turn — signing twice, sealing before the leader signs, anything after a refusal — is a
:class:`~shared.domain.Conflict` (409). Each change records a typed event (:class:`Signed`,
:class:`Sealed`, :class:`Refused`), which the unit of work publishes as ``esign.*`` at commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from zoneinfo import ZoneInfo

from shared.domain import Aggregate, Conflict, DomainEvent, Forbidden, Invalid

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Stage(StrEnum):
    AWAITING_LEADER = "awaiting_leader"
    AWAITING_SEAL = "awaiting_seal"
    SEALED = "sealed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Signer:
    """A person acting: the JWT's subject, roles, and the display name on the signature."""

    sub: str
    roles: frozenset[str]
    name: str


@dataclass(frozen=True)
class SignerSlot:
    """One place in the signing order: the role that fills it and the unit it acts for."""

    role: str
    unit: str
    purpose: str  # "signature" (the leader's own) or "seal" (the organisation's)


# --- the events (their schemas: services/esign/schemas.py) ---------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EsignEvent(DomainEvent):
    """What every esign event says: the dossier, the request, who acted and when."""

    source: ClassVar[str] = "esign"
    code: str
    request_id: str
    receiving_unit: str
    handling_unit: str
    issuing_unit: str
    signer_sub: str
    signer_name: str
    signer_role: str
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True)
class Signed(EsignEvent):
    name: ClassVar[str] = "signed"
    document_sha256: str


@dataclass(frozen=True, kw_only=True)
class Sealed(EsignEvent):
    name: ClassVar[str] = "sealed"
    document_sha256: str
    document_number: str  # given when the document is issued, at the seal


@dataclass(frozen=True, kw_only=True)
class Refused(EsignEvent):
    name: ClassVar[str] = "refused"
    # The leader's words stay behind the API (GET the request); the bus gets a code and a flag.
    reason_code: str
    has_reason_text: bool


@dataclass(frozen=True)
class DocumentNumber:
    """A number of an issuing unit's register: one register per unit and Vietnam-local year."""

    year: int
    number: int
    series: str  # what follows the number: the result's symbol and the unit, e.g. KQ-26740

    @property
    def text(self) -> str:
        # Numbers below 10 take a leading zero: 01/KQ-26740.
        return f"{self.number:02d}/{self.series}"


def register_year(moment: datetime) -> int:
    """The register a document issued at ``moment`` is numbered in: its year in Vietnam time."""
    return moment.astimezone(VN_TZ).year


@dataclass
class SigningRequest(Aggregate):
    id: str
    dossier_code: str
    decision: str
    reason: str | None
    procedure_code: str
    receiving_unit: str
    handling_unit: str
    issuing_unit: str
    created_at: datetime
    document_sha256: str
    stage: Stage = Stage.AWAITING_LEADER
    # Given at the seal (a request opened before numbering moved there kept the number it was given).
    document_number: str | None = None
    register_year: int | None = None
    register_number: int | None = None
    leader_sub: str | None = None
    leader_name: str | None = None
    signed_at: datetime | None = None
    clerk_sub: str | None = None
    clerk_name: str | None = None
    sealed_at: datetime | None = None
    refused_by: str | None = None
    refused_at: datetime | None = None
    refusal_reason: str | None = None
    events: list[DomainEvent] = field(default_factory=list, repr=False, compare=False)

    @property
    def subject(self) -> str:
        return self.dossier_code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, self.handling_unit

    @property
    def signers(self) -> tuple[SignerSlot, SignerSlot]:
        return (
            SignerSlot("leader", self.handling_unit, "signature"),
            SignerSlot("clerk", self.issuing_unit, "seal"),
        )

    @staticmethod
    def _authorise(slot: SignerSlot, signer: Signer) -> None:
        if slot.role not in signer.roles:
            raise Forbidden(f"the {slot.purpose} of this result is given by a {slot.role}")

    def check_can_sign(self, signer: Signer) -> None:
        """Raise unless ``signer`` may give the leader's signature now (checked before any crypto)."""
        self._authorise(self.signers[0], signer)
        if self.stage is Stage.REFUSED:
            raise Conflict(f"the signing request was refused ({self.refusal_reason}); it cannot be signed")
        if self.stage is not Stage.AWAITING_LEADER:
            raise Conflict(f"the result was already signed by {self.leader_name}; it is signed once")

    def check_can_seal(self, signer: Signer) -> None:
        self._authorise(self.signers[1], signer)
        if self.stage is Stage.REFUSED:
            raise Conflict(f"the signing request was refused ({self.refusal_reason}); it cannot be sealed")
        if self.stage is Stage.AWAITING_LEADER:
            raise Conflict(
                "the organisation's seal follows the leader's signature; the leader has not signed"
            )
        if self.stage is Stage.SEALED:
            raise Conflict(f"the result was already sealed by {self.clerk_name}; it is sealed once")

    def sign(self, signer: Signer, *, now: datetime, document_sha256: str) -> None:
        """The leader's signature is on ``document_sha256``, the new revision of the document."""
        self.check_can_sign(signer)
        self.stage = Stage.AWAITING_SEAL
        self.leader_sub, self.leader_name, self.signed_at = signer.sub, signer.name, now
        self.document_sha256 = document_sha256
        self.record(Signed(**self._facts(signer, "leader", now), document_sha256=document_sha256))

    def needs_number(self) -> bool:
        """The document takes its register number at the seal, unless it was given one at opening."""
        return self.document_number is None

    def seal(
        self, signer: Signer, *, now: datetime, document_sha256: str, number: DocumentNumber | None
    ) -> None:
        """The clerk issues the document: the organisation's signature, with its number and date."""
        self.check_can_seal(signer)
        if (number is None) is self.needs_number():
            raise ValueError("a document is numbered once, when it is issued")
        if number is not None:
            if number.year != register_year(now):
                raise ValueError(f"a document issued on {now.isoformat()} is numbered in another register")
            self.document_number = number.text
            self.register_year, self.register_number = number.year, number.number
        self.stage = Stage.SEALED
        self.clerk_sub, self.clerk_name, self.sealed_at = signer.sub, signer.name, now
        self.document_sha256 = document_sha256
        self.record(
            Sealed(
                **self._facts(signer, "clerk", now),
                document_sha256=document_sha256,
                document_number=str(self.document_number),
            )
        )

    def refuse(self, signer: Signer, *, now: datetime, reason: str, reason_code: str = "other") -> None:
        """The leader declines to sign; the dossier goes back to the handling agency for appraisal."""
        if not (reason or "").strip():
            raise Invalid("reason", "a refusal states its reason")
        self._authorise(self.signers[0], signer)
        if self.stage is Stage.REFUSED:
            raise Conflict("the signing request was already refused")
        if self.stage is not Stage.AWAITING_LEADER:
            raise Conflict("the result is already signed; a signed result is not refused")
        self.stage = Stage.REFUSED
        self.refused_by, self.refused_at, self.refusal_reason = signer.sub, now, reason.strip()
        self.record(
            Refused(**self._facts(signer, "leader", now), reason_code=reason_code, has_reason_text=True)
        )

    def _facts(self, signer: Signer, role: str, now: datetime) -> dict:
        """What every event of this request says (EsignEvent's fields)."""
        return {
            "code": self.dossier_code,
            "request_id": self.id,
            "receiving_unit": self.receiving_unit,
            "handling_unit": self.handling_unit,
            "issuing_unit": self.issuing_unit,
            "signer_sub": signer.sub,
            "signer_name": signer.name,
            "signer_role": role,
            "occurred_at": now,
        }
