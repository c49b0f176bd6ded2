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


# Event id -> how many more times handling it meets a "connection reset" (an infrastructure failure).
OUTAGES: dict[str, int] = {}
RETRY_DELAYS = (0.4, 0.8)


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
        if OUTAGES.get(event.id, 0) > 0:
            OUTAGES[event.id] -= 1
            raise ConnectionResetError("connection reset by peer")
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, QUEUE):
                return False
            tx.session.execute(handled.insert().values(event_id=event.id, sequence=event.sequence))
        return True


def start_probe(rabbit_config, database_url, container_factory, **settings):
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
        "EVENT_RETRY_DELAYS": ",".join(map(str, RETRY_DELAYS)),
        "EVENT_OUTAGE_BACKOFF_MAX_SECONDS": 0.5,
        **settings,
    }
    container = container_factory(ProbeService, config)
    container.start()
    return engine


@pytest.fixture
def probe(rabbit_config, database_url, container_factory):
    engine = start_probe(rabbit_config, database_url, container_factory)
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
    published = time.monotonic()
    publish(rabbit_config["AMQP_URI"], poison.to_json().encode(), probe_event(2).to_json().encode())
    dead = dead_letters(rabbit_config["AMQP_URI"], QUEUE, expect=1)
    # Three attempts, with the configured waits between them (0.4 s, then 0.8 s), not a tight loop.
    assert time.monotonic() - published >= sum(RETRY_DELAYS)
    assert len(dead) == 1
    assert dead[0].headers["x-motcua-attempts"] == 3
    assert "RuntimeError: cannot project D-1" in dead[0].headers["x-motcua-reason"]
    assert Event.from_json(dead[0].body).id == poison.id
    assert [sequence for _id, sequence in wait_for(lambda: rows(probe))] == [2]


def test_an_infrastructure_failure_spends_no_attempt(probe, rabbit_config):
    """Six connection resets in a row, twice the attempt limit: held and retried, never dead-lettered."""
    event = probe_event(1)
    OUTAGES[event.id] = 2 * 3
    publish(rabbit_config["AMQP_URI"], event.to_json().encode())
    assert wait_for(lambda: rows(probe), timeout=20) == [(event.id, 1)]
    assert OUTAGES[event.id] == 0
    assert dead_letters(rabbit_config["AMQP_URI"], QUEUE, expect=1, timeout=1.0) == []


def test_an_event_held_past_the_maximum_hold_goes_back_to_the_broker(
    rabbit_config, database_url, container_factory, caplog
):
    """Held no longer than EVENT_MAX_HOLD_SECONDS (here 1.5 s, tries every 0.5 s): given back to the
    broker, delivered again and held again, before RabbitMQ's consumer_timeout would close the channel;
    handled once when the failures stop, never dead-lettered."""
    engine = start_probe(
        rabbit_config,
        database_url,
        container_factory,
        EVENT_MAX_HOLD_SECONDS=1.5,
        BROKER_CONSUMER_TIMEOUT_SECONDS=100,
    )
    try:
        event = probe_event(1)
        OUTAGES[event.id] = 8
        with caplog.at_level("ERROR", logger="shared.consumer"):
            publish(rabbit_config["AMQP_URI"], event.to_json().encode())
            assert wait_for(lambda: rows(engine), timeout=20) == [(event.id, 1)]
        assert OUTAGES[event.id] == 0
        released = [r for r in caplog.records if "given back to the broker" in r.getMessage()]
        assert len(released) >= 1, caplog.text
        assert dead_letters(rabbit_config["AMQP_URI"], QUEUE, expect=1, timeout=1.0) == []
    finally:
        engine.dispose()


def test_a_hold_longer_than_the_brokers_consumer_timeout_refuses_to_start(
    rabbit_config, database_url, container_factory
):
    with pytest.raises(ValueError, match="consumer_timeout"):
        start_probe(
            rabbit_config,
            database_url,
            container_factory,
            EVENT_MAX_HOLD_SECONDS=1800,
            BROKER_CONSUMER_TIMEOUT_SECONDS=1800,
        ).dispose()
