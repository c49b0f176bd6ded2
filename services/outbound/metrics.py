"""The outbound service's Prometheus metrics (docs/contracts.md §4 naming; base units).

The portal backlog gauges are refreshed by each sync round from the tables; every replica refreshes
them from the same tables, so dashboards and alerts take their ``max`` over replicas, not the sum.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PORTAL_ANSWERS = Counter(
    "motcua_portal_answers_total",
    "Calls to the national portal's adapter by outcome (ok, refused, unavailable, dossier_unavailable).",
    ["outcome"],
)
PORTAL_BACKLOG = Gauge(
    "motcua_portal_sync_backlog",
    "Dossier events (and re-syncs) the national portal has not taken yet, by receiving unit.",
    ["unit"],
)
PORTAL_OLDEST = Gauge(
    "motcua_portal_sync_oldest_unsynced_seconds",
    "Age of the oldest dossier event the national portal has not taken yet, by receiving unit.",
    ["unit"],
)
PORTAL_PARKED = Gauge(
    "motcua_portal_sync_parked",
    "Dossiers whose portal sync kept failing and waits for an operator (shared/ops.py portal-replay).",
    ["unit"],
)
DELIVERIES = Counter(
    "motcua_webhook_deliveries_total",
    "Tries of webhook deliveries by outcome (delivered, failed, dead, gone).",
    ["outcome"],
)
DELIVERY_LAG = Histogram(
    "motcua_webhook_delivery_lag_seconds",
    "From the event's arrival to its delivery's 2xx, per delivered event.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
)
SUBSCRIPTIONS_DISABLED = Gauge(
    "motcua_webhook_subscriptions_disabled",
    "Subscriptions disabled (410 Gone, or by their owner) that receive nothing.",
)
