"""Shipments and hand-over records (biên bản giao nhận), as plain Python: no framework, no SQL.

Decision 45/2016/QĐ-TTg makes the public postal operator a channel both ways:

* a **pickup** shipment carries a dossier from the applicant's door to the desk; the desk and the
  postal worker co-sign a hand-over record, and **the record's signing time is the filing time**;
* a **delivery** shipment carries the result from the desk to the applicant; delivery is the return.

The operator reports progress through webhooks. :meth:`Shipment.track` applies one report: a report
that would move the shipment backwards on the status lattice (``in_transit`` after
``out_for_delivery``, anything after ``delivered``), or one older than the last report applied — by the
operator's own clock, never compared with this service's — is recorded and changes nothing. A delivery
moves only once the desk and the postal worker co-signed its hand-over record: the sealed result leaves
the desk on that record, so a report before it is stored, alerted on, and moves nothing.

A dossier's return by post (:class:`PostalReturn`) says where its result goes and when a delivery
may open: only once the result is ready and its recipient known, again only after the last delivery
came back, and never after the dossier ended.

Time is always passed in. The aggregates (:class:`Shipment`, :class:`HandoverRecord`,
:class:`PostalReturn`) subclass ``shared.domain.Aggregate``; a shipment records the typed events of
:mod:`.events`, which the unit of work publishes at commit. A refused change raises the shared
domain errors (``Conflict``, ``Invalid``) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.postal.domain import events as ev
from shared.domain import Aggregate, Conflict, DomainEvent, Invalid


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
    BEFORE_HANDOVER = "before_handover"  # a delivery's report before its co-signed hand-over: stored, alerted


# Why an operator says it lost a package (its cause, mapped onto these codes; anything else is "other").
LOSS_CAUSES = ("lost_in_transit", "damaged", "theft", "force_majeure", "other")
# Why an order was cancelled: what ended the dossier (motcua asked), or the operator on its own.
CANCEL_REASONS = (
    "dossier_withdrawn",
    "dossier_refused",
    "dossier_returned_at_counter",
    "operator_cancelled",
)
# Why a result goes out a second time, and who pays for it (Decision 45/2016: whoever caused it).
REDELIVERY_CAUSES: dict[str, str] = {
    "recipient_absent": "applicant",  # nobody at the address on every attempt
    "recipient_refused": "applicant",
    "address_wrong": "applicant",  # the address the applicant gave was wrong: corrected now
    "operator_fault": "operator",  # the postal worker did not deliver as agreed
    "lost_by_operator": "operator",  # the operator lost the last delivery (it compensates as well)
    "agency_error": "agency",  # the desk wrote a wrong address or sent the wrong document
}
PAYERS = ("applicant", "operator", "agency")


# The event each status the operator reports moves a shipment into.
TRACKED: dict[ShipmentStatus, type[ev.Tracked]] = {
    ShipmentStatus.PICKED_UP: ev.PickedUp,
    ShipmentStatus.IN_TRANSIT: ev.InTransit,
    ShipmentStatus.OUT_FOR_DELIVERY: ev.OutForDelivery,
    ShipmentStatus.DELIVERY_FAILED: ev.DeliveryFailed,
    ShipmentStatus.RETURNED_TO_SENDER: ev.ReturnedToSender,
    ShipmentStatus.DELIVERED: ev.Delivered,
    ShipmentStatus.CANCELLED: ev.Cancelled,
}


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
    compensation_vnd: int | None = None  # with a loss: what the operator pays
    loss_cause: str | None = None  # with a loss: the operator's cause (mapped onto LOSS_CAUSES)


@dataclass(eq=False, kw_only=True)
class Shipment(Aggregate):
    """One consignment of the operator, either direction; ``dossier_code`` ties it to a dossier (the
    subject of its events; a dossier may have several shipments)."""

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
    status_at: datetime | None = None  # the operator's time of the last report applied (None: none yet)
    attempts: int = 0
    # Each distinct attempt the operator reported (delivery_failed or delivered, at its time), in any order.
    attempt_reports: list[tuple[ShipmentStatus, datetime]] = field(default_factory=list)
    delivered_at: datetime | None = None
    recipient_kind: str | None = None
    recipient_name: str | None = None
    result_document: dict[str, Any] | None = None
    charged_to: str = "applicant"
    handed_over_at: datetime | None = None
    lost_at: datetime | None = None
    loss_cause: str | None = None
    compensation_vnd: int | None = None
    cancel_reason: str | None = None  # motcua asked the operator to cancel, because of this
    redelivery_cause: str | None = None  # a second delivery: why (and so who pays, charged_to)
    events: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def order(cls, **terms: Any) -> Shipment:
        """The operator accepted an order: the shipment exists, status ``created``."""
        shipment = cls(**terms)
        if shipment.redelivery_cause is not None:
            shipment.charged_to = redelivery_payer(shipment.redelivery_cause)
        shipment._record(
            ev.Ordered,
            shipment.created_at,
            fee_vnd=shipment.fee_vnd,
            charged_to=shipment.charged_to,
            redelivery_cause=shipment.redelivery_cause,
        )
        return shipment

    @property
    def subject(self) -> str:
        return self.dossier_code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, None

    @property
    def awaits_handover(self) -> bool:
        """A delivery whose sealed result the desk has not yet handed to the postal worker on a record."""
        return self.direction == Direction.DELIVERY and self.handed_over_at is None

    def track(self, report: Report) -> TrackingOutcome:
        """Apply one operator report; a late or backward report is recorded and changes nothing.

        Reports are ordered by the status lattice first, then by the operator's own times among
        themselves: this service's clock (the order's time) is never compared with the operator's.
        """
        if self.awaits_handover and report.status != ShipmentStatus.CANCELLED:
            # Only the order can be cancelled before the hand-over: nothing else can have happened to it.
            return TrackingOutcome.BEFORE_HANDOVER
        if report.lost:
            return self._lose(report)
        if report.status is None:
            return TrackingOutcome.UNKNOWN_STATUS
        self._count_attempt(report)
        if report.status == self.status:
            return TrackingOutcome.REPEATED
        if report.status not in FORWARD[self.status]:
            return TrackingOutcome.LATE
        if self.status_at is not None and report.occurred_at < self.status_at:
            return TrackingOutcome.LATE
        previous, self.status, self.status_at = self.status, report.status, report.occurred_at
        extra: dict[str, Any] = {"previous_status": previous.value}
        if report.status == ShipmentStatus.DELIVERED:
            self.delivered_at = report.occurred_at
            self.recipient_kind = report.recipient_kind or "applicant"
            self.recipient_name = report.recipient_name
            self.attempts = self._attempts()
            if self.direction == Direction.DELIVERY:
                extra["recipient_kind"] = self.recipient_kind
        if report.status == ShipmentStatus.CANCELLED:
            extra["reason_code"] = self.cancel_reason or "operator_cancelled"
        self._record(TRACKED[report.status], report.occurred_at, **extra)
        return TrackingOutcome.APPLIED

    def _count_attempt(self, report: Report) -> None:
        """An attempt is each distinct failed or successful delivery the operator reports, in any order."""
        if report.status not in (ShipmentStatus.DELIVERY_FAILED, ShipmentStatus.DELIVERED):
            return
        attempt = (report.status, report.occurred_at)
        if attempt not in self.attempt_reports:
            self.attempt_reports.append(attempt)
        self.attempts = self._attempts()

    def _attempts(self) -> int:
        # Nothing follows a delivery: an attempt the operator dates after it did not happen.
        return sum(
            1 for _, at in self.attempt_reports if self.delivered_at is None or at <= self.delivered_at
        )

    def _lose(self, report: Report) -> TrackingOutcome:
        if self.is_final:
            return TrackingOutcome.LATE  # delivered, returned or cancelled: it cannot be lost any more
        if self.compensation_vnd is None and report.compensation_vnd is not None:
            self.compensation_vnd = report.compensation_vnd  # a later report may bring the amount
        if self.lost_at is not None:
            return TrackingOutcome.REPEATED
        self.lost_at = report.occurred_at
        self.loss_cause = report.loss_cause if report.loss_cause in LOSS_CAUSES else "other"
        self._record(
            ev.Lost,
            report.occurred_at,
            reason_code=self.loss_cause,
            compensation_vnd=self.compensation_vnd,
        )
        return TrackingOutcome.LOST

    def request_cancel(self, reason: str) -> bool:
        """The dossier ended: ask the operator to cancel; False when nothing is left to cancel."""
        if reason not in CANCEL_REASONS:
            raise Invalid("reason", f"unknown cancel reason {reason!r}")
        if self.is_closed or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        return True

    @property
    def is_final(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_closed(self) -> bool:
        """Nothing more will come of it: final, or lost by the operator."""
        return self.is_final or self.lost_at is not None

    @property
    def came_back(self) -> bool:
        """The result is not with the applicant and nothing is under way: it may go out again."""
        return self.status in (ShipmentStatus.RETURNED_TO_SENDER, ShipmentStatus.CANCELLED) or (
            self.lost_at is not None
        )

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

    def hand_over(self, *, record_id: str, at: datetime, item: RecordItem, direction: Direction) -> None:
        """A co-signed record listed this consignment: a pickup's dossier is received (filed at the
        record's time) or refused; a delivery's result left the desk, so its tracking may now move it."""
        self.handed_over_at = at
        extra: dict[str, Any] = {
            "record_id": record_id,
            "handed_over_at": at,
            "packages_counted": item.packages_counted,
            "discrepancy": item.discrepancy,
        }
        if direction == Direction.PICKUP:
            extra["outcome"] = item.outcome.value
            extra["reason_code"] = item.reason_code
            extra["has_reason_text"] = bool(item.reason)
            extra["filed_at"] = at if item.outcome == ItemOutcome.RECEIVED else None
        self._record(ev.HandedOver, at, **extra)

    def _record(self, event: type[ev.ShipmentEvent], at: datetime, **extra: Any) -> None:
        self.record(event(**self.facts(at), **extra))


def redelivery_payer(cause: str) -> str:
    """Who pays a second delivery: whoever caused it (Decision 45/2016)."""
    try:
        return REDELIVERY_CAUSES[cause]
    except KeyError:
        raise Invalid("cause", f"unknown redelivery cause {cause!r}") from None


def check_redelivery(last: Shipment | None, cause: str) -> str:
    """A new delivery goes only after the last one came back; returns who pays for it."""
    payer = redelivery_payer(cause)
    if last is None or not last.came_back:
        raise Conflict(
            "a new delivery is possible only after the last one came back to the desk, was lost or "
            "was cancelled"
        )
    if last.lost_at is not None and payer != "operator":
        raise Conflict("the operator lost the last delivery: the new one is its cost (lost_by_operator)")
    return payer


def may_change_address(deliveries: list[Shipment]) -> bool:
    """The recipient's address may change until a delivery is under way, and again once it came back."""
    return not deliveries or deliveries[-1].came_back


class ItemOutcome(StrEnum):
    RECEIVED = "received"  # completeness checked: the dossier is filed at the record's signing time
    REFUSED = "refused"  # Form 03, with a reason


@dataclass(kw_only=True)
class RecordItem:
    """One consignment on a hand-over record: what was declared, what was counted, what the desk did."""

    shipment: Shipment
    packages_counted: int
    outcome: ItemOutcome | None = None
    reason: str | None = None  # the desk's text (Form 03): kept on the record, never on an event
    reason_code: str | None = None

    @property
    def discrepancy(self) -> str | None:
        if self.packages_counted == 0:
            return "missing"
        if self.packages_counted != self.shipment.packages:
            return "count_mismatch"
        return None


SIDES = {"postal_operator": "operator", "desk_officer": "desk"}
# The desk's decision on one dossier of a pickup record: outcome, the reason's text, its code.
Decision = tuple[ItemOutcome, str | None, str | None]


@dataclass(eq=False, kw_only=True)
class HandoverRecord(Aggregate):
    """Biên bản giao nhận: the consignments handed over at the desk, co-signed by both sides.

    A record lists consignments of several dossiers, so it records no event of its own: completing
    it makes each listed shipment record its ``handed_over`` (:meth:`Shipment.hand_over`).

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
            raise Conflict("a hand-over record lists at least one consignment")
        seen: set[str] = set()
        for shipment, packages in counted:
            if shipment.consignment in seen:
                raise Conflict(f"consignment {shipment.consignment} is listed twice")
            seen.add(shipment.consignment)
            if shipment.direction != direction:
                raise Conflict(f"consignment {shipment.consignment} is a {shipment.direction} shipment")
            if shipment.receiving_unit != receiving_unit:
                raise Conflict(
                    f"consignment {shipment.consignment} belongs to unit {shipment.receiving_unit}"
                )
            if shipment.handed_over_at is not None:
                raise Conflict(f"consignment {shipment.consignment} was already handed over")
            if shipment.is_final and direction == Direction.DELIVERY:
                raise Conflict(f"consignment {shipment.consignment} is {shipment.status}")
            if direction == Direction.DELIVERY and (shipment.lost_at or shipment.cancel_reason):
                raise Conflict(f"consignment {shipment.consignment} is lost or being cancelled")
            if shipment.status == "cancelled":
                raise Conflict(f"consignment {shipment.consignment} was cancelled")
            if packages < 0:
                raise Conflict("a package count cannot be negative")
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
        decisions: dict[str, Decision] | None = None,
    ) -> bool:
        """One side signs; True when this completes the record. A side signs once, ever."""
        if self.signed_at is not None:
            raise Conflict("the record is signed by both sides; it cannot change")
        if side == "operator":
            if self.operator_signed_at is not None:
                raise Conflict("the operator has already signed this record")
            self.operator_signed_by, self.operator_signed_at = signer, now
        elif side == "desk":
            if self.desk_signed_at is not None:
                raise Conflict("the desk has already signed this record")
            self._decide(decisions or {})
            self.desk_signed_by, self.desk_signed_at = signer, now
        else:
            raise Conflict(f"unknown side {side!r}")
        if self.signed_at is None:
            return False
        self._complete()
        return True

    def _decide(self, decisions: dict[str, Decision]) -> None:
        listed = {item.shipment.consignment for item in self.items}
        unknown = sorted(set(decisions) - listed)
        if unknown:
            raise Conflict(f"not on this record: {', '.join(unknown)}")
        if self.direction == Direction.DELIVERY:
            if decisions:
                raise Conflict("a delivery record carries no decisions")
            return
        missing = sorted(listed - set(decisions))
        if missing:
            raise Conflict(f"decide every dossier on the record; undecided: {', '.join(missing)}")
        for item in self.items:
            outcome, reason = decisions[item.shipment.consignment][:2]
            if outcome == ItemOutcome.REFUSED and not (reason and reason.strip()):
                raise Conflict(f"refusing {item.shipment.consignment} needs a reason (Form 03)")
            if outcome == ItemOutcome.RECEIVED and item.discrepancy == "missing":
                raise Conflict(
                    f"{item.shipment.consignment}: no package was handed over; it cannot be received"
                )
        for item in self.items:  # all checked first: a refused signature changes nothing
            item.outcome, item.reason, item.reason_code = decisions[item.shipment.consignment]
            if item.outcome == ItemOutcome.RECEIVED:
                item.reason_code = None

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, None

    def _complete(self) -> None:
        for item in self.items:
            item.shipment.hand_over(record_id=self.id, at=self.signed_at, item=item, direction=self.direction)


@dataclass(frozen=True)
class DeliveryPlan:
    """What a new delivery of a result is: its id, where and to whom it goes, what, and who pays."""

    shipment_id: str
    receiving_unit: str
    recipient: dict[str, str]
    result_document: dict[str, Any] | None
    charged_to: str
    cause: str | None = None


@dataclass(eq=False, kw_only=True)
class PostalReturn(Aggregate):
    """How one dossier's result goes back by post: the recipient and address (given through an
    authorised call, or with the pickup), the result document, and whether the result is ready
    (``resolved_at``) or the dossier ended (``closed_at``: no delivery opens any more).

    Its deliveries are the dossier's delivery shipments, oldest first; they are passed in.
    """

    dossier_code: str
    receiving_unit: str
    updated_at: datetime
    recipient_name: str | None = None
    recipient_phone: str | None = None
    recipient_address: str | None = None
    result_document: dict[str, Any] | None = None
    given_by: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def subject(self) -> str:
        return self.dossier_code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, None

    @property
    def recipient(self) -> dict[str, str] | None:
        if self.recipient_address is None:
            return None
        return {"name": self.recipient_name, "phone": self.recipient_phone, "address": self.recipient_address}

    @classmethod
    def resolved(cls, dossier_code: str, receiving_unit: str, at: datetime) -> PostalReturn:
        """A result to return by post is ready before anyone gave its address."""
        return cls(dossier_code=dossier_code, receiving_unit=receiving_unit, resolved_at=at, updated_at=at)

    def resolve(self, at: datetime) -> None:
        """The result is ready (the first report of it counts)."""
        if self.resolved_at is None:
            self.resolved_at = at

    def close(self, at: datetime) -> None:
        """The dossier ended (withdrawn, refused, returned at the counter): no delivery opens after."""
        if self.closed_at is None:
            self.closed_at = at

    def address(
        self,
        *,
        given_by: str | None,
        now: datetime,
        recipient: dict[str, str] | None = None,
        result_document: dict[str, Any] | None = None,
    ) -> None:
        """Record the recipient and address and/or the result document (what is not given stays)."""
        self.updated_at = now
        if given_by is not None:
            self.given_by = given_by
        if recipient is not None:
            self.recipient_name = recipient["name"]
            self.recipient_phone = recipient["phone"]
            self.recipient_address = recipient["address"]
        if result_document is not None:
            self.result_document = result_document

    def give(
        self,
        *,
        unit: str,
        deliveries: list[Shipment],
        given_by: str,
        now: datetime,
        recipient: dict[str, str] | None = None,
        result_document: dict[str, Any] | None = None,
    ) -> None:
        """Where the result goes: through the dossier's own unit, and changeable until a delivery is
        under way, and again once it came back."""
        if unit != self.receiving_unit:
            raise Conflict(
                f"dossier {self.dossier_code} is returned through unit {self.receiving_unit}, not {unit}"
            )
        if not may_change_address(deliveries):
            raise Conflict(
                "the delivery is on its way or done; the address can change again only once it came back"
            )
        self.address(given_by=given_by, now=now, recipient=recipient, result_document=result_document)

    def next_delivery(
        self,
        deliveries: list[Shipment],
        *,
        shipment_id: str,
        now: datetime,
        again: bool = False,
        cause: str | None = None,
        recipient: dict[str, str] | None = None,
    ) -> DeliveryPlan | Shipment | None:
        """What opening a delivery means now: None when the result is not ready, the dossier ended or
        no address is known; the delivery already opened (by the other path: event, API, watch), unless
        the desk sends it ``again``; or the plan of a new one. ``again`` needs the last delivery back,
        names its ``cause`` (who pays) and may correct the recipient, kept even if nothing opens."""
        if self.resolved_at is None or self.closed_at is not None:
            return None
        if deliveries and not again:
            still_open = [s for s in deliveries if not s.is_closed]
            return still_open[-1] if still_open else deliveries[-1]
        charged_to = "applicant"
        if again:
            charged_to = check_redelivery(deliveries[-1] if deliveries else None, cause or "")
            if recipient is not None:
                self.address(given_by=None, now=now, recipient=recipient)
        if self.recipient is None:
            return None
        return DeliveryPlan(
            shipment_id=shipment_id,
            receiving_unit=self.receiving_unit,
            recipient=self.recipient,
            result_document=self.result_document,
            charged_to=charged_to,
            cause=cause if again else None,
        )
