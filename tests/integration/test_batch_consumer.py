"""``@event_batch_consumer``: batches on the real broker and real databases, the same contract as
``@event_consumer`` (tests/integration/test_consumer.py): acked once, de-duplicated by the inbox,
a failing event retried and dead-lettered alone with its reason, an unparseable one dead-lettered."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from shared.broker import connect
from shared.consumer import EventBatchConsumer, event_batch_consumer
from shared.db import add_pipeline_tables, create_engine
from shared.events import Event
from shared.uow import UnitOfWork
from tests.support.broker import dead_letters, probe_event, publish, wait_for

pytestmark = pytest.mark.integration

QUEUE = "batchprobe.dossier-events"
HELD_QUEUE = "batchprobe.held-dossier-events"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, "batchprobe")
handled = sa.Table(
    "batchprobe_handled",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
)
calls: list[int] = []  # the size of each batch the handler was called with
# How many more calls with an ``outage`` event meet a "connection reset" (an infrastructure failure).
OUTAGE_CALLS = [0]


def project(uow, events: list[Event], queue: str) -> list[bool]:
    """A minimal projection: every event once, the whole batch in one transaction."""
    calls.append(len(events))
    if OUTAGE_CALLS[0] > 0 and any(event.data.get("outage") for event in events):
        OUTAGE_CALLS[0] -= 1
        raise ConnectionResetError("connection reset by peer")
    answers = []
    with uow.transaction() as tx:
        for event in events:
            if event.data.get("fail"):
                raise RuntimeError(f"cannot project {event.subject} #{event.sequence}")
            first = tx.first_delivery(event, queue)
            if first:
                tx.session.execute(handled.insert().values(event_id=event.id, sequence=event.sequence))
            answers.append(first)
    return answers


class BatchProbeService:
    name = "batchprobe"
    uow = UnitOfWork(pipeline, relay=False)

    # Probe events carry test data (tests/integration/test_event_verification.py checks deliveries).
    @event_batch_consumer(QUEUE, ["dossier.#"], batch_size=50, batch_wait=0.3, verify=False)
    def on_events(self, events: list[Event]) -> list[bool]:
        return project(self.uow, events, QUEUE)


class HeldProbeService:
    """Batches that never fill and wait long: messages stay in the buffer, unacked."""

    name = "batchprobe"
    uow = UnitOfWork(pipeline, relay=False)

    @event_batch_consumer(HELD_QUEUE, ["dossier.#"], batch_size=50, batch_wait=60, verify=False)
    def on_events(self, events: list[Event]) -> list[bool]:
        return project(self.uow, events, HELD_QUEUE)


@pytest.fixture
def config(rabbit_config, database_url):
    engine = create_engine(database_url)
    metadata.create_all(engine)
    engine.dispose()
    calls.clear()
    return {
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "DATABASE_URL": database_url,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "JWT_SECRET": "x" * 32,
        "OUTBOX_POLL_SECONDS": 1,
        "OUTBOX_BATCH_SIZE": 10,
        "EVENT_MAX_ATTEMPTS": 3,
    }


@pytest.fixture
def probe(config, container_factory):
    container = container_factory(BatchProbeService, config)
    container.start()
    engine = create_engine(config["DATABASE_URL"])
    yield engine, container
    engine.dispose()


def sequences(engine) -> list[int]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(handled.c.sequence)).scalars())


def waiting_messages(amqp_uri: str, queue: str) -> int:
    """Messages ready in the queue (unacked ones count once their consumer is gone)."""
    connection = connect(amqp_uri)
    _name, messages, _consumers = connection.channel().queue_declare(queue, passive=True)
    connection.close()
    return messages


def test_prefetch_must_hold_a_batch():
    with pytest.raises(ValueError, match="smaller than batch_size"):
        EventBatchConsumer(QUEUE, ["dossier.#"], batch_size=100, prefetch=50)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        EventBatchConsumer(QUEUE, ["dossier.#"], batch_size=0)
    assert EventBatchConsumer(QUEUE, ["dossier.#"], batch_size=100).prefetch_count == 200


def test_a_batch_of_good_events_is_handled_in_few_calls_and_acked_once(probe, rabbit_config):
    engine, container = probe
    amqp_uri = rabbit_config["AMQP_URI"]
    publish(amqp_uri, *(probe_event(n).to_json().encode() for n in range(1, 31)))
    assert wait_for(lambda: len(sequences(engine)) == 30)
    assert sequences(engine) == list(range(1, 31))
    assert sum(calls) == 30 and len(calls) <= 3, calls  # batches, not one call per message
    container.stop()
    assert waiting_messages(amqp_uri, QUEUE) == 0  # every message was acked
    assert dead_letters(amqp_uri, QUEUE, expect=1, timeout=0.5) == []


def test_a_poison_event_is_dead_lettered_alone_and_the_rest_of_its_batch_projected(probe, rabbit_config):
    engine, container = probe
    amqp_uri = rabbit_config["AMQP_URI"]
    poison = probe_event(3, fail=True)
    bodies = [(poison if n == 3 else probe_event(n)).to_json().encode() for n in range(1, 7)]
    publish(amqp_uri, *bodies)
    dead = dead_letters(amqp_uri, QUEUE, expect=1)
    assert len(dead) == 1
    assert dead[0].headers["x-motcua-attempts"] == 3
    assert "RuntimeError: cannot project D-1 #3" in dead[0].headers["x-motcua-reason"]
    assert dead[0].headers["x-motcua-queue"] == QUEUE
    assert Event.from_json(dead[0].body).id == poison.id
    assert wait_for(lambda: sequences(engine) == [1, 2, 4, 5, 6])
    assert max(calls) > 1  # the neighbours came in a batch first, then one by one
    container.stop()
    assert waiting_messages(amqp_uri, QUEUE) == 0
    assert sequences(engine) == [1, 2, 4, 5, 6]


def test_a_redelivered_event_counts_once_in_the_same_batch_or_a_later_one(probe, rabbit_config):
    engine, container = probe
    amqp_uri = rabbit_config["AMQP_URI"]
    first, second = probe_event(1), probe_event(2)
    publish(amqp_uri, first.to_json().encode(), first.to_json().encode(), second.to_json().encode())
    assert wait_for(lambda: len(sequences(engine)) >= 2)
    publish(amqp_uri, second.to_json().encode(), first.to_json().encode())
    assert wait_for(lambda: sum(calls) == 5)
    time.sleep(0.5)  # room for a wrongly counted duplicate to show up
    assert sequences(engine) == [1, 2]
    container.stop()
    assert waiting_messages(amqp_uri, QUEUE) == 0


def test_an_unparseable_message_is_dead_lettered_with_its_reason_and_the_batch_goes_on(probe, rabbit_config):
    engine, _container = probe
    amqp_uri = rabbit_config["AMQP_URI"]
    publish(amqp_uri, probe_event(1).to_json().encode(), b"{not json", b'{"specversion": "1.0"}')
    publish(amqp_uri, probe_event(2).to_json().encode())
    dead = dead_letters(amqp_uri, QUEUE, expect=2)
    assert len(dead) == 2
    assert all(m.headers["x-motcua-reason"].startswith("unparseable") for m in dead)
    assert all(m.headers["x-motcua-attempts"] == 1 for m in dead)
    assert {m.body for m in dead} == {b"{not json", b'{"specversion": "1.0"}'}
    assert wait_for(lambda: sequences(engine) == [1, 2])


def test_buffered_messages_are_not_acked_on_stop_and_come_again(config, container_factory):
    amqp_uri = config["AMQP_URI"]
    container = container_factory(HeldProbeService, config)
    container.start()
    publish(amqp_uri, *(probe_event(n).to_json().encode() for n in range(1, 6)))
    time.sleep(1.0)  # delivered into the buffer, where the batch waits to fill
    assert calls == []
    container.stop()
    assert wait_for(lambda: waiting_messages(amqp_uri, HELD_QUEUE) == 5)

    # Started again, the five come back; 45 more fill the batch of 50.
    again = container_factory(HeldProbeService, config)
    again.start()
    publish(amqp_uri, *(probe_event(n).to_json().encode() for n in range(6, 51)))
    engine = create_engine(config["DATABASE_URL"])
    try:
        assert wait_for(lambda: sequences(engine) == list(range(1, 51)))
        assert calls == [50]
    finally:
        engine.dispose()
    again.stop()
    assert waiting_messages(amqp_uri, HELD_QUEUE) == 0


def test_a_batch_held_past_the_maximum_hold_goes_back_to_the_broker(config, container_factory, caplog):
    """Held no longer than EVENT_MAX_HOLD_SECONDS (1.5 s, tries every 0.5 s): the batch goes back to the
    broker, comes again and is held again; each event is projected once when the failures stop."""
    config = {
        **config,
        "EVENT_MAX_HOLD_SECONDS": 1.5,
        "EVENT_OUTAGE_BACKOFF_MAX_SECONDS": 0.5,
        "BROKER_CONSUMER_TIMEOUT_SECONDS": 100,
    }
    container = container_factory(BatchProbeService, config)
    container.start()
    engine = create_engine(config["DATABASE_URL"])
    try:
        OUTAGE_CALLS[0] = 8
        with caplog.at_level("ERROR", logger="shared.consumer"):
            publish(config["AMQP_URI"], *(probe_event(n, outage=True).to_json().encode() for n in (1, 2, 3)))
            assert wait_for(lambda: sequences(engine) == [1, 2, 3], timeout=20)
        assert OUTAGE_CALLS[0] == 0
        assert any("given back to the broker" in r.getMessage() for r in caplog.records), caplog.text
        assert dead_letters(config["AMQP_URI"], QUEUE, expect=1, timeout=1.0) == []
        assert waiting_messages(config["AMQP_URI"], QUEUE) == 0
    finally:
        engine.dispose()
