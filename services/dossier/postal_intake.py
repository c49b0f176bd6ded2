"""How a dossier follows the postal service's events (docs/domain.md §8 Postal flows; issue 9).

There is no shared database: the postal service announces, the dossier service applies.

* ``postal.handed_over`` of a **pickup**: the desk signed the hand-over record and received the
  dossier — it is filed at **the record's signing time** (``filed_at``), which starts its clock and
  fixes its appointment — or refused it with a reason (Form 03).
* ``postal.delivered`` of a **delivery**: the result reached the applicant (or an authorised
  proxy); delivery is the return — status 10, returned at the delivery time, method postal.
* ``postal.returned_to_sender``: the result is back at the desk; the dossier stays resolved and waits
  for the desk to return it at the counter (the ``return`` action) or to ask postal for a new delivery.

Each event is applied once (the inbox), through the same domain methods the desk's actions use, with
an audit line whose actor is the postal service. An event the dossier's status no longer allows (a
dossier withdrawn before its hand-over) is logged and acknowledged: retrying cannot make it apply.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from services.dossier.repository import AuditEntry
from shared.domain import DomainError
from shared.events import Event
from shared.vocabulary import ReturnMethod

if TYPE_CHECKING:
    from services.dossier.service_layer import Office, UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "dossier.postal-events"
BINDINGS = ["postal.handed_over.#", "postal.delivered.#", "postal.returned_to_sender.#"]
ACTOR = "postal-service"


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def apply(event: Event, uow: UnitOfWork, office: Office) -> bool | None:
    """Apply one postal event to its dossier; False for a redelivery (nothing changes)."""
    data = event.data
    calendar = office.calendar
    with uow.transaction() as tx:
        if not tx.first_delivery(event, QUEUE):
            return False
        dossiers = office.dossiers(tx, ACTOR)
        dossier = dossiers.get(event.subject, for_update=True)
        if dossier is None:
            log.warning("%s for unknown dossier %s: ignored", event.type, event.subject)
            return None
        before = dossier.status
        details = {"consignment": data["consignment"], "shipment_id": data["shipment_id"]}
        try:
            if event.name == "handed_over" and data["direction"] == "pickup":
                at = _moment(data["handed_over_at"])
                details["record_id"] = data["record_id"]
                if data["outcome"] == "received":
                    dossier.receive(now=at, calendar=calendar)
                    action, reason = "receive", "received from the postal hand-over record"
                else:
                    dossier.refuse(reason=data["reason"], now=at)
                    action, reason = "refuse", data["reason"]
            elif event.name == "delivered" and data["direction"] == "delivery":
                at = _moment(data["occurred_at"])
                dossier.return_result(now=at, calendar=calendar, method=ReturnMethod.POSTAL)
                action, reason = (
                    "return",
                    f"delivered by post to the {data.get('recipient_kind', 'applicant')}",
                )
            elif event.name == "returned_to_sender" and data["direction"] == "delivery":
                at = _moment(data["occurred_at"])
                action, reason = "postal_returned_to_sender", "the result came back to the desk"
            else:
                return None
        except DomainError as exc:
            log.warning(
                "%s for dossier %s not applied (status %s): %s", event.type, dossier.code, before, exc
            )
            return None
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
