"""The outbound service's OpenAPI document, from the schemas in :mod:`services.outbound.schemas`."""

from __future__ import annotations

from functools import cache

from services.outbound.schemas import (
    CreatedSubscriptionSchema,
    DeliveryLogSchema,
    RedeliveryRequestSchema,
    RedeliverySchema,
    SubscriptionPageSchema,
    SubscriptionRequestSchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
)
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.3.0"
WHO = "Roles subscriber, auditor or admin; a caller sees and changes only its own subscriptions (else 404)."

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/subscriptions",
        "Subscribe a callback to the events of a unit's subtree",
        "create_subscription",
        "subscriptions",
        replayable=True,
        request=SubscriptionRequestSchema,
        response=CreatedSubscriptionSchema,
        status=201,
        description=f"{WHO} The unit must be in the caller's jurisdiction (403), as an AMQP binding would. "
        "A signed test event (type vn.motcua.outbound.subscription_test) is POSTed to the callback first: "
        "anything but a 2xx, or a callback address the guard refuses, is a 422 saying why. Deliveries: "
        "the CloudEvent as published, Standard Webhooks signatures (one per secret), webhook-id = the "
        "event's id; at least once, in order per dossier; retries 25·4ⁿ s with jitter, 7 tries, "
        "Retry-After honoured; 410 Gone disables the subscription.",
    ),
    Operation(
        "GET",
        "/api/v1/subscriptions",
        "The caller's subscriptions",
        "list_subscriptions",
        "subscriptions",
        response=SubscriptionPageSchema,
        errors=(401, 403),
        description=WHO,
    ),
    Operation(
        "GET",
        "/api/v1/subscriptions/<subscription_id>",
        "A subscription",
        "get_subscription",
        "subscriptions",
        response=SubscriptionSchema,
        errors=(401, 403, 404),
        description=WHO,
    ),
    Operation(
        "PATCH",
        "/api/v1/subscriptions/<subscription_id>",
        "Change a subscription; rotate its secrets; disable or re-enable it",
        "update_subscription",
        "subscriptions",
        replayable=True,
        request=SubscriptionUpdateSchema,
        response=SubscriptionSchema,
        description=f"{WHO} A new callback, OAuth2 credentials or contact, or re-enabling, sends a "
        "signed test event first (else 422). "
        "During a rotation every secret signs; the last one cannot be removed.",
    ),
    Operation(
        "DELETE",
        "/api/v1/subscriptions/<subscription_id>",
        "Delete a subscription and its deliveries",
        "delete_subscription",
        "subscriptions",
        status=204,
        errors=(401, 403, 404),
        description=WHO,
    ),
    Operation(
        "GET",
        "/api/v1/subscriptions/<subscription_id>/deliveries",
        "The latest deliveries and every attempt (time, status, error)",
        "deliveries",
        "subscriptions",
        response=DeliveryLogSchema,
        errors=(401, 403, 404),
        description=WHO,
    ),
    Operation(
        "GET",
        "/api/v1/subscriptions/<subscription_id>/dead-letters",
        "The dead deliveries: every try failed (until redelivered)",
        "dead_letters",
        "subscriptions",
        response=DeliveryLogSchema,
        errors=(401, 403, 404),
        description=f"{WHO} Newest first, each with every try; its contact was told of the first of a "
        "day's dead deliveries.",
    ),
    Operation(
        "POST",
        "/api/v1/subscriptions/<subscription_id>/redeliveries",
        "Send one delivery again, or every delivery of a time range",
        "redeliver",
        "subscriptions",
        replayable=True,
        request=RedeliveryRequestSchema,
        response=RedeliverySchema,
        status=202,
        description=f"{WHO} The deliveries become pending and due now, in their dossiers' order.",
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua outbound service",
        version=VERSION,
        description="What leaves motcua for outside systems: the national public service portal's sync "
        "(dossiers and their processing steps, from the dossier events) and HTTP subscriptions to events.",
        operations=OPERATIONS,
    )
