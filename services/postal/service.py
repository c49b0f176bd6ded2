"""The postal service's entrypoints: parse, check who may act, call the service layer, respond.

Where a shipment's life is decided: :mod:`services.postal.domain.model` (statuses:
:mod:`services.postal.domain.tracking`). The use cases: :mod:`services.postal.service_layer`.
The operator behind one interface: :mod:`services.postal.operator`. Events leave through the outbox
of :class:`shared.uow.UnitOfWork`.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime

from services.postal import repository
from services.postal import service_layer as postal
from services.postal.dependencies import Adapters, watch_timer
from services.postal.models import SERVICE, pipeline, webhook_rejections
from services.postal.openapi import document as openapi_document
from services.postal.schemas import (
    DOSSIER_CODE,
    HandoverRecordRequestSchema,
    PickupRequestSchema,
    PostalReturnRequestSchema,
    PostalReturnSchema,
    RedeliveryRequestSchema,
    SignatureRequestSchema,
)
from shared import clock, retention
from shared.auth import Auth, Principal
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.problems import Conflict, Forbidden, NotFound, ServiceUnavailable
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

PICKUP_REQUEST = PickupRequestSchema()
RECORD_REQUEST = HandoverRecordRequestSchema()
SIGNATURE_REQUEST = SignatureRequestSchema()
RETURN_REQUEST = PostalReturnRequestSchema()
RETURN = PostalReturnSchema()
REDELIVERY_REQUEST = RedeliveryRequestSchema()
STAFF_ROLES = ("desk_officer", "handling_officer", "leader", "clerk", "auditor", "postal_operator")
RETURN_ROLES = ("desk_officer", "portal", "clerk")
POSTAL_RETURN = 1  # the dossier events' return_method code for "by post"
ENDED_QUEUE = "postal.dossier-ended"
_CODE = re.compile(DOSSIER_CODE)


class PostalService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline)
    # Refused deliveries are kept for forensics for RETENTION_REJECTED_WEBHOOKS_DAYS; accepted reports
    # are the shipment's record and stay with it.
    retained = (retention.Prunable(webhook_rejections, "received_at", "RETENTION_REJECTED_WEBHOOKS_DAYS"),)
    auth = Auth()
    units = Units()
    calendar = Calendar()
    adapters = Adapters()

    # --- the operator's webhooks (docs/contracts.md §3) -------------------------------------------

    @api("POST", "/api/v1/webhooks/<string:operator>")
    def webhook(self, request, operator):
        """A tracking report, Standard-Webhooks signed; stored before the 2xx."""
        command = postal.ReceiveWebhook(
            operator=operator,
            raw_body=request.get_data(cache=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            remote_addr=request.remote_addr,
        )
        return postal.receive_webhook(command, self.uow, self.adapters.verifier, self.calendar, clock.now())

    # --- pickups -----------------------------------------------------------------------------------

    @api("POST", "/api/v1/pickups")
    def request_pickup(self, request):
        """Nhận hồ sơ tại nhà: register the dossier (status 1, channel postal) and order the pickup."""
        principal = self.auth.principal(request)
        principal.require_role("portal", "postal_operator")
        body = read_json(request, PICKUP_REQUEST)
        key = request.headers.get("Idempotency-Key")
        shipment_id = postal.derived_id(principal.sub, key) if key else str(uuid.uuid4())
        command = postal.RequestPickup(shipment_id, principal, request.headers["Authorization"], body)
        prepared = postal.prepare_pickup(command, self.adapters.operator, self.adapters.dossiers, self.units)
        name = self.adapters.operator.name
        return idempotent(
            self.uow,
            principal.sub,
            request,
            lambda tx: postal.store_pickup(tx, prepared, name, clock.now()),
        )

    @api("GET", "/api/v1/shipments/<string:code>")
    def shipments(self, request, code):
        """A dossier's shipments, both directions, oldest first (no contact data)."""
        principal = self._staff(request)
        with self.uow.transaction() as tx:
            found = repository.shipments_of(tx.session, code) if _CODE.match(code) else []
        visible = [s for s in found if principal.covers(self.units, s.receiving_unit)]
        if not visible:
            raise NotFound(f"no shipments of dossier {code}")
        return {"dossier_code": code, "results": [postal.present_shipment(s) for s in visible]}

    # --- hand-over records (biên bản giao nhận) ---------------------------------------------------

    @api("POST", "/api/v1/handover-records")
    def draw_up_record(self, request):
        """List the consignments on the counter with the packages counted; discrepancies are recorded."""
        principal = self.auth.principal(request)
        body = read_json(request, RECORD_REQUEST)
        name = self.adapters.operator.name

        def change(tx):
            record = postal.draw_up_record(tx, principal, body, name, self.units, clock.now())
            return 201, postal.present_record(record), {"Location": f"/api/v1/handover-records/{record.id}"}

        status, answer, headers = idempotent(self.uow, principal.sub, request, change)
        if status == 201 and "Idempotent-Replayed" not in headers:
            postal.alert_discrepancies(answer)
        return status, answer, headers

    @api("GET", "/api/v1/handover-records/<string:record_id>")
    def record(self, request, record_id):
        principal = self._staff(request)
        with self.uow.transaction() as tx:
            return postal.present_record(postal.readable_record(tx, principal, record_id, self.units))

    @api("POST", "/api/v1/handover-records/<string:record_id>/signatures")
    def sign_record(self, request, record_id):
        """One side signs (postal_operator or desk_officer); the second signature is the record's time."""
        principal = self.auth.principal(request)
        body = read_json(request, SIGNATURE_REQUEST)

        def change(tx):
            record = postal.sign_record(tx, principal, record_id, body, self.units, clock.now())
            return 200, postal.present_record(record)

        answer = idempotent(self.uow, principal.sub, request, change)
        # a co-signed delivery record releases its results: tell the operator (the watch retries)
        postal.call_operator(self.uow, self.adapters.operator, clock.now())
        return answer

    # --- returns by post ---------------------------------------------------------------------------

    @api("PUT", "/api/v1/postal-returns/<string:code>")
    def give_return_address(self, request, code):
        """Where the result goes (recipient, address, phone) and which signed document it is."""
        principal = self.auth.principal(request)
        principal.require_role(*RETURN_ROLES)
        if not _CODE.match(code):
            raise NotFound(f"no dossier {code}")
        body = read_json(request, RETURN_REQUEST)
        command = postal.GiveReturnAddress(code, principal, body)
        with self.uow.transaction() as tx:
            postal.give_return_address(tx, command, self.units, clock.now())
        try:
            postal.open_delivery(
                postal.OpenDelivery(code), self.uow, self.adapters.operator, self.units, clock.now()
            )
        except ServiceUnavailable as exc:
            log.warning("delivery of %s not opened yet (the watch retries): %s", code, exc.detail)
        return self._postal_return(principal, code)

    @api("GET", "/api/v1/postal-returns/<string:code>")
    def postal_return(self, request, code):
        principal = self.auth.principal(request)
        principal.require_role(*RETURN_ROLES, *STAFF_ROLES)
        return self._postal_return(principal, code)

    @api("POST", "/api/v1/postal-returns/<string:code>/deliveries")
    def deliver_again(self, request, code):
        """After the last delivery came back, the desk sends the result again (to a corrected address,
        if given); the cause is recorded and the fee goes to whoever caused it."""
        principal = self.auth.principal(request)
        principal.require_role("desk_officer")
        body = read_json(request, REDELIVERY_REQUEST)
        with self.uow.transaction() as tx:
            row = repository.postal_return(tx.session, code) if _CODE.match(code) else None
        if row is None or not principal.covers(self.units, row.receiving_unit):
            raise NotFound(f"dossier {code} has no return by post")
        shipment = postal.open_delivery(
            postal.OpenDelivery(code, again=True, cause=body["cause"], recipient=body.get("recipient")),
            self.uow,
            self.adapters.operator,
            self.units,
            clock.now(),
        )
        if shipment is None:
            raise Conflict(f"the result of dossier {code} is not ready to go by post")
        return 201, postal.present_shipment(shipment)

    # --- what the dossier service tells -----------------------------------------------------------

    @event_consumer("postal.dossier-resolved", ["dossier.resolved.#"])
    def on_dossier_resolved(self, event: Event):
        """A result to return by post is ready: open its delivery once the recipient is known."""
        if event.data.get("return_method") != POSTAL_RETURN:
            return False
        command = postal.DossierResolved(
            event.subject, event.data["receiving_unit"], datetime.fromisoformat(event.data["resolved_at"])
        )
        with self.uow.transaction() as tx:
            postal.mark_resolved(tx, command)
        try:
            postal.open_delivery(
                postal.OpenDelivery(event.subject),
                self.uow,
                self.adapters.operator,
                self.units,
                clock.now(),
            )
        except ServiceUnavailable as exc:
            # Remembered above: the watch opens it once the operator answers again.
            log.warning("delivery of %s not opened yet (the watch retries): %s", event.subject, exc.detail)
        return None

    @event_consumer(ENDED_QUEUE, ["dossier.withdrawn.#", "dossier.refused.#", "dossier.returned.#"])
    def on_dossier_ended(self, event: Event):
        """A dossier ended: cancel at the operator whatever still runs for it (a retried cancel is owed)."""
        if event.name == "returned":
            if event.data.get("return_method") == POSTAL_RETURN:
                return False  # returned by post: its delivery is delivered, nothing runs
            reason = "dossier_returned_at_counter"
        else:
            reason = postal.DOSSIER_ENDINGS[event.name]
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, ENDED_QUEUE):
                return False
            asked = postal.dossier_ended(tx, postal.DossierEnded(event.subject, reason, clock.now()))
        if asked:
            postal.call_operator(self.uow, self.adapters.operator, clock.now(), dossier_code=event.subject)
        return None

    @watch_timer
    def watch(self) -> None:
        """Gauges, stuck shipments, and deliveries an operator outage left unopened."""
        postal.watch(self.uow, self.adapters.operator, self.units, clock.now())

    # --- helpers -------------------------------------------------------------------------------------

    def _staff(self, request) -> Principal:
        principal = self.auth.principal(request)
        if not principal.has_role(*STAFF_ROLES):
            raise Forbidden(f"this needs one of the roles: {', '.join(STAFF_ROLES)}")
        return principal

    def _postal_return(self, principal: Principal, code: str) -> dict:
        with self.uow.transaction() as tx:
            row = repository.postal_return(tx.session, code) if _CODE.match(code) else None
            if row is None or not principal.covers(self.units, row.receiving_unit):
                raise NotFound(f"dossier {code} has no return by post")
            deliveries = [s for s in repository.shipments_of(tx.session, code) if s.direction == "delivery"]
        return RETURN.dump(
            {
                "dossier_code": code,
                "receiving_unit": row.receiving_unit,
                "result_document": row.result_document,
                "resolved_at": row.resolved_at,
                "recipient_given": row.recipient_address is not None,
                "delivery": deliveries[-1] if deliveries else None,
            }
        )
