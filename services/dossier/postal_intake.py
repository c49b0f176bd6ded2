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

Each event is applied once (the inbox), through the dossier's own methods (``PostalReport`` rules),
with an audit line whose actor is the postal service. An event the dossier's status no longer allows
is logged and acknowledged — at INFO when the dossier is final (the expected end of a cancelled
order), else at WARNING: retrying cannot make it apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.dossier.domain.model import Dossier
from services.dossier.repository import AuditEntry, Dossiers
from shared.domain import DomainError
from shared.events import Event
from shared.vocabulary import FINAL
from shared.workcalendar import WorkingCalendar

if TYPE_CHECKING:
    from services.dossier.service_layer import Office, UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "dossier.postal-events"
BINDINGS = [
    f"postal.{name}.#"
    for name in ("handed_over", "delivered", "returned_to_sender", "lost", "cancelled", "ordered")
]
ACTOR = "postal-service"
# Form 03's reason for a refusal on the record: the desk's own words stay on the record (postal API).
REFUSED_ON_RECORD = "Từ chối tiếp nhận trên biên bản giao nhận với bưu chính (lý do ghi trên biên bản)"

# What one report did: the audit line's action and reason.
Applied = tuple[str, str]
Change = Callable[[Dossier, Mapping[str, Any], datetime, WorkingCalendar, Dossiers], Applied | None]


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _pickup_handed_over(
    dossier: Dossier, data: Mapping[str, Any], at: datetime, calendar: WorkingCalendar, dossiers: Dossiers
) -> Applied:
    if data["outcome"] == "received":
        dossier.receive_by_record(now=at, calendar=calendar)
        return "receive", "received on the pickup's hand-over record"
    dossiers.reason_code = data["reason_code"] or "other"
    dossier.refuse_by_record(reason=REFUSED_ON_RECORD, now=at)
    return "refuse", f"refused on the hand-over record ({dossiers.reason_code})"


def _pickup_failed(cause: str) -> Change:
    def change(dossier, data, at, calendar, dossiers) -> Applied:
        dossiers.reason_code = cause
        dossier.pickup_failed(cause=cause, now=at)
        return cause, f"the pickup ended without reaching the desk ({cause})"

    return change


def _delivered(dossier, data, at, calendar, dossiers) -> Applied:
    dossier.delivered_by_post(now=at, calendar=calendar)
    return "return", f"delivered by post to the {data.get('recipient_kind') or 'applicant'}"


def _delivery_failed(cause: str, action: str) -> Change:
    def change(dossier, data, at, calendar, dossiers) -> Applied:
        dossier.delivery_failed(cause=cause, shipment_id=data["shipment_id"], now=at)
        return action, f"{cause}: return the result at the counter or deliver it again"

    return change


def _delivery_ordered(dossier, data, at, calendar, dossiers) -> Applied | None:
    if not dossier.tasks:
        return None  # the first delivery of the result: no task to answer
    dossier.delivery_ordered(shipment_id=data["shipment_id"])
    return "postal_delivery_ordered", "a new delivery of the result answers the desk's task"


# (event name, shipment direction) -> what it does to the dossier, at which of the event's times.
CHANGES: dict[tuple[str, str], tuple[str, Change]] = {
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


def apply(event: Event, uow: UnitOfWork, office: Office) -> bool | None:
    """Apply one postal event to its dossier; False for a redelivery (nothing changes)."""
    data = event.data
    calendar = office.calendar
    with uow.transaction() as tx:
        if not tx.first_delivery(event, QUEUE):
            return False
        known = CHANGES.get((event.name, data.get("direction", "")))
        if known is None:
            return None
        dossiers = office.dossiers(tx, ACTOR)
        dossier = dossiers.get(event.subject, for_update=True)
        if dossier is None:
            log.warning("%s for unknown dossier %s: ignored", event.type, event.subject)
            return None
        when, change = known
        at = _moment(data[when])
        before = dossier.status
        try:
            applied = change(dossier, data, at, calendar, dossiers)
        except DomainError as exc:
            level = logging.INFO if before in FINAL else logging.WARNING
            log.log(
                level, "%s for dossier %s not applied (status %s): %s", event.type, dossier.code, before, exc
            )
            return None
        if applied is None:
            return None
        action, reason = applied
        details = {"consignment": data["consignment"], "shipment_id": data["shipment_id"]}
        if "record_id" in data:
            details["record_id"] = data["record_id"]
        dossier.schedule_watch(calendar, office.settings.due_soon_lead)
        dossiers.audit(
            dossier.code,
            AuditEntry(
                at=at,
                actor=ACTOR,
                roles=["postal_operator"],
                action=action,
                reason=reason,
                status_before=int(before),
                status_after=int(dossier.status),
                request_id=event.id,
                details=details,
            ),
        )
    return None
