"""The notifier's Prometheus metrics (docs/contracts.md §4 naming; base units).

``event`` is the message's kind (services/notifier/domain/messages.py Kind: eight values), ``channel``
the consented channel (sms, zalo, email), ``outcome`` where the try ended (sent, retry, deferred, capped,
withdrawn, not_follower, rejected, failed): at most 8 × 3 × 8 series. ``gateway`` is the channel a call
went through (a Zalo message that fell back is an SMS call).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "motcua_notifications_total",
    "Messages to applicants by event (kind), consented channel and outcome of the try.",
    ["event", "channel", "outcome"],
)
GATEWAY_CALLS = Counter(
    "motcua_notification_gateway_calls_total",
    "Calls to the messaging gateways by gateway and answer (accepted, rejected, not_follower, unavailable).",
    ["gateway", "answer"],
)
GATEWAY_SECONDS = Histogram(
    "motcua_notification_gateway_seconds",
    "How long a messaging gateway took to answer one call (or to fail), by gateway.",
    ["gateway"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
