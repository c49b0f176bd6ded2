"""Outbox relay throughput against a plain publisher with pipelined confirms, same broker, same run.

Both publish persistent 1 KiB events to ``egov.events`` with ``mandatory`` set, routed to one durable
quorum queue; the relay additionally reads the rows from its database and marks them published.
"""

from __future__ import annotations

import time
import uuid

import amqp
import sqlalchemy as sa

from shared.broker import connect, declare_consumer_queue
from shared.db import create_engine
from shared.events import EXCHANGE, Event
from shared.migrate import upgrade
from shared.outbox import OutboxRelay, record

BENCH_QUEUE = "bench.outbox"
PAYLOAD = {"padding": "x" * 700}  # brings the envelope to about 1 KiB


def _event(n: int) -> Event:
    return Event(
        source="dossier",
        name="received",
        subject=f"BENCH-{n // 10}",
        data=PAYLOAD,
        unit_path="79.26740",
        sequence=n % 10 + 1,
    )


def _fresh_queue(amqp_uri: str) -> None:
    connection = connect(amqp_uri)
    channel = connection.channel()
    declare_consumer_queue(channel, BENCH_QUEUE, ["dossier.#"], max_attempts=5)
    channel.queue_purge(BENCH_QUEUE)
    connection.close()


def baseline(amqp_uri: str, count: int, window: int = 500) -> float:
    """Messages per second of a plain publisher: persistent, mandatory, confirms in windows."""
    _fresh_queue(amqp_uri)
    bodies = [_event(n).to_json().encode() for n in range(count)]
    connection = connect(amqp_uri)
    channel = connection.channel()
    channel.confirm_select()
    acked = 0

    def on_ack(tag: int, multiple: bool) -> None:
        nonlocal acked
        acked = tag if multiple else acked + 1

    channel.events["basic_ack"].add(on_ack)
    started = time.perf_counter()
    sent = 0
    while sent < count:
        for body in bodies[sent : sent + window]:
            channel.basic_publish(
                amqp.Message(
                    body,
                    delivery_mode=2,
                    content_type="application/cloudevents+json",
                    message_id=str(uuid.uuid4()),
                ),
                exchange=EXCHANGE,
                routing_key="dossier.received.79.26740",
                mandatory=True,
            )
        sent = min(count, sent + window)
        while acked < sent:
            connection.drain_events(timeout=30)
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def relay(amqp_uri: str, database_url: str, count: int, batch_size: int = 500) -> float:
    """Rows per second moved by the relay from committed outbox rows to broker confirms."""
    _fresh_queue(amqp_uri)
    upgrade("dossier", database_url)
    engine = create_engine(database_url)
    from services.dossier.models import pipeline

    with engine.begin() as connection:
        connection.execute(pipeline.outbox.delete())
    for start in range(0, count, 5000):
        with engine.begin() as connection:
            record(connection, pipeline.outbox, [_event(n) for n in range(start, min(count, start + 5000))])
    worker = OutboxRelay(engine, pipeline.outbox, amqp_uri, service="dossier", batch_size=batch_size)
    # Elected, as the service's relay is: on PostgreSQL its statements then run on the lock connection.
    if not worker._acquire_leadership():
        raise RuntimeError("another relay leads on the benchmark's database")
    started = time.perf_counter()
    moved = 0
    while moved < count:
        sent = worker.relay_once()
        if not sent:
            raise RuntimeError("relay stopped moving before all rows were published")
        moved += sent
    elapsed = time.perf_counter() - started
    worker.stop()
    with engine.connect() as connection:
        left = connection.execute(
            sa.select(sa.func.count())
            .select_from(pipeline.outbox)
            .where(pipeline.outbox.c.published_at.is_(None))
        ).scalar_one()
    engine.dispose()
    if left:
        raise RuntimeError(f"{left} rows left unpublished")
    return count / elapsed
