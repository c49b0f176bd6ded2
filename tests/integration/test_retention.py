"""Retention (issue 11 §4): idempotency keys, inbox rows, published outbox rows and the metrics event log
are pruned by age; nothing younger, nothing unpublished, no waiting event and no audit line goes. Through
the metrics service's own hourly entrypoint, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_hook

from services.metrics.models import event_log, pipeline
from services.metrics.service import MetricsService
from tests.integration.test_metrics_service import metrics_config  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD, RECENT = NOW - timedelta(days=45), NOW - timedelta(days=2)
ANCIENT = NOW - timedelta(days=500)


def seed(engine: sa.Engine) -> None:
    def key(name: str, at: datetime) -> dict:
        return dict(
            principal="p",
            key=name,
            method="POST",
            path="/x",
            request_hash="h",
            status=201,
            headers={},
            body="{}",
            created_at=at,
        )

    def outbox(name: str, published: datetime | None) -> dict:
        return dict(
            event_id=name,
            subject="S",
            event_type="t",
            routing_key="k",
            cc=None,
            body="{}",
            created_at=OLD,
            published_at=published,
            unroutable=False,
        )

    def logged(sequence: int, at: datetime, waiting: bool) -> dict:
        return dict(
            subject="D-1",
            sequence=sequence,
            event_id=str(uuid.uuid4()),
            name="received",
            time=at,
            unit_path="79.26740",
            handling_unit_path=None,
            data={},
            waiting=waiting,
            logged_at=at,
        )

    with engine.begin() as connection:
        connection.execute(pipeline.idempotency_keys.insert(), [key("old", OLD), key("recent", RECENT)])
        connection.execute(
            pipeline.inbox.insert(),
            [
                dict(consumer="c", event_id=name, event_type="t", received_at=at)
                for name, at in (("old", OLD), ("recent", RECENT))
            ],
        )
        connection.execute(
            pipeline.outbox.insert(),
            [outbox("sent-old", OLD), outbox("sent-recent", RECENT), outbox("unsent-old", None)],
        )
        connection.execute(
            event_log.insert(), [logged(1, ANCIENT, False), logged(3, ANCIENT, True), logged(4, OLD, False)]
        )


def remaining(engine: sa.Engine, table: sa.Table, column: str) -> list:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(table.c[column])).scalars())


def test_the_hourly_prune_deletes_only_what_is_past_its_retention(metrics_config, container_factory):  # noqa: F811
    engine = sa.create_engine(metrics_config["DATABASE_URL"])
    seed(engine)
    container = container_factory(MetricsService, {**metrics_config, "RETENTION_INBOX_DAYS": 30})
    container.start()
    with entrypoint_hook(container, "prune_expired") as prune_expired:
        deleted = prune_expired()
    assert deleted["metrics_idempotency_keys"] == 1 and deleted["metrics_inbox"] == 1
    assert remaining(engine, pipeline.idempotency_keys, "key") == ["recent"]  # 7 days
    assert remaining(engine, pipeline.inbox, "event_id") == ["recent"]  # 30 days
    assert remaining(engine, pipeline.outbox, "event_id") == [
        "sent-recent",
        "unsent-old",
    ]  # 7 days, sent only
    assert remaining(engine, event_log, "sequence") == [3, 4]  # 400 days; waiting rows stay
    with entrypoint_hook(container, "prune_expired") as prune_expired:
        assert not any(prune_expired().values())  # nothing more to do
    engine.dispose()


def test_a_retention_below_a_day_stops_the_service(metrics_config, container_factory):  # noqa: F811
    container = container_factory(MetricsService, {**metrics_config, "RETENTION_OUTBOX_DAYS": 0})
    with pytest.raises(Exception, match="RETENTION_OUTBOX_DAYS"):
        container.start()
