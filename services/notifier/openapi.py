"""The notifier's OpenAPI document, from the schemas in :mod:`services.notifier.schemas`."""

from __future__ import annotations

from functools import cache

from services.notifier.schemas import MessageLogSchema
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.1.0"

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/notifications/<code>",
        "The messages sent (or not) to a dossier's applicant, with every gateway call",
        "dossier_notifications",
        "notifications",
        response=MessageLogSchema,
        errors=(401, 403, 404),
        description="Roles desk_officer, auditor or admin whose jurisdiction covers the dossier's receiving "
        "unit (404 otherwise). Newest first: kind, channel, the gateway it went through, state, text, "
        "each call's answer and latency. No phone or address: the contact stays with the dossier service.",
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua notifier",
        version=VERSION,
        description="Tells the applicant, by SMS, Zalo Official Account or e-mail as they consented, when "
        "the dossier needs them or the result is ready (docs/notifications.md). Subscribes to egov.events; "
        "reads the consent and contact from the dossier service at each send.",
        operations=OPERATIONS,
    )
