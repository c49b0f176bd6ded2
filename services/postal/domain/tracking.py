"""From an operator's tracking status names to the statuses of docs/contracts.md §3 Postal operator webhooks.

Operators name their statuses their own way, and add new ones without warning. A name this table
does not know maps to ``None``: the safe default is *no movement* — the report is stored, counted in
``motcua_postal_unknown_statuses_total`` (alerted on), and the shipment stays where it was, since
guessing forward could announce a delivery that never happened.

To support another operator, add its names to ``OPERATOR_STATUSES``.
"""

from __future__ import annotations

from services.postal.domain.model import ShipmentStatus

S = ShipmentStatus
# The simulator (and the public operator's integration it imitates) speaks these names.
COMMON: dict[str, ShipmentStatus] = {
    "created": S.CREATED,
    "accepted": S.CREATED,
    "picked_up": S.PICKED_UP,
    "collected": S.PICKED_UP,
    "in_transit": S.IN_TRANSIT,
    "arrived_at_hub": S.IN_TRANSIT,
    "out_for_delivery": S.OUT_FOR_DELIVERY,
    "delivered": S.DELIVERED,
    "delivery_failed": S.DELIVERY_FAILED,
    "failed_attempt": S.DELIVERY_FAILED,
    "returned_to_sender": S.RETURNED_TO_SENDER,
    "returned": S.RETURNED_TO_SENDER,
    "cancelled": S.CANCELLED,
    "canceled": S.CANCELLED,
}
del S
OPERATOR_STATUSES: dict[str, dict[str, ShipmentStatus]] = {"vnpost": COMMON}
# Not a step of the journey but an incident: the package is gone (the operator compensates).
LOST = frozenset({"lost", "package_lost"})


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def is_lost(name: str) -> bool:
    """The operator reports the package lost."""
    return _normal(name) in LOST


def map_status(operator: str, name: str) -> ShipmentStatus | None:
    """The contract status for ``name`` as ``operator`` reports it; None when it is unknown."""
    table = OPERATOR_STATUSES.get(operator, COMMON)
    return table.get(_normal(name))
