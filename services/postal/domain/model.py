"""Shipments and hand-over records (biên bản giao nhận), as plain Python: no framework, no SQL.

Decision 45/2016/QĐ-TTg makes the public postal operator a channel both ways:

* a **pickup** shipment carries a dossier from the applicant's door to the desk; the desk and the
  postal worker co-sign a hand-over record, and **the record's signing time is the filing time**;
* a **delivery** shipment carries the result from the desk to the applicant; delivery is the return.

The operator reports progress through webhooks. :meth:`Shipment.track` applies one report: a report
older than the last one applied, or one that would move the shipment backwards (``in_transit``
after ``out_for_delivery``, anything after ``delivered``), is recorded and changes nothing.

Time is always passed in; every method records :class:`DomainEvent`\\ s that the service layer turns
into ``postal.*`` events through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    PICKUP = "pickup"  # applicant → desk (nhận hồ sơ tại nhà)
    DELIVERY = "delivery"  # desk → applicant (trả kết quả qua bưu chính)


class ShipmentStatus(StrEnum):
    """docs/contracts.md §3 Postal operator webhooks: the statuses every operator's tracking maps onto."""

    CREATED = "created"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"


SS = ShipmentStatus
TERMINAL = frozenset({SS.DELIVERED, SS.RETURNED_TO_SENDER, SS.CANCELLED})
# Where a shipment may go from each status. A failed attempt leads to another attempt
# (out_for_delivery), to delivery, or back to the desk; nothing leaves a terminal status.
FORWARD: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    SS.CREATED: frozenset(SS) - {SS.CREATED},
    SS.PICKED_UP: frozenset(
        {SS.IN_TRANSIT, SS.OUT_FOR_DELIVERY, SS.DELIVERED, SS.DELIVERY_FAILED, SS.RETURNED_TO_SENDER}
    ),
    SS.IN_TRANSIT: frozenset({SS.OUT_FOR_DELIVERY, SS.DELIVERED, SS.DELIVERY_FAILED, SS.RETURNED_TO_SENDER}),
    SS.OUT_FOR_DELIVERY: frozenset({SS.DELIVERED, SS.DELIVERY_FAILED, SS.RETURNED_TO_SENDER}),
    SS.DELIVERY_FAILED: frozenset({SS.IN_TRANSIT, SS.OUT_FOR_DELIVERY, SS.DELIVERED, SS.RETURNED_TO_SENDER}),
    SS.DELIVERED: frozenset(),
    SS.RETURNED_TO_SENDER: frozenset(),
    SS.CANCELLED: frozenset(),
}
del SS


class TrackingOutcome(StrEnum):
    """What one operator report did to a shipment (stored with the webhook)."""

    APPLIED = "applied"  # the shipment moved forward
    LATE = "late"  # older than, or behind, what is known: recorded, no change
    REPEATED = "repeated"  # the status the shipment already has: recorded, no change
    UNKNOWN_STATUS = "unknown_status"  # a status the mapping does not know: recorded, alerted, no change
    LOST = "lost"  # the operator lost the package: recorded, alerted; it compensates, a new delivery may go


class PostalError(Exception):
    """A rule of the postal flows forbids what was asked; nothing changed."""


@dataclass(frozen=True)
class DomainEvent:
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Report:
    """One tracking report of the operator, as mapped: ``status`` None when the name is unknown."""

    operator_status: str
    status: ShipmentStatus | None
    occurred_at: datetime
    recipient_kind: str | None = None  # applicant | proxy, on delivery
    recipient_name: str | None = None  # the proxy's name (personal data: never on an event)
    note: str | None = None
    lost: bool = False  # the operator reports the package lost (not a tracking status: an incident)


@dataclass(eq=False, kw_only=True)
class Shipment:
    """One consignment of the operator, either direction; ``dossier_code`` ties it to a dossier."""

    id: str
    dossier_code: str
    direction: Direction
    operator: str
    consignment: str
    receiving_unit: str
    packages: int
    fee_vnd: int
    created_at: datetime
    promised_at: datetime | None = None
    status: ShipmentStatus = ShipmentStatus.CREATED
    status_at: datetime | None = None
    attempts: int = 0
    delivered_at: datetime | None = None
    recipient_kind: str | None = None
    recipient_name: str | None = None
    result_document: dict[str, Any] | None = None
    charged_to: str = "applicant"
    handed_over_at: datetime | None = None
    lost_at: datetime | None = None
    events: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def order(cls, **terms: Any) -> Shipment:
        """The operator accepted an order: the shipment exists, status ``created``."""
        shipment = cls(**terms)
        shipment.status_at = shipment.created_at
        shipment._record(
            "ordered", shipment.created_at, fee_vnd=shipment.fee_vnd, charged_to=shipment.charged_to
        )
        return shipment

    def track(self, report: Report) -> TrackingOutcome:
        """Apply one operator report; a late or backward report is recorded and changes nothing."""
        if report.lost:
            return self._lose(report.occurred_at)
        if report.status is None:
            return TrackingOutcome.UNKNOWN_STATUS
        if report.status == self.status:
            return TrackingOutcome.REPEATED
        if report.status not in FORWARD[self.status]:
            return TrackingOutcome.LATE
        if self.status_at is not None and report.occurred_at < self.status_at:
            return TrackingOutcome.LATE
        previous, self.status, self.status_at = self.status, report.status, report.occurred_at
        if report.status == ShipmentStatus.OUT_FOR_DELIVERY:
            self.attempts += 1
        if report.status == ShipmentStatus.DELIVERED:
            self.delivered_at = report.occurred_at
            self.recipient_kind = report.recipient_kind or "applicant"
            self.recipient_name = report.recipient_name
        extra: dict[str, Any] = {"previous_status": previous.value}
        if report.status == ShipmentStatus.DELIVERED and self.direction == Direction.DELIVERY:
            extra["recipient_kind"] = self.recipient_kind
        self._record(report.status.value, report.occurred_at, **extra)
        return TrackingOutcome.APPLIED

    def _lose(self, at: datetime) -> TrackingOutcome:
        if self.is_final:
            return TrackingOutcome.LATE  # delivered, returned or cancelled: it cannot be lost any more
        if self.lost_at is not None:
            return TrackingOutcome.REPEATED
        self.lost_at = at
        self._record("lost", at)
        return TrackingOutcome.LOST

    @property
    def is_final(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_closed(self) -> bool:
        """Nothing more will come of it: final, or lost by the operator."""
        return self.is_final or self.lost_at is not None

    def facts(self, at: datetime) -> dict[str, Any]:
        """What every ``postal.*`` event says: codes, statuses, units, dates; no personal data."""
        return {
            "code": self.dossier_code,
            "shipment_id": self.id,
            "direction": self.direction.value,
            "operator": self.operator,
            "consignment": self.consignment,
            "status": self.status.value,
            "receiving_unit": self.receiving_unit,
            "packages": self.packages,
            "attempts": self.attempts,
            "promised_at": self.promised_at,
            "occurred_at": at,
        }

    def _record(self, name: str, at: datetime, **extra: Any) -> None:
        self.events.append(DomainEvent(name, {**self.facts(at), **extra}))


class ItemOutcome(StrEnum):
    RECEIVED = "received"  # completeness checked: the dossier is filed at the record's signing time
    REFUSED = "refused"  # Form 03, with a reason


@dataclass(kw_only=True)
class RecordItem:
    """One consignment on a hand-over record: what was declared, what was counted, what the desk did."""

    shipment: Shipment
    packages_counted: int
    outcome: ItemOutcome | None = None
    reason: str | None = None

    @property
    def discrepancy(self) -> str | None:
        if self.packages_counted == 0:
            return "missing"
        if self.packages_counted != self.shipment.packages:
            return "count_mismatch"
        return None


SIDES = {"postal_operator": "operator", "desk_officer": "desk"}


@dataclass(eq=False, kw_only=True)
class HandoverRecord:
    """Biên bản giao nhận: the consignments handed over at the desk, co-signed by both sides.

    A pickup record is signed by the operator and by the desk, who decides each dossier (received or
    refused); a delivery record hands sealed results to the operator. The later of the two
    signatures is the record's time: for a pickup, each received dossier's filing time. Once both
    have signed, nothing on the record changes.
    """

    id: str
    direction: Direction
    receiving_unit: str
    items: list[RecordItem]
    created_at: datetime
    operator_signed_by: str | None = None
    operator_signed_at: datetime | None = None
    desk_signed_by: str | None = None
    desk_signed_at: datetime | None = None

    @classmethod
    def draw_up(
        cls,
        *,
        id: str,
        direction: Direction,
        receiving_unit: str,
        counted: list[tuple[Shipment, int]],
        now: datetime,
    ) -> HandoverRecord:
        if not counted:
            raise PostalError("a hand-over record lists at least one consignment")
        seen: set[str] = set()
        for shipment, packages in counted:
            if shipment.consignment in seen:
                raise PostalError(f"consignment {shipment.consignment} is listed twice")
            seen.add(shipment.consignment)
            if shipment.direction != direction:
                raise PostalError(f"consignment {shipment.consignment} is a {shipment.direction} shipment")
            if shipment.receiving_unit != receiving_unit:
                raise PostalError(
                    f"consignment {shipment.consignment} belongs to unit {shipment.receiving_unit}"
                )
            if shipment.handed_over_at is not None:
                raise PostalError(f"consignment {shipment.consignment} was already handed over")
            if shipment.is_final and direction == Direction.DELIVERY:
                raise PostalError(f"consignment {shipment.consignment} is {shipment.status}")
            if shipment.status == "cancelled":
                raise PostalError(f"consignment {shipment.consignment} was cancelled")
            if packages < 0:
                raise PostalError("a package count cannot be negative")
        items = [RecordItem(shipment=s, packages_counted=n) for s, n in counted]
        return cls(id=id, direction=direction, receiving_unit=receiving_unit, items=items, created_at=now)

    @property
    def signed_at(self) -> datetime | None:
        if self.operator_signed_at is None or self.desk_signed_at is None:
            return None
        return max(self.operator_signed_at, self.desk_signed_at)

    @property
    def discrepancies(self) -> list[tuple[str, str]]:
        return [(i.shipment.consignment, i.discrepancy) for i in self.items if i.discrepancy]

    def sign(
        self,
        *,
        side: str,
        signer: str,
        now: datetime,
        decisions: dict[str, tuple[ItemOutcome, str | None]] | None = None,
    ) -> bool:
        """One side signs; True when this completes the record. A side signs once, ever."""
        if self.signed_at is not None:
            raise PostalError("the record is signed by both sides; it cannot change")
        if side == "operator":
            if self.operator_signed_at is not None:
                raise PostalError("the operator has already signed this record")
            self.operator_signed_by, self.operator_signed_at = signer, now
        elif side == "desk":
            if self.desk_signed_at is not None:
                raise PostalError("the desk has already signed this record")
            self._decide(decisions or {})
            self.desk_signed_by, self.desk_signed_at = signer, now
        else:
            raise PostalError(f"unknown side {side!r}")
        if self.signed_at is None:
            return False
        self._complete()
        return True

    def _decide(self, decisions: dict[str, tuple[ItemOutcome, str | None]]) -> None:
        listed = {item.shipment.consignment for item in self.items}
        unknown = sorted(set(decisions) - listed)
        if unknown:
            raise PostalError(f"not on this record: {', '.join(unknown)}")
        if self.direction == Direction.DELIVERY:
            if decisions:
                raise PostalError("a delivery record carries no decisions")
            return
        missing = sorted(listed - set(decisions))
        if missing:
            raise PostalError(f"decide every dossier on the record; undecided: {', '.join(missing)}")
        for item in self.items:
            outcome, reason = decisions[item.shipment.consignment]
            if outcome == ItemOutcome.REFUSED and not (reason and reason.strip()):
                raise PostalError(f"refusing {item.shipment.consignment} needs a reason (Form 03)")
            if outcome == ItemOutcome.RECEIVED and item.discrepancy == "missing":
                raise PostalError(
                    f"{item.shipment.consignment}: no package was handed over; it cannot be received"
                )
        for item in self.items:  # all checked first: a refused signature changes nothing
            item.outcome, item.reason = decisions[item.shipment.consignment]

    def _complete(self) -> None:
        at = self.signed_at
        for item in self.items:
            shipment = item.shipment
            shipment.handed_over_at = at
            extra: dict[str, Any] = {
                "record_id": self.id,
                "handed_over_at": at,
                "packages_counted": item.packages_counted,
                "discrepancy": item.discrepancy,
            }
            if self.direction == Direction.PICKUP:
                extra["outcome"] = item.outcome.value
                extra["reason"] = item.reason
                extra["filed_at"] = at if item.outcome == ItemOutcome.RECEIVED else None
            shipment._record("handed_over", at, **extra)
