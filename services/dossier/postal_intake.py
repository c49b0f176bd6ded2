"""How a dossier follows the postal service's events (docs/domain.md §8 Postal flows; issues 9 and 17).

There is no shared database: the postal service announces, the dossier service applies. Every way a
shipment ends reaches the dossier (Decision 45/2016):

* ``postal.handed_over`` of a **pickup**: the desk signed the hand-over record and received the
  dossier — it is filed at **the record's signing time** (``handed_over_at``), which starts its clock
  and fixes its appointment — or refused it with a reason (Form 03). This is the only way a dossier
  that came by post is received or refused: the desk's own ``receive``/``refuse`` answer 409 on it.
* ``postal.lost`` / ``postal.cancelled`` of a **pickup**: the dossier never reached the desk; it is
  not received (status 3, reason code ``pickup_lost`` / ``pickup_cancelled``, Form 03 says why).
* ``postal.delivered`` of a **delivery**: the result reached the applicant (or an authorised
  proxy); delivery is the return — status 10, returned at the delivery time, method postal. Nothing
  else returns a result by post: the desk's ``return`` is a counter return.
* ``postal.returned_to_sender`` / ``postal.lost`` / ``postal.cancelled`` of a **delivery**: the
  dossier stays resolved (status 9) and the desk gets a task (``open_tasks`` of the dossier): return
  the result at the counter, or have it delivered again; ``postal.ordered`` of a new delivery answers
  the task.

The other way round, a counter return (``dossier.returned``, method counter) or a withdrawal ends
whatever still runs at the operator: the postal service cancels it, and its ``postal.cancelled``
then finds the dossier final and changes nothing here.

This module only maps an event to the :class:`~services.dossier.service_layer.Change` it makes: one
``PostalReport`` method of the dossier, the audit line's words, the event's time. The one path of every
change applies it (``service_layer.follow``, then ``apply``): once (the inbox), with an audit line
whose actor is the postal service; an event the dossier's status no longer allows is logged and
acknowledged — at INFO when the dossier is final (the expected end of a cancelled order), else at
WARNING: retrying cannot make it apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from services.dossier import access
from services.dossier.service_layer import Change, Follow, follow
from shared.events import Event

if TYPE_CHECKING:
    from services.dossier.service_layer import Office, UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "dossier.postal-events"
BINDINGS = [
    f"postal.{name}.#"
    for name in ("handed_over", "delivered", "returned_to_sender", "lost", "cancelled", "ordered")
]
SOURCE, ACTOR, ROLE = "postal", "postal-service", "postal_operator"
# Form 03's reason for a refusal on the record: the desk's own words stay on the record (postal API).
REFUSED_ON_RECORD = "Từ chối tiếp nhận trên biên bản giao nhận với bưu chính (lý do ghi trên biên bản)"

# The change's common part (who, which dossier, when), to be given what this event does.
Report = Callable[..., Change]
# What an event does to its dossier, from its data.
ChangeOf = Callable[[Mapping[str, Any], Report], Change]


def _pickup_handed_over(data: Mapping[str, Any], report: Report) -> Change:
    if data["outcome"] == "received":
        return report(
            action="receive",
            reason="received on the pickup's hand-over record",
            perform=lambda dossier, c: dossier.receive_by_record(now=c.now, calendar=c.calendar),
        )
    code = data["reason_code"] or "other"
    return report(
        action="refuse",
        reason=f"refused on the hand-over record ({code})",
        reason_code=code,
        perform=lambda dossier, c: dossier.refuse_by_record(reason=REFUSED_ON_RECORD, now=c.now),
    )


def _pickup_failed(cause: str) -> ChangeOf:
    def change(data: Mapping[str, Any], report: Report) -> Change:
        return report(
            action=cause,
            reason=f"the pickup ended without reaching the desk ({cause})",
            reason_code=cause,
            perform=lambda dossier, c: dossier.pickup_failed(cause=cause, now=c.now),
        )

    return change


def _delivered(data: Mapping[str, Any], report: Report) -> Change:
    return report(
        action="return",
        reason=f"delivered by post to the {data.get('recipient_kind') or 'applicant'}",
        perform=lambda dossier, c: dossier.delivered_by_post(now=c.now, calendar=c.calendar),
    )


def _delivery_failed(cause: str, action: str) -> ChangeOf:
    def change(data: Mapping[str, Any], report: Report) -> Change:
        shipment_id = data["shipment_id"]
        return report(
            action=action,
            reason=f"{cause}: return the result at the counter or deliver it again",
            perform=lambda dossier, c: dossier.delivery_failed(
                cause=cause, shipment_id=shipment_id, now=c.now
            ),
        )

    return change


def _delivery_ordered(data: Mapping[str, Any], report: Report) -> Change:
    shipment_id = data["shipment_id"]
    return report(
        action="postal_delivery_ordered",
        reason="the result goes by post (a new delivery answers the desk's task)",
        # Every delivery order is an audit line, the first too: its consignment is the tracking number the
        # citizen's lookup shows. The first changes nothing else for the dossier (no task, no event).
        perform=lambda dossier, c: dossier.delivery_ordered(shipment_id=shipment_id),
    )


# (event name, shipment direction) -> at which of the event's times, and the change it makes.
CHANGES: dict[tuple[str, str], tuple[str, ChangeOf]] = {
    ("handed_over", "pickup"): ("handed_over_at", _pickup_handed_over),
    ("lost", "pickup"): ("occurred_at", _pickup_failed("pickup_lost")),
    ("cancelled", "pickup"): ("occurred_at", _pickup_failed("pickup_cancelled")),
    ("delivered", "delivery"): ("occurred_at", _delivered),
    ("returned_to_sender", "delivery"): (
        "occurred_at",
        _delivery_failed("returned_to_sender", "postal_returned_to_sender"),
    ),
    ("lost", "delivery"): ("occurred_at", _delivery_failed("delivery_lost", "postal_delivery_lost")),
    ("cancelled", "delivery"): (
        "occurred_at",
        _delivery_failed("delivery_cancelled", "postal_delivery_cancelled"),
    ),
    ("ordered", "delivery"): ("occurred_at", _delivery_ordered),
}


def change_for(event: Event) -> Change | None:
    """The change a postal event makes to its dossier; None for one that concerns no dossier."""
    data = event.data
    known = CHANGES.get((event.name, data.get("direction", "")))
    if known is None:
        return None
    when, change = known
    details = {"consignment": data["consignment"], "shipment_id": data["shipment_id"]}
    if "record_id" in data:
        details["record_id"] = data["record_id"]
    report = partial(
        Change,
        code=event.subject,
        actor=ACTOR,
        roles=(ROLE,),
        authorise=access.reported_by(event.source, SOURCE, ROLE),
        details=details,
        request_id=event.id,
        at=datetime.fromisoformat(data[when]),
    )
    return change(data, report)


def apply(event: Event, uow: UnitOfWork, office: Office) -> bool | None:
    """Apply one postal event to its dossier; False for a redelivery (nothing changes)."""
    return follow(Follow(event, QUEUE, change_for(event), log), uow, office)
