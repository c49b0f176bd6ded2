"""The payment service's OpenAPI document, from the schemas in :mod:`services.payment.schemas`."""

from __future__ import annotations

from functools import cache

from services.payment.schemas import (
    ConfirmationAckSchema,
    ConfirmationSchema,
    PaymentListSchema,
    PaymentQuerySchema,
    PaymentSchema,
    StartedSchema,
    StartRequestSchema,
)
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.1.0"

HTML_PAGE = {
    "200": {
        "description": "a page that sends the browser on to the platform's payment page (or says why not)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/payments",
        "Start an online payment of a dossier's fees (the citizen, or the desk)",
        "start_payment",
        "payments",
        request=StartRequestSchema,
        response=StartedSchema,
        status=201,
        errors=(400, 401, 403, 404, 409, 422, 429),
        public=True,
        description="The citizen: no token, the dossier code and the receipt's secret (or the identity "
        "number), checked by the dossier service as the lookup checks them; one same 404 for an unknown "
        "code or a wrong proof. The desk: a desk_officer token of the receiving unit's jurisdiction, no "
        "proof. The amount is what the agency asked for, from the dossier service. 409 when the dossier "
        "does not await payment (status 6), or is paid and being recorded. A pending payment of the same "
        "amount started less than PAYMENT_QUERY_AFTER_SECONDS ago is given again (reused true). 429 past "
        "PAYMENT_PER_MINUTE per client address; 503 when the platform or the dossier service cannot answer.",
    ),
    Operation(
        "POST",
        "/thanh-toan",
        'The lookup page\'s "Thanh toán trực tuyến" form (ma, s or cccd): on to the platform',
        "start_payment_page",
        "payments",
        errors=(),
        public=True,
        description="A form post (application/x-www-form-urlencoded: ma, the dossier code; s, the receipt's "
        "secret, or cccd, the identity number). Answers a page that sends the browser to the platform's "
        "payment page, or says in Vietnamese why it cannot (the same refusals as POST /api/v1/payments).",
        extra_responses=HTML_PAGE,
    ),
    Operation(
        "POST",
        "/api/v1/platform/confirmations",
        "The payment platform's confirmation of a payment (signed)",
        "confirm",
        "platform",
        request=ConfirmationSchema,
        response=ConfirmationAckSchema,
        errors=(400, 401, 429),
        public=True,
        description="MaXacThuc checked over the confirmation's fields (docs/payment.md); a wrong one, "
        "another partner's, or a body that is not a confirmation is 401, kept for forensics, and changes "
        "nothing. "
        "Stored before the answer. MaLoi 00: the payment is paid and recorded on the dossier once "
        "(record_payment with the reference as Idempotency-Key; owed and retried when the dossier service "
        "is down); a repeated confirmation changes nothing (outcome repeated).",
    ),
    Operation(
        "GET",
        "/api/v1/payments/<reference>",
        "A payment",
        "read_payment",
        "payments",
        response=PaymentSchema,
        errors=(401, 403, 404),
        description="Staff (desk_officer, handling_officer, auditor, admin) whose jurisdiction covers the "
        "dossier's receiving unit.",
    ),
    Operation(
        "GET",
        "/api/v1/payments",
        "A dossier's online payments, newest first",
        "dossier_payments",
        "payments",
        query=PaymentQuerySchema,
        response=PaymentListSchema,
        errors=(401, 403, 422),
        description="Staff of the receiving unit's jurisdiction.",
    ),
    Operation(
        "GET",
        "/api/v1/payments/<reference>/receipt",
        "The platform's receipt (biên lai) of a paid payment, as the platform gave it",
        "payment_receipt",
        "payments",
        errors=(401, 403, 404),
        description="Staff of the jurisdiction; 404 until the reconciliation has fetched it.",
        extra_responses={
            "200": {
                "description": "the receipt",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua payment service",
        version=VERSION,
        description="Fees paid online through the national payment platform: the payment link for the "
        "citizen or the desk, the platform's signed confirmations, the reconciliation of what is still "
        "open, the receipts. A confirmed payment is recorded on the dossier through its record_payment "
        "action (dossier.paid, paid_online true). No card data passes through this service.",
        operations=OPERATIONS,
    )
