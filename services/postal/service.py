"""The postal service's entrypoints: parse, check who may act, call the service layer, respond.

Where a shipment's life is decided: :mod:`services.postal.domain.model` (statuses:
:mod:`services.postal.domain.tracking`). The use cases: :mod:`services.postal.service_layer`.
The operator behind one interface: :mod:`services.postal.operator`. Events leave through the outbox
of :class:`shared.uow.UnitOfWork`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from marshmallow import ValidationError

from services.postal import metrics
from services.postal import service_layer as postal
from services.postal.dependencies import Adapters, watch_timer
from services.postal.domain.model import HandoverRecord, Shipment
from services.postal.models import SERVICE, pipeline, webhook_rejections
from services.postal.openapi import document as openapi_document
from services.postal.operator import OperatorUnavailable
from services.postal.schemas import (
    DOSSIER_CODE,
    HandoverRecordRequestSchema,
    HandoverRecordSchema,
    PickupRequestSchema,
    PostalReturnRequestSchema,
    PostalReturnSchema,
    RedeliveryRequestSchema,
    ShipmentSchema,
    SignatureRequestSchema,
    TrackingWebhookSchema,
)
from services.postal.webhooks import WebhookRejected
from shared import retention
from shared.auth import Auth, Principal
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.problems import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

PICKUP_REQUEST = PickupRequestSchema()
RECORD_REQUEST = HandoverRecordRequestSchema()
SIGNATURE_REQUEST = SignatureRequestSchema()
RETURN_REQUEST = PostalReturnRequestSchema()
RETURN = PostalReturnSchema()
REDELIVERY_REQUEST = RedeliveryRequestSchema()
TRACKING = TrackingWebhookSchema()
SHIPMENT = ShipmentSchema()
RECORD = HandoverRecordSchema()
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

    def context(self) -> postal.PostalContext:
        return postal.PostalContext(
            units=self.units,
            calendar=self.calendar,
            operator=self.adapters.operator,
            dossiers=self.adapters.dossiers,
            verifier=self.adapters.verifier,
        )

    # --- the operator's webhooks (docs/contracts.md §3) -------------------------------------------

    @api("POST", "/api/v1/webhooks/<string:operator>")
    def webhook(self, request, operator):
        """A tracking report, Standard-Webhooks signed; stored before the 2xx (401 forged or stale, 400
        not a tracking report, 404 a consignment never ordered, 200 and no change for a repeat)."""
        command = postal.ReceiveWebhook(
            operator=operator,
            raw_body=request.get_data(cache=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            remote_addr=request.remote_addr,
        )
        context = self.context()
        try:
            postal.verify_webhook(command, self.uow, context)
        except WebhookRejected as exc:
            raise Unauthorized(f"webhook refused: {exc.detail}") from exc
        report = postal.ApplyReport(
            operator,
            command.headers["webhook-id"],
            _tracking_report(command.raw_body),
            command.raw_body.decode(),
        )
        receipt = postal.apply_report(report, self.uow, context)
        answer = {"webhook_id": receipt.webhook_id, "outcome": receipt.outcome}
        if receipt.shipment_status is not None:
            answer["shipment_status"] = receipt.shipment_status
        return 200, answer

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
        context = self.context()
        with _operator_answers():
            prepared = postal.order_pickup(command, context)
        return idempotent(
            self.uow,
            principal.sub,
            request,
            lambda tx: (201, present_shipment(postal.store_pickup(prepared, tx, context))),
        )

    @api("GET", "/api/v1/shipments/<string:code>")
    def shipments(self, request, code):
        """A dossier's shipments, both directions, oldest first (no contact data)."""
        principal = self._staff(request)
        if not _CODE.match(code):
            raise NotFound(f"no shipments of dossier {code}")
        with self.uow.transaction() as tx:
            found = postal.dossier_shipments(postal.ReadShipments(principal, code), tx, self.context())
        return {"dossier_code": code, "results": [present_shipment(s) for s in found]}

    # --- hand-over records (biên bản giao nhận) ---------------------------------------------------

    @api("POST", "/api/v1/handover-records")
    def draw_up_record(self, request):
        """List the consignments on the counter with the packages counted; discrepancies are recorded."""
        principal = self.auth.principal(request)
        command = postal.DrawUpRecord(principal, read_json(request, RECORD_REQUEST))
        context = self.context()

        def change(tx):
            record = postal.draw_up_record(command, tx, context)
            return 201, present_record(record), {"Location": f"/api/v1/handover-records/{record.id}"}

        status, answer, headers = idempotent(self.uow, principal.sub, request, change)
        if status == 201 and "Idempotent-Replayed" not in headers:
            alert_discrepancies(answer)
        return status, answer, headers

    @api("GET", "/api/v1/handover-records/<string:record_id>")
    def record(self, request, record_id):
        principal = self._staff(request)
        with self.uow.transaction() as tx:
            return present_record(
                postal.read_record(postal.ReadRecord(principal, record_id), tx, self.context())
            )

    @api("POST", "/api/v1/handover-records/<string:record_id>/signatures")
    def sign_record(self, request, record_id):
        """One side signs (postal_operator or desk_officer); the second signature is the record's time."""
        principal = self.auth.principal(request)
        command = postal.SignRecord(principal, record_id, read_json(request, SIGNATURE_REQUEST))
        context = self.context()
        answer = idempotent(
            self.uow,
            principal.sub,
            request,
            lambda tx: (200, present_record(postal.sign_record(command, tx, context))),
        )
        # a co-signed delivery record releases its results: tell the operator (the watch retries)
        postal.call_operator(postal.CallOperator(), self.uow, context)
        return answer

    # --- returns by post ---------------------------------------------------------------------------

    @api("PUT", "/api/v1/postal-returns/<string:code>")
    def give_return_address(self, request, code):
        """Where the result goes (recipient, address, phone) and which signed document it is."""
        principal = self.auth.principal(request)
        principal.require_role(*RETURN_ROLES)
        if not _CODE.match(code):
            raise NotFound(f"no dossier {code}")
        command = postal.GiveReturnAddress(code, principal, read_json(request, RETURN_REQUEST))
        context = self.context()
        with self.uow.transaction() as tx:
            postal.give_return_address(command, tx, context)
        self._open_delivery(code, context)
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
        if not _CODE.match(code):
            raise NotFound(f"dossier {code} has no return by post")
        command = postal.DeliverAgain(principal, code, body["cause"], body.get("recipient"))
        with _operator_answers():
            shipment = postal.deliver_again(command, self.uow, self.context())
        return 201, present_shipment(shipment)

    # --- what the dossier service tells -----------------------------------------------------------

    @event_consumer("postal.dossier-resolved", ["dossier.resolved.#"])
    def on_dossier_resolved(self, event: Event):
        """A result to return by post is ready: open its delivery once the recipient is known."""
        if event.data.get("return_method") != POSTAL_RETURN:
            return False
        command = postal.DossierResolved(
            event.subject, event.data["receiving_unit"], datetime.fromisoformat(event.data["resolved_at"])
        )
        context = self.context()
        with self.uow.transaction() as tx:
            postal.mark_resolved(command, tx, context)
        self._open_delivery(event.subject, context)
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
        context = self.context()
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, ENDED_QUEUE):
                return False
            asked = postal.dossier_ended(
                postal.DossierEnded(event.subject, reason, context.clock()), tx, context
            )
        if asked:
            postal.call_operator(postal.CallOperator(event.subject), self.uow, context)
        return None

    @watch_timer
    def watch(self) -> None:
        """Gauges, stuck shipments, and deliveries an operator outage left unopened."""
        postal.watch(postal.Watch(), self.uow, self.context())

    # --- helpers -------------------------------------------------------------------------------------

    def _staff(self, request) -> Principal:
        principal = self.auth.principal(request)
        if not principal.has_role(*STAFF_ROLES):
            raise Forbidden(f"this needs one of the roles: {', '.join(STAFF_ROLES)}")
        return principal

    def _open_delivery(self, code: str, context: postal.PostalContext) -> None:
        """Open the delivery if it can go now; an operator that does not answer leaves it to the watch."""
        try:
            postal.open_delivery(postal.OpenDelivery(code), self.uow, context)
        except OperatorUnavailable as exc:
            log.warning(
                "delivery of %s not opened yet (the watch retries): %s", code, _unavailable(exc).detail
            )

    def _postal_return(self, principal: Principal, code: str) -> dict:
        if not _CODE.match(code):
            raise NotFound(f"dossier {code} has no return by post")
        with self.uow.transaction() as tx:
            state = postal.read_return(postal.ReadReturn(principal, code), tx, self.context())
        postal_return = state.postal_return
        return RETURN.dump(
            {
                "dossier_code": code,
                "receiving_unit": postal_return.receiving_unit,
                "result_document": postal_return.result_document,
                "resolved_at": postal_return.resolved_at,
                "recipient_given": postal_return.recipient is not None,
                "delivery": state.delivery,
            }
        )


# --- parsing and answering ------------------------------------------------------------------------------


def _tracking_report(raw_body: bytes) -> dict[str, Any]:
    """A verified webhook's body as a tracking report (400 when it is not one)."""
    try:
        document = json.loads(raw_body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 and bad JSON, and an integer of more than 4,300 digits, which
        # Python refuses to convert (sys.int_info.default_max_str_digits).
        raise BadRequest(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("the webhook body must be a JSON object")
    try:
        return TRACKING.load(document)
    except ValidationError as exc:
        problem = ValidationFailed.from_messages(exc.messages)
        raise BadRequest(f"not a tracking report: {problem.detail}", errors=problem.errors) from exc


def _unavailable(exc: OperatorUnavailable) -> ServiceUnavailable:
    """503 with the ``Retry-After`` the operator or its circuit says (shared/neighbours.py)."""
    return exc.problem(f"the postal operator cannot take the order now; retry later: {exc.reason}")


@contextmanager
def _operator_answers() -> Iterator[None]:
    """An operator that does not answer is a 503: the client may retry the same request."""
    try:
        yield
    except OperatorUnavailable as exc:
        raise _unavailable(exc) from exc


def present_shipment(shipment: Shipment) -> dict[str, Any]:
    return SHIPMENT.dump(shipment)


def present_record(record: HandoverRecord) -> dict[str, Any]:
    return RECORD.dump(
        {
            **{
                k: getattr(record, k)
                for k in (
                    "id",
                    "created_at",
                    "receiving_unit",
                    "operator_signed_by",
                    "operator_signed_at",
                    "desk_signed_by",
                    "desk_signed_at",
                    "signed_at",
                )
            },
            "direction": record.direction.value,
            "items": [
                {
                    "consignment": item.shipment.consignment,
                    "dossier_code": item.shipment.dossier_code,
                    "packages_declared": item.shipment.packages,
                    "packages_counted": item.packages_counted,
                    "discrepancy": item.discrepancy,
                    "outcome": None if item.outcome is None else item.outcome.value,
                    "reason": item.reason,
                    "reason_code": item.reason_code,
                }
                for item in record.items
            ],
        }
    )


def alert_discrepancies(record: dict[str, Any]) -> None:
    """A missing package or a count that does not match: counted (alerted on) and logged."""
    for item in record["items"]:
        if item["discrepancy"]:
            metrics.HANDOVER_DISCREPANCIES.labels(item["discrepancy"]).inc()
            log.warning(
                "hand-over record %s: consignment %s %s (declared %d, counted %d)",
                record["id"],
                item["consignment"],
                item["discrepancy"],
                item["packages_declared"],
                item["packages_counted"],
            )
