"""The transactional outbox and its relay against the real broker and real databases."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import replace
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.dossier.models import pipeline
from shared import ops
from shared.broker import BrokerUnavailable, connect
from shared.db import create_engine
from shared.events import UNROUTED_QUEUE, Event
from shared.outbox import OutboxRelay, record
from shared.uow import UnitOfWorkFactory
from tests.support.broker import Subscriber, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def make_events(dossier: str, count: int, unit: str = "79.26740", handling: str | None = None):
    return [
        Event(
            source="dossier",
            name="received",
            subject=dossier,
            data={"n": n},
            unit_path=unit,
            sequence=n,
            handling_unit_path=handling,
        )
        for n in range(1, count + 1)
    ]


@pytest.fixture
def engine(dossier_database):
    engine = create_engine(dossier_database)
    yield engine
    engine.dispose()


def pending(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count())
            .select_from(pipeline.outbox)
            .where(pipeline.outbox.c.published_at.is_(None))
        ).scalar_one()


def test_relay_publishes_committed_events_with_the_contract_envelope(engine, rabbit_config):
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.*.79.#")
    relay = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    with engine.begin() as connection:
        record(connection, pipeline.outbox, make_events("D-1", 3))
    try:
        assert relay.relay_once() == 3
        messages = subscriber.drain(expect=3)
    finally:
        relay.stop()
        subscriber.close()
    assert [m.delivery_info["routing_key"] for m in messages] == ["dossier.received.79.26740"] * 3
    assert all(m.properties["delivery_mode"] == 2 for m in messages)
    assert all(m.properties["content_type"] == "application/cloudevents+json" for m in messages)
    bodies = [json.loads(m.body) for m in messages]
    assert [int(b["sequence"]) for b in bodies] == [1, 2, 3]
    assert {b["type"] for b in bodies} == {"vn.motcua.dossier.received"}
    assert [m.properties["message_id"] for m in messages] == [b["id"] for b in bodies]
    assert pending(engine) == 0


def test_rolled_back_transaction_leaves_no_event(engine, rabbit_config):
    factory = UnitOfWorkFactory(engine, pipeline, None, rabbit_config["AMQP_URI"])
    with pytest.raises(RuntimeError), factory.transaction() as tx:
        tx.collect_from(lambda: make_events("D-2", 1))  # what a repository hands over at commit
        raise RuntimeError("the change failed")
    assert pending(engine) == 0


def test_cc_header_reaches_the_handling_jurisdiction_once(engine, rabbit_config):
    receiving = Subscriber(rabbit_config["AMQP_URI"], "dossier.*.79.26740")
    handling = Subscriber(rabbit_config["AMQP_URI"], "dossier.*.79.79-STP")
    province = Subscriber(rabbit_config["AMQP_URI"], "dossier.*.79.#")
    relay = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    with engine.begin() as connection:
        record(connection, pipeline.outbox, make_events("D-3", 1, handling="79.79-STP"))
    try:
        relay.relay_once()
        assert len(receiving.drain(expect=1)) == 1
        assert len(handling.drain(expect=1)) == 1
        # The province matches both keys of one message and still gets one copy.
        assert len(province.drain(expect=1)) == 1
    finally:
        relay.stop()
        for subscriber in (receiving, handling, province):
            subscriber.close()
    assert handling.messages[0].headers["CC"] == ["dossier.received.79.79-STP"]


def test_unroutable_event_is_flagged_without_the_policy_and_kept_with_it(engine, rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    relay = OutboxRelay(engine, pipeline.outbox, uri, service="dossier")
    nobody = make_events("D-4", 1, unit="01.00004")
    with engine.begin() as connection:
        record(connection, pipeline.outbox, nobody)
    try:
        assert relay.relay_once() == 1
        with engine.connect() as connection:
            flags = connection.execute(sa.select(pipeline.outbox.c.unroutable)).scalars().all()
        assert flags == [True]  # no alternate exchange yet: returned by the broker, flagged and counted
        ops.main(["--amqp-uri", uri, "broker-setup"], out=io.StringIO())
        # RabbitMQ applies a new policy asynchronously: relay further nobody's events until one is kept.
        sequence = 1

        def kept() -> bool:
            nonlocal sequence
            sequence += 1
            with engine.begin() as connection:
                record(
                    connection, pipeline.outbox, [replace(nobody[0], id=str(uuid.uuid4()), sequence=sequence)]
                )
            relay.relay_once()
            with ops.channel(uri) as chan:
                return chan.queue_declare(UNROUTED_QUEUE, passive=True)[1] > 0

        assert wait_for(kept)
    finally:
        relay.stop()
    with engine.connect() as connection:
        last = connection.execute(
            sa.select(pipeline.outbox.c.unroutable).order_by(pipeline.outbox.c.id.desc()).limit(1)
        ).scalar()
    assert last is False  # routed to egov.events.unrouted: nothing returned, nothing to flag
    connection = connect(uri)
    message = connection.channel().basic_get(UNROUTED_QUEUE, no_ack=True)
    connection.close()
    assert message.delivery_info["routing_key"] == "dossier.received.01.00004"


def test_events_wait_through_an_outage_then_all_go_out_in_order(engine, rabbit_config):
    uri = urlparse(rabbit_config["AMQP_URI"])
    proxy = TcpProxy(uri.hostname, uri.port or 5672)
    proxied = rabbit_config["AMQP_URI"].replace(uri.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    relay = OutboxRelay(engine, pipeline.outbox, proxied, service="dossier", confirm_timeout=2)
    try:
        with engine.begin() as connection:
            record(connection, pipeline.outbox, make_events("D-5", 5))
        assert relay.relay_once() == 5
        proxy.cut()
        with engine.begin() as connection:
            record(connection, pipeline.outbox, make_events("D-5", 10)[5:])
        with pytest.raises(BrokerUnavailable):
            relay.relay_once()
        assert pending(engine) == 5
        proxy.restore()
        assert relay.relay_once() == 5
        subscriber.drain(expect=10)
    finally:
        relay.stop()
        proxy.close()
        subscriber.close()
    assert [int(e["sequence"]) for e in subscriber.envelopes] == list(range(1, 11))
    assert pending(engine) == 0


def test_relay_killed_before_marking_resends_and_leaves_no_gap(engine, rabbit_config, monkeypatch):
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    relay = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    with engine.begin() as connection:
        record(connection, pipeline.outbox, make_events("D-6", 4))

    def crash(*_args):
        raise KeyboardInterrupt("relay killed after the broker confirmed, before marking")

    monkeypatch.setattr(relay, "_mark_published", crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            relay.relay_once()
        assert pending(engine) == 4
        restarted = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
        assert restarted.relay_once() == 4
        restarted.stop()
        subscriber.drain(expect=8)
    finally:
        relay.publisher.close()
        subscriber.close()
    envelopes = subscriber.envelopes
    assert len(envelopes) == 8  # every event twice: duplicates are allowed, gaps are not
    unique = {}
    for envelope in envelopes:
        unique.setdefault(envelope["id"], envelope)
    assert sorted(int(e["sequence"]) for e in unique.values()) == [1, 2, 3, 4]
    assert pending(engine) == 0


def test_a_busy_relay_lingers_for_the_commits_behind_and_a_quiet_one_does_not(engine, rabbit_config):
    slept: list[float] = []
    relay = OutboxRelay(
        engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier", linger_seconds=0.02
    )
    relay._sleep = slept.append
    relay._running = True
    try:
        relay._linger(idle=0.001)  # woken 1 ms after its last round: the service is busy
        relay._linger(idle=3.0)  # woken after 3 s of nothing: this event goes out at once
    finally:
        relay.stop()
    assert slept == [0.02]


def test_a_counter_table_reserves_consecutive_numbers_per_dossier(database_url):
    """shared.uow.reserve_sequences, what a TrackingRepository with ``sequences`` numbers events with:
    per dossier, consecutive across transactions, whatever the batch's size."""
    from shared.uow import reserve_sequences

    table = sa.Table(
        "toy_event_sequences",
        sa.MetaData(),
        sa.Column("subject", sa.String(100), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    engine = create_engine(database_url)
    try:
        table.create(engine)
        with Session(engine) as session, session.begin():
            first = [reserve_sequences(session, table, "D-1", 2), reserve_sequences(session, table, "D-2", 1)]
        with Session(engine) as session, session.begin():
            first.append(reserve_sequences(session, table, "D-1", 3))
    finally:
        engine.dispose()
    assert first == [1, 1, 3]  # D-1: 1-2, then 3-5; D-2 its own 1


def test_an_elected_relay_drains_a_backlog_in_order_reading_each_next_batch_with_its_mark(
    engine, rabbit_config
):
    """A full batch is marked and the next one read in one statement (PostgreSQL); every event still
    goes out once per round, in id order, and nothing is left pending."""
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    relay = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier", batch_size=3)
    with engine.begin() as connection:
        record(connection, pipeline.outbox, make_events("D-7", 8))
    try:
        assert relay._acquire_leadership()
        # 8 events in batches of 3: two full batches (each read with the previous mark), then the rest.
        assert [relay.relay_once() for _ in range(4)] == [3, 3, 2, 0]
        subscriber.drain(expect=8)
    finally:
        relay.stop()
        subscriber.close()
    assert [int(e["sequence"]) for e in subscriber.envelopes] == list(range(1, 9))
    assert pending(engine) == 0


def test_a_lower_id_committed_after_a_higher_one_is_still_relayed(engine, rabbit_config, database_url):
    """Ids are taken at insert, not at commit: the read that comes with a mark skips only the rows it
    marked, so an earlier-numbered row that commits later goes out at the next round."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one write transaction at a time: ids follow commit order")
    relay = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier", batch_size=2)
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    slow = engine.connect()
    try:
        assert relay._acquire_leadership()
        late = slow.begin()
        record(slow, pipeline.outbox, make_events("D-8", 1))  # takes the lowest id, commits last
        with engine.begin() as connection:
            record(connection, pipeline.outbox, make_events("D-9", 2))
        assert relay.relay_once() == 2  # D-9's two: a full batch, marked with the next read (empty)
        late.commit()
        # The read that came with the mark was made before this commit (empty); the next reads again.
        assert [relay.relay_once(), relay.relay_once()] == [0, 1]
        subscriber.drain(expect=3)
    finally:
        slow.close()
        relay.stop()
        subscriber.close()
    assert sorted(e["subject"] for e in subscriber.envelopes) == ["D-8", "D-9", "D-9"]
    assert pending(engine) == 0


def test_an_elected_relay_whose_lock_session_ends_stands_down_and_another_takes_over(
    engine, rabbit_config, database_url
):
    """The elected relay's statements run on its lock connection and prove the lead; when that session
    ends (pg_terminate_backend, a restart), its next statement fails and it stands down."""
    if database_url.startswith("sqlite"):
        pytest.skip("one process per SQLite database: it always leads")
    first = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    second = OutboxRelay(engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    try:
        assert first._acquire_leadership()
        assert not second._acquire_leadership()
        pid = first.leadership.connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        with engine.begin() as connection:
            record(connection, pipeline.outbox, make_events("D-10", 1))
        with pytest.raises(sa.exc.SQLAlchemyError):
            first.relay_once()
        first._release_lock()  # what the loop does on a database error
        assert wait_for(second._acquire_leadership, timeout=10)
        assert second.relay_once() == 1
    finally:
        first.stop()
        second.stop()
    assert pending(engine) == 0
