"""Pipeline and HTTP metrics every service exposes (docs/contracts.md §4 Prometheus metrics), defined once.

Labelled by ``service`` so several services in one process (as in the tests) stay apart.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "motcua_events_published_total",
    "Events confirmed by the broker after leaving the outbox.",
    ["service", "type"],
)
EVENTS_UNROUTABLE = Counter(
    "motcua_events_unroutable_total",
    "Events the broker returned because no queue was bound for their routing key.",
    ["service"],
)
OUTBOX_PENDING = Gauge(
    "motcua_outbox_pending",
    "Events committed to the outbox and not yet confirmed by the broker.",
    ["service"],
)
OUTBOX_OLDEST_PENDING = Gauge(
    "motcua_outbox_oldest_pending_seconds",
    "Age of the oldest event waiting in the outbox.",
    ["service"],
)
EVENTS_CONSUMED = Counter(
    "motcua_events_consumed_total",
    "Events taken from a queue, by outcome (processed, duplicate, retried, deferred, dead_lettered).",
    ["service", "queue", "outcome"],
)
EVENT_HANDLING = Histogram(
    "motcua_event_handling_seconds",
    "Time to handle one consumed event, inbox check and commit included.",
    ["service", "queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DEAD_LETTERED = Counter(
    "motcua_dead_lettered_total",
    "Events sent to the dead-letter exchange after failing or being unparseable.",
    ["service", "queue"],
)
HTTP_REQUESTS = Counter(
    "motcua_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "motcua_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Calls to neighbours (shared/neighbours.py): other services and outside parties, each by name.
NEIGHBOUR_CIRCUIT_STATE = Gauge(
    "motcua_neighbour_circuit_state",
    "The circuit to a neighbour: 0 closed, 1 half-open (a trial call), 2 open (no calls are made).",
    ["service", "neighbour"],
)
NEIGHBOUR_CALLS = Counter(
    "motcua_neighbour_calls_total",
    "Calls to a neighbour by outcome: ok, refused (a 4xx answer), failed (after the retries), "
    "short_circuited (not made: the circuit was open).",
    ["service", "neighbour", "outcome"],
)
NEIGHBOUR_CALL_SECONDS = Histogram(
    "motcua_neighbour_call_seconds",
    "Time of one call to a neighbour, its retries and their waits included.",
    ["service", "neighbour"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
