"""The dossier service's OpenAPI document, from the schemas in :mod:`services.dossier.schemas`.

Every lifecycle action is its own path (``/api/v1/dossiers/{code}/actions/receive`` …) so that each
is documented with its own body, roles and resulting event, though one entrypoint serves them all.
"""

from __future__ import annotations

from functools import cache

from services.dossier.actions import REGISTRY, ActionEntry
from services.dossier.domain.model import Action
from services.dossier.schemas import (
    ApologyFormSchema,
    AuditTrailSchema,
    ConsentWithdrawalSchema,
    DossierPageSchema,
    DossierQuerySchema,
    DossierSchema,
    FiledDossierSchema,
    LookupRequestSchema,
    LookupSchema,
    NoticeFormSchema,
    NotificationContactSchema,
    PaymentDueRequestSchema,
    PaymentDueSchema,
    PortalRecordSchema,
    ProcessControlFormSchema,
    ReceiptFormSchema,
    ReceiptPrintSchema,
    ReceiptRequestSchema,
    RegistrationRequestSchema,
    SupplementRequestFormSchema,
)
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.9.0"


def _action_operation(entry: ActionEntry) -> Operation:
    who = "; ".join(f"{role} of the {side} unit" for role, side in entry.actors)
    if entry.filer_may:
        who += "; or the portal that filed it"
    statuses = ", ".join(f"{int(s)} {s.label}" for s in sorted(entry.rule.allowed_from))
    return Operation(
        "POST",
        f"/api/v1/dossiers/<code>/actions/{entry.action.value}",
        entry.summary,
        f"act_{entry.action.value}",
        "lifecycle",
        replayable=True,
        request=entry.body,
        response=DossierSchema,
        errors=(400, 401, 403, 404, 409, 422),
        description=f"Who: {who}. From status: {statuses}. Publishes dossier.{entry.event.name}. "
        "409 (with current_status and allowed_actions) when the rules forbid it now; nothing changes.",
    )


def _form_operation(form: str, title: str, schema) -> Operation:
    return Operation(
        "GET",
        f"/api/v1/dossiers/<code>/forms/{form}",
        title,
        f"form_{form}",
        "forms",
        response=schema,
        errors=(400, 401, 404),
        description="404 when the dossier has no such form, or is outside the caller's jurisdiction.",
    )


# The answer of both ways to print the receipt slip (Form 01).
PDF_SLIP = {
    "200": {
        "description": "the slip",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    }
}

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/dossiers",
        "Receive a dossier at the one-stop desk",
        "receive",
        "dossiers",
        replayable=True,
        request=ReceiptRequestSchema,
        response=FiledDossierSchema,
        status=201,
        description="Role desk_officer, in the receiving unit's jurisdiction. Allocates the "
        "dossier code and computes the appointment in working time; publishes "
        "dossier.received. `lookup` holds the receipt's secret, in this answer only (an "
        "Idempotency-Key replay has it null): print it with POST .../forms/receipt.pdf.",
    ),
    Operation(
        "POST",
        "/api/v1/registrations",
        "Register a dossier filed online or picked up by post",
        "register",
        "dossiers",
        replayable=True,
        request=RegistrationRequestSchema,
        response=FiledDossierSchema,
        status=201,
        description="Role portal or postal_operator, whose units cover the receiving unit. Allocates "
        "the dossier code; the desk receives it later (actions/receive). Publishes dossier.registered. "
        "The filer sees only the dossiers it registered. `lookup` holds the applicant's lookup secret, "
        "in this answer only: give it to the applicant.",
    ),
    Operation(
        "GET",
        "/api/v1/dossiers",
        "Search dossiers",
        "list_dossiers",
        "dossiers",
        query=DossierQuerySchema,
        response=DossierPageSchema,
        errors=(401, 403, 422),
        description="Staff roles see the dossiers received or handled in their jurisdiction; the "
        "portal sees what it registered. overdue: past original_due_at with the clock running "
        "(or stopped after it). Newest first; page_size at most 500.",
    ),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>",
        "A dossier",
        "get_dossier",
        "dossiers",
        response=DossierSchema,
        errors=(401, 404),
    ),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>/portal-record",
        "What the national portal sync needs: contact, names, documents, fees, payments, result",
        "portal_record",
        "dossiers",
        response=PortalRecordSchema,
        errors=(401, 403, 404),
        description="Role portal_sync only (the outbound service), for dossiers received in its "
        "jurisdiction; 404 for any other. Personal data: it never travels on an event.",
    ),
    Operation(
        "POST",
        "/api/v1/dossiers/<code>/payment-due",
        "What a dossier owes, for the online payment (the payment service)",
        "payment_due",
        "dossiers",
        request=PaymentDueRequestSchema,
        response=PaymentDueSchema,
        errors=(401, 403, 404, 422),
        description="Role payment_service only, for dossiers received in its jurisdiction. With the "
        "citizen's proof (secret or identity number), checked as POST /api/v1/lookups checks it (wrong "
        "proofs count towards the same lock-out); one same 404 for an unknown code, a wrong proof or a "
        "locked code. amount_vnd is the last amount asked for, null unless the dossier awaits payment.",
    ),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>/notification-contact",
        "What the notifier reads at send time: the applicant's consent to messages and contact",
        "notification_contact",
        "dossiers",
        response=NotificationContactSchema,
        errors=(401, 403, 404),
        description="Role notifier only (the notifier service), for dossiers received in its "
        "jurisdiction; 404 for any other. Personal data: it never travels on an event. Read before "
        "every message, so a withdrawal stops the next one (docs/notifications.md).",
    ),
    Operation(
        "POST",
        "/api/v1/dossiers/<code>/notification-consent/withdrawal",
        "The applicant withdraws their consent to messages about the dossier",
        "withdraw_notification_consent",
        "dossiers",
        replayable=True,
        request=ConsentWithdrawalSchema,
        response=DossierSchema,
        errors=(400, 401, 403, 404, 422),
        description="desk_officer of the receiving unit, or the portal that filed the dossier. The "
        "consent is emptied at once (no message is sent from now) and the audit trail says who and "
        "when; withdrawing again changes nothing.",
    ),
    *(_action_operation(REGISTRY[action]) for action in Action),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>/audit",
        "The dossier's audit trail: who, what, when, why, before → after",
        "audit_trail",
        "dossiers",
        response=AuditTrailSchema,
        errors=(401, 404),
        description="Staff roles of the jurisdiction (auditor included); append-only.",
    ),
    _form_operation("receipt", "Form 01: receipt and appointment", ReceiptFormSchema),
    _form_operation("supplement_request", "Form 02: supplement request", SupplementRequestFormSchema),
    _form_operation("refusal", "Form 03: refusal", NoticeFormSchema),
    _form_operation("apology", "Form 04: apology and new appointment", ApologyFormSchema),
    _form_operation("stop_notice", "Form 05: notice of stopping", NoticeFormSchema),
    _form_operation("process_control", "The process-control slip", ProcessControlFormSchema),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>/forms/receipt.pdf",
        "Form 01 as a printable PDF (QR code of the dossier code)",
        "form_receipt_pdf",
        "forms",
        errors=(401, 404, 409),
        extra_responses=PDF_SLIP,
    ),
    Operation(
        "POST",
        "/api/v1/dossiers/<code>/forms/receipt.pdf",
        "Form 01 as a printable PDF with the lookup secret (on it and in its QR code)",
        "form_receipt_pdf_with_secret",
        "forms",
        request=ReceiptPrintSchema,
        errors=(401, 404, 409, 422),
        description="The secret given at filing; 422 unless it is the dossier's (only its HMAC is kept).",
        extra_responses=PDF_SLIP,
    ),
    Operation(
        "POST",
        "/api/v1/dossiers/<code>/lookup-secret",
        "Give the dossier a new lookup secret (a lost receipt; a dossier filed before secrets)",
        "reissue_lookup_secret",
        "forms",
        response=ReceiptFormSchema,
        errors=(401, 403, 404),
        description="Role desk_officer of the jurisdiction. The old secret stops working; the answer is "
        "Form 01 with the new one (lookup_secret, lookup_url), which is kept nowhere.",
    ),
    Operation(
        "POST",
        "/api/v1/lookups",
        "Tra cứu hồ sơ: a dossier's progress, for the applicant (public)",
        "look_up",
        "citizen",
        request=LookupRequestSchema,
        response=LookupSchema,
        errors=(404, 422, 429),
        public=True,
        description="No token. The dossier code and one proof: the receipt's secret or the applicant's "
        "identity number; a code alone is refused. 404, with one same body, for an unknown code, a "
        "wrong proof or a code locked after repeated wrong proofs (LOOKUP_MAX_FAILURES, "
        "LOOKUP_LOCK_MINUTES). 429 past the rate limits per client address and per code. The answer "
        "names no person: no name, identity number, phone or address. The page GET /tra-cuu uses it.",
    ),
    Operation(
        "POST",
        "/api/v1/lookups/notification-withdrawal",
        "The applicant withdraws their consent to messages, with the lookup's proof (public)",
        "withdraw_notifications_by_lookup",
        "citizen",
        request=LookupRequestSchema,
        response=LookupSchema,
        errors=(404, 422, 429),
        public=True,
        description="No token: the same proof, refusals, lock-out and rate limits as POST /api/v1/lookups. "
        "On success no message is sent about the dossier from now on (docs/notifications.md), the audit "
        "trail has a line by the applicant, and the answer is the citizen's view. Withdrawing again "
        "changes nothing.",
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua dossier service",
        version=VERSION,
        description="The one-stop dossier lifecycle (hồ sơ một cửa): registration, receipt, processing, "
        "result. Actions: POST /api/v1/dossiers/{code}/actions/{action}; forms as JSON and the receipt "
        "slip as PDF; Idempotency-Key on receipt, registration and every action; errors are RFC 9457 "
        "problems.",
        operations=OPERATIONS,
    )
