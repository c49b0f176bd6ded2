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

Who may act is decided here: the right role and a unit covering the slot's unit, else
:class:`NotPermitted` (403). Acting out of turn — signing twice, sealing before the leader signs,
anything after a refusal — is :class:`OutOfTurn` (409). Each change appends a domain event that the
unit of work turns into an ``esign.*`` event in the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Stage(StrEnum):
    AWAITING_LEADER = "awaiting_leader"
    AWAITING_SEAL = "awaiting_seal"
    SEALED = "sealed"
    REFUSED = "refused"


class DomainError(Exception):
    """A rule of the signing request was broken; the message says which, for a person."""


class NotPermitted(DomainError):
    """The caller may not act on this request (wrong role, or the unit is outside their jurisdiction)."""


class OutOfTurn(DomainError):
    """The action is not possible in the request's current stage."""


class InvalidArgument(DomainError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Signer:
    """A person acting: the JWT's subject, roles and units, and the display name on the signature."""

    sub: str
    roles: frozenset[str]
    name: str


@dataclass(frozen=True)
class SignerSlot:
    """One place in the signing order: the role that fills it and the unit it acts for."""

    role: str
    unit: str
    purpose: str  # "signature" (the leader's own) or "seal" (the organisation's)


@dataclass(frozen=True)
class Signed:
    request_id: str
    signer_sub: str
    signer_name: str
    at: datetime
    document_sha256: str


@dataclass(frozen=True)
class Sealed:
    request_id: str
    signer_sub: str
    signer_name: str
    at: datetime
    document_sha256: str


@dataclass(frozen=True)
class Refused:
    request_id: str
    signer_sub: str
    signer_name: str
    at: datetime
    reason: str
    reason_code: str


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


DomainEvent = Signed | Sealed | Refused
# Does a caller's set of units cover a unit? (the unit map decides; injected, so the domain stays pure)
Covers = Callable[[tuple[str, ...] | list[str], str], bool]


@dataclass
class SigningRequest:
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
    def signers(self) -> tuple[SignerSlot, SignerSlot]:
        return (
            SignerSlot("leader", self.handling_unit, "signature"),
            SignerSlot("clerk", self.issuing_unit, "seal"),
        )

    def _authorise(self, slot: SignerSlot, signer: Signer, units: tuple[str, ...], covers: Covers) -> None:
        if slot.role not in signer.roles:
            raise NotPermitted(f"the {slot.purpose} of this result is given by a {slot.role}")
        if not covers(units, slot.unit):
            raise NotPermitted(f"the {slot.purpose} is given for unit {slot.unit}, outside your jurisdiction")

    def check_can_sign(self, signer: Signer, units: tuple[str, ...], covers: Covers) -> None:
        """Raise unless ``signer`` may give the leader's signature now (checked before any crypto)."""
        self._authorise(self.signers[0], signer, units, covers)
        if self.stage is Stage.REFUSED:
            raise OutOfTurn(f"the signing request was refused ({self.refusal_reason}); it cannot be signed")
        if self.stage is not Stage.AWAITING_LEADER:
            raise OutOfTurn(f"the result was already signed by {self.leader_name}; it is signed once")

    def check_can_seal(self, signer: Signer, units: tuple[str, ...], covers: Covers) -> None:
        self._authorise(self.signers[1], signer, units, covers)
        if self.stage is Stage.REFUSED:
            raise OutOfTurn(f"the signing request was refused ({self.refusal_reason}); it cannot be sealed")
        if self.stage is Stage.AWAITING_LEADER:
            raise OutOfTurn(
                "the organisation's seal follows the leader's signature; the leader has not signed"
            )
        if self.stage is Stage.SEALED:
            raise OutOfTurn(f"the result was already sealed by {self.clerk_name}; it is sealed once")

    def sign(
        self, signer: Signer, units: tuple[str, ...], covers: Covers, *, now: datetime, document_sha256: str
    ) -> None:
        """The leader's signature is on ``document_sha256``, the new revision of the document."""
        self.check_can_sign(signer, units, covers)
        self.stage = Stage.AWAITING_SEAL
        self.leader_sub, self.leader_name, self.signed_at = signer.sub, signer.name, now
        self.document_sha256 = document_sha256
        self._record(Signed(self.id, signer.sub, signer.name, now, document_sha256))

    def needs_number(self) -> bool:
        """The document takes its register number at the seal, unless it was given one at opening."""
        return self.document_number is None

    def seal(
        self,
        signer: Signer,
        units: tuple[str, ...],
        covers: Covers,
        *,
        now: datetime,
        document_sha256: str,
        number: DocumentNumber | None,
    ) -> None:
        """The clerk issues the document: the organisation's signature, with its number and date."""
        self.check_can_seal(signer, units, covers)
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
        self._record(Sealed(self.id, signer.sub, signer.name, now, document_sha256))

    def refuse(
        self,
        signer: Signer,
        units: tuple[str, ...],
        covers: Covers,
        *,
        now: datetime,
        reason: str,
        reason_code: str = "other",
    ) -> None:
        """The leader declines to sign; the dossier goes back to the handling agency for appraisal."""
        if not (reason or "").strip():
            raise InvalidArgument("reason", "a refusal states its reason")
        self._authorise(self.signers[0], signer, units, covers)
        if self.stage is Stage.REFUSED:
            raise OutOfTurn("the signing request was already refused")
        if self.stage is not Stage.AWAITING_LEADER:
            raise OutOfTurn("the result is already signed; a signed result is not refused")
        self.stage = Stage.REFUSED
        self.refused_by, self.refused_at, self.refusal_reason = signer.sub, now, reason.strip()
        self._record(Refused(self.id, signer.sub, signer.name, now, reason.strip(), reason_code))

    def _record(self, event: DomainEvent) -> None:
        self.events.append(event)
