"""Retention: what the pipeline keeps only as long as it is useful (docs/security.md).

Pruned by age, in small batches, by every service's hourly timer
(:meth:`shared.operations.OperationalEndpoints.prune_expired`):

* idempotency keys — a replay comes within minutes; their stored responses carry applicants' data, so
  they go after ``RETENTION_IDEMPOTENCY_DAYS`` (default 7);
* inbox rows — redeliveries and dead-letter replays come within days; ``RETENTION_INBOX_DAYS`` (30);
* published outbox rows — kept a while for investigation; ``RETENTION_OUTBOX_DAYS`` (7). Unpublished
  rows are never pruned;
* a service's own logs of consumed events (the metrics event log) — ``RETENTION_EVENT_LOG_DAYS`` (400:
  a year of reports and rebuilds, and the month after). Rows still waiting for an earlier event stay.
* refused postal webhooks (forged, stale or badly signed deliveries kept for forensics) —
  ``RETENTION_REJECTED_WEBHOOKS_DAYS`` (90: long enough to investigate an incident with the operator;
  their bodies may name a recipient).

The audit trail is never pruned: it is the record the law asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.db import PipelineTables

DEFAULT_DAYS = {
    "RETENTION_IDEMPOTENCY_DAYS": 7,
    "RETENTION_INBOX_DAYS": 30,
    "RETENTION_OUTBOX_DAYS": 7,
    "RETENTION_EVENT_LOG_DAYS": 400,
    "RETENTION_REJECTED_WEBHOOKS_DAYS": 90,
}
BATCH = 5000


@dataclass(frozen=True)
class Prunable:
    """Rows of ``table`` older than the ``setting``'s days by ``column``, where ``condition`` holds."""

    table: sa.Table
    column: str
    setting: str
    condition: Any = None


def retention_days(config: Mapping[str, Any]) -> dict[str, int]:
    days = {}
    for setting, default in DEFAULT_DAYS.items():
        value = config.get(setting)
        number = default if value in (None, "") else int(value)
        if number < 1:
            raise ValueError(f"{setting} must be at least 1 day, got {value!r}")
        days[setting] = number
    return days


def pipeline_prunables(tables: PipelineTables) -> list[Prunable]:
    return [
        Prunable(tables.idempotency_keys, "created_at", "RETENTION_IDEMPOTENCY_DAYS"),
        Prunable(tables.inbox, "received_at", "RETENTION_INBOX_DAYS"),
        Prunable(
            tables.outbox, "published_at", "RETENTION_OUTBOX_DAYS", tables.outbox.c.published_at.is_not(None)
        ),
    ]


def prune(
    engine: sa.Engine, prunables: Sequence[Prunable], days: Mapping[str, int], now: datetime
) -> dict[str, int]:
    """Delete what is past its retention; the number of rows deleted per table."""
    deleted: dict[str, int] = {}
    for item in prunables:
        column = item.table.c[item.column]
        cutoff = now - timedelta(days=days[item.setting])
        condition = column < cutoff if item.condition is None else sa.and_(column < cutoff, item.condition)
        keys = list(item.table.primary_key.columns)
        key = keys[0] if len(keys) == 1 else sa.tuple_(*keys)
        batch = sa.select(*keys).where(condition).limit(BATCH)
        total = 0
        while True:  # in batches: a first run on a large table holds no long lock
            with engine.begin() as connection:
                count = connection.execute(item.table.delete().where(key.in_(batch))).rowcount
            total += count
            if count < BATCH:
                break
        deleted[item.table.name] = total
    return deleted
