"""The postal domain's events: one dataclass per ``postal.*`` event of the catalogue.

Every one carries what a shipment says of itself (:class:`ShipmentEvent`: codes, statuses, units,
dates; never a name, a phone or an address), plus its own fields. A :class:`~.model.Shipment` records
them; the unit of work publishes them at commit (shared/uow.py), validated by the schema of the same
name in :mod:`services.postal.schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from shared.domain import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ShipmentEvent(DomainEvent):
    source: ClassVar[str] = "postal"
    code: str
    shipment_id: str
    direction: str
    operator: str
    consignment: str
    status: str
    receiving_unit: str
    packages: int
    attempts: int
    promised_at: datetime | None
    occurred_at: datetime
    # Members the event's schema has only in one direction: left out of ``data`` in the other.
    only_for: ClassVar[dict[str, str]] = {}

    @property
    def data(self) -> dict[str, Any]:
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if self.only_for.get(field.name, self.direction) == self.direction
        }


@dataclass(frozen=True, kw_only=True)
class Ordered(ShipmentEvent):
    name: ClassVar[str] = "ordered"
    fee_vnd: int
    charged_to: str
    redelivery_cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class Tracked(ShipmentEvent):
    """The operator reported a step forward: the shipment left ``previous_status``."""

    previous_status: str


@dataclass(frozen=True, kw_only=True)
class PickedUp(Tracked):
    name: ClassVar[str] = "picked_up"


@dataclass(frozen=True, kw_only=True)
class InTransit(Tracked):
    name: ClassVar[str] = "in_transit"


@dataclass(frozen=True, kw_only=True)
class OutForDelivery(Tracked):
    name: ClassVar[str] = "out_for_delivery"


@dataclass(frozen=True, kw_only=True)
class DeliveryFailed(Tracked):
    name: ClassVar[str] = "delivery_failed"


@dataclass(frozen=True, kw_only=True)
class ReturnedToSender(Tracked):
    name: ClassVar[str] = "returned_to_sender"


@dataclass(frozen=True, kw_only=True)
class Delivered(Tracked):
    name: ClassVar[str] = "delivered"
    recipient_kind: str | None = None
    only_for: ClassVar[dict[str, str]] = {"recipient_kind": "delivery"}


@dataclass(frozen=True, kw_only=True)
class Cancelled(Tracked):
    name: ClassVar[str] = "cancelled"
    reason_code: str


@dataclass(frozen=True, kw_only=True)
class Lost(ShipmentEvent):
    name: ClassVar[str] = "lost"
    reason_code: str
    compensation_vnd: int | None


@dataclass(frozen=True, kw_only=True)
class HandedOver(ShipmentEvent):
    name: ClassVar[str] = "handed_over"
    record_id: str
    handed_over_at: datetime
    packages_counted: int
    discrepancy: str | None
    # A pickup's: the desk's decision, and the filing time of a received dossier.
    outcome: str | None = None
    reason_code: str | None = None
    has_reason_text: bool | None = None
    filed_at: datetime | None = None
    only_for: ClassVar[dict[str, str]] = {
        "outcome": "pickup",
        "reason_code": "pickup",
        "has_reason_text": "pickup",
        "filed_at": "pickup",
    }
