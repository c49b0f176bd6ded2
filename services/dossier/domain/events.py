"""The dossier's domain events: one dataclass per event of docs/dossier-events.md.

Each carries the :class:`~shared.vocabulary.StatusFacts` every status event has, plus its own fields
(in the order they are published). The event's marshmallow schema of the same name in
:mod:`services.dossier.schemas` validates it on the way out and documents it in the AsyncAPI file;
``tests/unit/test_unit_of_work.py`` checks that both list the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from shared.domain import DomainEvent
from shared.vocabulary import StatusFacts


@dataclass(frozen=True, kw_only=True)
class DossierEvent(DomainEvent):
    source: ClassVar[str] = "dossier"
    facts: StatusFacts

    @property
    def data(self) -> dict[str, Any]:
        own = {field.name: getattr(self, field.name) for field in fields(self) if field.name != "facts"}
        return {**self.facts.as_data(), **own}


@dataclass(frozen=True, kw_only=True)
class IntakeEvent(DossierEvent):
    """A filing's event: what Decision 766 counts of the filing (docs/domain.md §12), counts and a flag."""

    components_digitised: int = 0
    components_reused: int = 0
    components_national: int = 0
    vneid_verified: bool = False


@dataclass(frozen=True, kw_only=True)
class Registered(IntakeEvent):
    name: ClassVar[str] = "registered"


@dataclass(frozen=True, kw_only=True)
class Received(IntakeEvent):
    name: ClassVar[str] = "received"


@dataclass(frozen=True, kw_only=True)
class Refused(DossierEvent):
    name: ClassVar[str] = "refused"
    reason: str


@dataclass(frozen=True, kw_only=True)
class ProcessingStarted(DossierEvent):
    name: ClassVar[str] = "processing_started"
    step: str


@dataclass(frozen=True, kw_only=True)
class SupplementRequested(DossierEvent):
    name: ClassVar[str] = "supplement_requested"
    reason: str
    items: list[str]


@dataclass(frozen=True, kw_only=True)
class Supplemented(DossierEvent):
    name: ClassVar[str] = "supplemented"


@dataclass(frozen=True, kw_only=True)
class PaymentRequested(DossierEvent):
    name: ClassVar[str] = "payment_requested"
    amount_vnd: int


@dataclass(frozen=True, kw_only=True)
class Paid(DossierEvent):
    name: ClassVar[str] = "paid"
    paid_online: bool = False


@dataclass(frozen=True, kw_only=True)
class Appraised(DossierEvent):
    name: ClassVar[str] = "appraised"
    step: str
    step_timeliness: str | None


@dataclass(frozen=True, kw_only=True)
class Transferred(DossierEvent):
    name: ClassVar[str] = "transferred"
    step: str
    from_unit: str
    to_unit: str
    step_due_at: datetime | None
    step_timeliness: str | None
    finished_step: str


@dataclass(frozen=True, kw_only=True)
class Decided(DossierEvent):
    name: ClassVar[str] = "decided"
    decision: str
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class Signed(DossierEvent):
    name: ClassVar[str] = "signed"
    signer_role: str


@dataclass(frozen=True, kw_only=True)
class Stamped(DossierEvent):
    name: ClassVar[str] = "stamped"
    digital: bool = False  # sealed through the e-signature service, not stamped on paper


@dataclass(frozen=True, kw_only=True)
class SentBackForAppraisal(DossierEvent):
    """The competent person refused to sign the result in the e-signature service (issue 10)."""

    name: ClassVar[str] = "sent_back_for_appraisal"
    reason: str


@dataclass(frozen=True, kw_only=True)
class Resolved(DossierEvent):
    name: ClassVar[str] = "resolved"
    decision: str | None
    resolved_at: datetime
    timeliness: str
    working_days: float


@dataclass(frozen=True, kw_only=True)
class Returned(DossierEvent):
    name: ClassVar[str] = "returned"
    method: str
    returned_at: datetime


@dataclass(frozen=True, kw_only=True)
class Withdrawn(DossierEvent):
    name: ClassVar[str] = "withdrawn"
    reason: str


@dataclass(frozen=True, kw_only=True)
class Stopped(DossierEvent):
    name: ClassVar[str] = "stopped"
    reason: str


@dataclass(frozen=True, kw_only=True)
class Resumed(DossierEvent):
    name: ClassVar[str] = "resumed"


@dataclass(frozen=True, kw_only=True)
class Apologized(DossierEvent):
    name: ClassVar[str] = "apologized"
    reason: str
    new_due_at: datetime


@dataclass(frozen=True, kw_only=True)
class DueSoon(DossierEvent):
    name: ClassVar[str] = "due_soon"
    lead_hours: float


@dataclass(frozen=True, kw_only=True)
class Overdue(DossierEvent):
    name: ClassVar[str] = "overdue"
    overdue_since: datetime
    step: str | None
    step_due_at: datetime | None


# Every dossier event, in the order declared above (the test simulators look classes up by name).
EVENTS: tuple[type[DossierEvent], ...] = (Registered, Received) + tuple(
    event for event in DossierEvent.__subclasses__() if event is not IntakeEvent
)
