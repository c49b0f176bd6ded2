"""The inbox and the dead-letter path: a consumer on the real broker and real databases."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from shared.consumer import event_consumer
from shared.db import add_pipeline_tables, create_engine
from shared.events import Event
from shared.uow import UnitOfWork
from tests.support.broker import dead_letters, probe_event, publish, wait_for

pytestmark = pytest.mark.integration

QUEUE = "probe.dossier-events"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, "probe")
handled = sa.Table(
    "probe_handled",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
)


class ProbeService:
    """A minimal projection: records every event it handles, once."""

    name = "probe"
    uow = UnitOfWork(pipeline, relay=False)

    # Probe events carry test data, not a catalogue schema: delivery checks are tested on their own
    # (tests/integration/test_event_verification.py).
    @event_consumer(QUEUE, ["dossier.#"], verify=False)
    def on_event(self, event: Event):
        if event.data.get("fail"):
            raise RuntimeError(f"cannot project {event.subject}")
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, QUEUE):
                return False
            tx.session.execute(handled.insert().values(event_id=event.id, sequence=event.sequence))
        return True


@pytest.fixture
def probe(rabbit_config, database_url, container_factory):
    engine = create_engine(database_url)
    metadata.create_all(engine)
    config = {
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "DATABASE_URL": database_url,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "JWT_SECRET": "x" * 32,
        "OUTBOX_POLL_SECONDS": 1,
        "OUTBOX_BATCH_SIZE": 10,
        "EVENT_MAX_ATTEMPTS": 3,
    }
    container = container_factory(ProbeService, config)
    container.start()
    yield engine
    engine.dispose()


def rows(engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                sa.select(handled.c.event_id, handled.c.sequence).order_by(handled.c.id)
            )
        ]


def test_a_redelivered_event_changes_nothing(probe, rabbit_config):
    first = probe_event(1)
    publish(
        rabbit_config["AMQP_URI"],
        first.to_json().encode(),
        first.to_json().encode(),
        probe_event(2).to_json().encode(),
    )
    assert wait_for(lambda: len(rows(probe)) >= 2)
    time.sleep(0.5)  # room for a wrongly counted duplicate to show up
    # Workers run concurrently, so handling order is free; each event counts exactly once.
    assert sorted(sequence for _id, sequence in rows(probe)) == [1, 2]


def test_unparseable_message_is_dead_lettered_with_reason_and_consumer_carries_on(probe, rabbit_config):
    publish(rabbit_config["AMQP_URI"], b"{not json", b'{"specversion": "1.0"}')
    publish(rabbit_config["AMQP_URI"], probe_event(1).to_json().encode())
    dead = dead_letters(rabbit_config["AMQP_URI"], QUEUE, expect=2)
    assert len(dead) == 2
    assert all(m.headers["x-motcua-reason"].startswith("unparseable") for m in dead)
    assert dead[0].body == b"{not json"
    assert wait_for(lambda: rows(probe))[0][1] == 1


def test_a_failing_event_is_retried_then_dead_lettered_not_dropped(probe, rabbit_config):
    poison = probe_event(1, fail=True)
    publish(rabbit_config["AMQP_URI"], poison.to_json().encode(), probe_event(2).to_json().encode())
    dead = dead_letters(rabbit_config["AMQP_URI"], QUEUE, expect=1)
    assert len(dead) == 1
    assert dead[0].headers["x-motcua-attempts"] == 3
    assert "RuntimeError: cannot project D-1" in dead[0].headers["x-motcua-reason"]
    assert Event.from_json(dead[0].body).id == poison.id
    assert [sequence for _id, sequence in wait_for(lambda: rows(probe))] == [2]
