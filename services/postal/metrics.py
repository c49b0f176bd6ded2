"""The postal service's own Prometheus metrics (docs/contracts.md §4 Prometheus metrics naming; base units).

``motcua_postal_shipments`` and ``motcua_postal_shipments_overdue`` are gauges refreshed by the
service's watch from its tables; the rest are counted where the thing happens. Every replica refreshes
the gauges from the same tables, so dashboards and alerts take their ``max`` over replicas, not the sum.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Whole working days, in seconds of an 8-hour office day, up to two working weeks.
WORKING_DAY = 8 * 3600

SHIPMENTS = Gauge(
    "motcua_postal_shipments",
    "Shipments by direction (pickup, delivery) and contract status.",
    ["direction", "status"],
)
SHIPMENTS_OVERDUE = Gauge(
    "motcua_postal_shipments_overdue",
    "Open shipments past the time the operator promised (stuck).",
    ["direction"],
)
DELIVERY_WORKING_SECONDS = Histogram(
    "motcua_postal_delivery_working_seconds",
    "Office time from order (pickup) or hand-over to the operator (delivery) until delivered.",
    ["direction"],
    buckets=(WORKING_DAY / 8, WORKING_DAY / 2, *(WORKING_DAY * d for d in (1, 2, 3, 5, 7, 10))),
)
WEBHOOK_VERIFICATION_FAILURES = Counter(
    "motcua_postal_webhook_verification_failures_total",
    "Webhook deliveries refused with 401 (forged, stale or malformed signature), by reason.",
    ["operator", "reason"],
)
WEBHOOKS = Counter(
    "motcua_postal_webhooks_total",
    "Verified webhook deliveries, by what they did (applied, late, repeated, unknown_status, duplicate).",
    ["operator", "outcome"],
)
UNKNOWN_STATUSES = Counter(
    "motcua_postal_unknown_statuses_total",
    "Operator status names the mapping does not know (stored, no movement): alerted on.",
    ["operator"],
)
HANDOVER_DISCREPANCIES = Counter(
    "motcua_postal_handover_discrepancies_total",
    "Consignments on a hand-over record whose package count did not match (missing, count_mismatch).",
    ["kind"],
)
LOST = Counter(
    "motcua_postal_lost_total",
    "Packages the operator reported lost (it compensates; the desk may send the result again).",
    ["direction"],
)
RETURNS_AWAITING_ADDRESS = Gauge(
    "motcua_postal_returns_awaiting_address",
    "Dossiers resolved with return by post whose recipient address has not been given yet.",
)
REPORTS_BEFORE_HANDOVER = Counter(
    "motcua_postal_reports_before_handover_total",
    "Operator reports on a delivery before its hand-over record was co-signed (stored, no movement): "
    "alerted on.",
    ["operator"],
)
OPERATOR_CALL_FAILURES = Counter(
    "motcua_postal_operator_call_failures_total",
    "Calls owed to the operator (cancel, handover) that failed and stay owed for the watch's retry.",
    ["call"],
)
OPERATOR_CALLS_OWED = Gauge(
    "motcua_postal_operator_calls_owed",
    "Cancels and hand-over notices the operator has not taken yet (retried by the watch).",
)
