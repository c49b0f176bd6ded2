"""The postal service's OpenAPI document, from the schemas in :mod:`services.postal.schemas`."""

from __future__ import annotations

from functools import cache

from services.postal.schemas import (
    HandoverRecordRequestSchema,
    HandoverRecordSchema,
    PickupRequestSchema,
    PostalReturnRequestSchema,
    PostalReturnSchema,
    RedeliveryRequestSchema,
    ShipmentListSchema,
    ShipmentSchema,
    SignatureRequestSchema,
    TrackingWebhookSchema,
    WebhookAckSchema,
)
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.4.0"


def _webhook_header(name: str, description: str) -> dict:
    return {
        "in": "header",
        "name": name,
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


# Standard Webhooks: what the operator signs with, verified over the exact raw body.
WEBHOOK_HEADERS = (
    _webhook_header("webhook-id", "the report's unique id; a repeated id changes nothing"),
    _webhook_header("webhook-timestamp", "Unix seconds, within ±5 minutes of now"),
    _webhook_header(
        "webhook-signature",
        "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several space-separated during a key rotation",
    ),
)

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/webhooks/<operator>",
        "A tracking report from the postal operator (Standard Webhooks)",
        "receive_webhook",
        "operator",
        request=TrackingWebhookSchema,
        response=WebhookAckSchema,
        errors=(400, 401, 404),
        public=True,
        extra_parameters=WEBHOOK_HEADERS,
        description="Signed, not bearer-authenticated (docs/contracts.md §3): headers `webhook-id`, "
        "`webhook-timestamp` (Unix seconds, within ±5 minutes) and `webhook-signature` "
        "(`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several space-separated during a key "
        "rotation), verified over the exact raw body against every active secret of the operator. "
        "The report is stored before the 200. A repeated `webhook-id` answers 200 (`outcome: "
        "duplicate`) and changes nothing; a report older than, or behind, the shipment's status is "
        "stored as `late` and moves nothing; an unknown status name is stored as `unknown_status`, "
        "moves nothing and is alerted on; a delivery's report before its hand-over record is co-signed "
        "is stored as `before_handover`, moves nothing and is alerted on. Reports are ordered by the "
        "status lattice, then by the operator's own times among themselves. A loss (`lost`) may carry "
        "`compensation` (amount and cause), recorded on the shipment. 401: forged, stale or malformed "
        "signature (kept for forensics, nothing else changes). 400: not a tracking report. 404: "
        "unknown operator or consignment.",
    ),
    Operation(
        "POST",
        "/api/v1/pickups",
        "Ask for a pickup at the applicant's door; registers the dossier (status 1, channel postal)",
        "request_pickup",
        "pickups",
        replayable=True,
        request=PickupRequestSchema,
        response=ShipmentSchema,
        status=201,
        errors=(401, 403, 409, 422, 503),
        description="Roles portal or postal_operator, with the receiving unit in the caller's "
        "jurisdiction. The dossier is registered with the dossier service using the caller's own "
        "token, then the operator's order is placed; both carry idempotency keys derived from this "
        "request's `Idempotency-Key`, so a retry never makes a second dossier or order. 503 when the "
        "operator or the dossier service cannot be reached after bounded retries.",
    ),
    Operation(
        "GET",
        "/api/v1/shipments/<code>",
        "A dossier's shipments, both directions (no contact data)",
        "dossier_shipments",
        "shipments",
        response=ShipmentListSchema,
        errors=(401, 403, 404),
    ),
    Operation(
        "POST",
        "/api/v1/handover-records",
        "Draw up a hand-over record (biên bản giao nhận) of the consignments on the counter",
        "draw_up_record",
        "hand-over",
        replayable=True,
        request=HandoverRecordRequestSchema,
        response=HandoverRecordSchema,
        status=201,
        errors=(401, 403, 409, 422),
        description="Role postal_operator or desk_officer of the receiving unit. Each item gives the "
        "packages counted; a count that differs from the order (`count_mismatch`) or zero "
        "(`missing`) is recorded on the record and alerted on.",
    ),
    Operation(
        "GET",
        "/api/v1/handover-records/<record_id>",
        "A hand-over record",
        "get_record",
        "hand-over",
        response=HandoverRecordSchema,
        errors=(401, 403, 404),
    ),
    Operation(
        "POST",
        "/api/v1/handover-records/<record_id>/signatures",
        "Sign a hand-over record (one side per token)",
        "sign_record",
        "hand-over",
        replayable=True,
        request=SignatureRequestSchema,
        response=HandoverRecordSchema,
        errors=(401, 403, 404, 409, 422),
        description="A postal_operator token signs for the operator, a desk_officer token for the "
        "desk; the desk's signature on a pickup record decides every dossier (received, or refused "
        "with a reason). When the second side signs, the record is fixed: its time (the later "
        "signature) is each received dossier's filing time, announced by `postal.handed_over`. A "
        "second signature by the same side, by the same person, or after completion: 409. A delivery "
        "record is how the sealed result leaves the desk: once co-signed, the operator is told, and "
        "only then do its reports move the delivery.",
    ),
    Operation(
        "PUT",
        "/api/v1/postal-returns/<code>",
        "Give the recipient of a postal return and/or the signed result's reference",
        "give_postal_return",
        "returns",
        request=PostalReturnRequestSchema,
        response=PostalReturnSchema,
        errors=(401, 403, 404, 409, 422),
        description="Roles desk_officer, portal or clerk (the signing service). The address and phone "
        "stay in this service and the operator's order. When the dossier is resolved with return "
        "by post (`dossier.resolved`) and the recipient is known, the delivery opens. The address "
        "can change until a delivery is under way, and again once it came back (returned, lost, "
        "cancelled); otherwise 409.",
    ),
    Operation(
        "GET",
        "/api/v1/postal-returns/<code>",
        "A dossier's return by post and its latest delivery",
        "get_postal_return",
        "returns",
        response=PostalReturnSchema,
        errors=(401, 403, 404),
    ),
    Operation(
        "POST",
        "/api/v1/postal-returns/<code>/deliveries",
        "Deliver the result again after it came back to the desk",
        "deliver_again",
        "returns",
        request=RedeliveryRequestSchema,
        response=ShipmentSchema,
        status=201,
        errors=(401, 403, 404, 409, 422, 503),
        description="Role desk_officer. Only after the last delivery came back (returned_to_sender, "
        "lost or cancelled), else 409. `cause` is recorded and names who pays the repeated delivery "
        "(`charged_to`: the applicant, the operator, or the agency itself); a `charged_to` that "
        "differs is a 422, and after a loss only `lost_by_operator` is accepted (409). `recipient` "
        "gives a corrected recipient and address (validated), kept for this and later deliveries.",
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua postal service",
        version=VERSION,
        description="Dossiers picked up at the applicant's door and results delivered by post "
        "(Decision 45/2016/QĐ-TTg), driven by the postal operator's signed webhooks.",
        operations=OPERATIONS,
    )
