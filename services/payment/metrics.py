"""The payment service's own Prometheus metrics (docs/contracts.md §4: prefix, base units, ``_total``).

Counters are counted where the thing happens; the pending-age gauge is refreshed by each reconciliation
from the table, so every replica shows the same value: dashboards and alerts take the ``max``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PAYMENTS = Counter(
    "motcua_payments_total",
    "Online payments by outcome: started, paid, failed, expired.",
    ["outcome"],
)
CONFIRMATIONS = Counter(
    "motcua_payment_confirmations_total",
    "Confirmations from the payment platform by what they did (paid, failed, repeated, unknown_reference, "
    "amount_mismatch, rejected_<reason>: refused, kept for forensics).",
    ["outcome"],
)
RECORDS = Counter(
    "motcua_payment_records_total",
    "Paid payments handed to the dossier service: recorded, dossier_not_awaiting, owed (retried), refused.",
    ["outcome"],
)
PLATFORM_CALLS = Counter(
    "motcua_payment_platform_calls_total",
    "Calls to the payment platform by operation (init, query) and outcome (ok, PlatformUnavailable, "
    "PlatformRefused).",
    ["operation", "outcome"],
)
OLDEST_PENDING = Gauge(
    "motcua_payment_oldest_pending_seconds",
    "Age of the oldest payment still pending at the platform (0: none).",
)
PAYMENTS_OWED = Gauge(
    "motcua_payments_owed",
    "Payments the platform confirmed that the dossier service has not taken yet (retried each round).",
)
