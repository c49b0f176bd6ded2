"""Metrics service benchmarks: projection throughput against a raw consumer, and /metrics render time.

``projection_throughput``: the metrics service runs as its own process (as ``make run`` starts it)
and projects ``n_events`` dossier events waiting in its queue, in batches (``@event_batch_consumer``),
once on each database given (SQLite and PostgreSQL in ``make bench``); the baseline is a plain consumer
acking the same messages from a queue of the same kind (durable quorum queue, prefetch 200), measured
just before each database's run, and that database's ratio is taken against it. For context it also measures
do-nothing nameko consumers, verifying what they receive as the service does: an ``@event_consumer``
(one worker per message) and an ``@event_batch_consumer`` with the service's batch settings, the
ceilings of consumers built on the shared entrypoints. Rates run from the first to the last handling
started (a batch's events share its start; the events of the last batch are not counted). Consumers
check each delivery's routing key, so the events are published to ``egov.events`` as the relay
publishes them: run it in a virtual host of its own (``make bench`` and ``__main__`` make one), never
where a metrics service runs — it refuses a queue with consumers.

``metrics_render``: one province (the largest of the default map, every commune, every catalogue
field) with ``n_dossiers`` projected dossiers bulk-inserted as facts and totals, then the /metrics page
rendered (database queries and text) several times.

Targets (issue 4): projection at least 30% of the raw consume rate; render under 250 ms.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import amqp
import sqlalchemy as sa

from benchmarks.common import BenchVhost, RunningService, cpu_seconds
from services.dossier.catalogue_files import load_catalogue
from services.metrics import repository
from services.metrics.exposition import SlaCollector, UnitLabels, render
from services.metrics.models import dossier_facts, pipeline
from services.metrics.projection import DossierFacts
from services.metrics.service import BATCH_SIZE, BATCH_WAIT, QUEUE
from shared.auth import DEV_SECRET
from shared.broker import ConfirmingPublisher, Outgoing, connect, declare_consumer_queue
from shared.consumer import event_batch_consumer, event_consumer
from shared.db import create_engine
from shared.events import Event
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import RATINGS
from shared.workcalendar import WorkingCalendar
from tests.support.metrics_streams import Simulator

ROOT = Path(__file__).resolve().parent.parent
PREFETCH = 200  # MAX_WORKERS of the services under test, which nameko also uses as its prefetch count
# A service may consume only queues named after it (shared/consumer.py): both no-op services are
# "bench_noop", each run in its own process.
NOOP_QUEUE = "bench_noop.events"


def _dossier_events(n_events: int, seed: int) -> list[Event]:
    """``n_events`` realistic dossier events, dossiers interleaved, each dossier's in order."""
    registry = UnitRegistry.default()
    units = sorted(registry.descendants(_largest_province(registry)))
    now = datetime.now(UTC)
    simulator = Simulator(seed, registry, now)
    rng = random.Random(seed)
    streams: list[Iterator[Event]] = []
    total = 0
    while total < n_events:
        truth = simulator.dossier(rng.choice(units), now - timedelta(days=rng.uniform(1, 40)))
        streams.append(iter(truth.events))
        total += len(truth.events)
    events: list[Event] = []
    while streams and len(events) < n_events:
        index = rng.randrange(len(streams))
        event = next(streams[index], None)
        if event is None:
            streams[index] = streams[-1]
            streams.pop()
        else:
            events.append(event)
    return events


def _fill(amqp_uri: str, queue: str, bodies: list[bytes]) -> None:
    """Put the messages straight into ``queue`` (default exchange): persistent, confirmed."""
    _publish(
        amqp_uri,
        [
            Outgoing(message_id="", event_type="", routing_key=queue, body=body, exchange="")
            for body in bodies
        ],
    )


def _route(amqp_uri: str, events: list[Event], bodies: list[bytes]) -> None:
    """Publish the events to ``egov.events`` as the relay does (routing key, CC): consumers verify the
    routing key of what they receive (shared/verification.py), so a message put straight into their
    queue would be dead-lettered. Only in a virtual host of the benchmark's own (:class:`BenchVhost`)."""
    _publish(
        amqp_uri,
        [
            Outgoing(
                message_id=event.id,
                event_type=event.type,
                routing_key=event.routing_key,
                body=body,
                cc=tuple(event.cc),
            )
            for event, body in zip(events, bodies, strict=True)
        ],
    )


def _publish(amqp_uri: str, messages: list[Outgoing]) -> None:
    publisher = ConfirmingPublisher(amqp_uri, confirm_timeout=60)
    try:
        for start in range(0, len(messages), 1000):
            outcomes = publisher.publish(messages[start : start + 1000])
            if not all(o.confirmed and not o.unroutable for o in outcomes):
                raise RuntimeError("the broker did not take every message")
    finally:
        publisher.close()


def _empty_queue(amqp_uri: str, queue: str, *, bindings: list[str]) -> None:
    connection = connect(amqp_uri)
    channel = connection.channel()
    declare_consumer_queue(channel, queue, bindings, max_attempts=5)
    _name, _messages, consumers = channel.queue_declare(queue, passive=True)
    if consumers:
        connection.close()
        raise RuntimeError(
            f"queue {queue} already has {consumers} consumer(s): stop that metrics service first"
        )
    channel.queue_purge(queue)
    connection.close()


def raw_consume(amqp_uri: str, bodies: list[bytes]) -> float:
    """Messages per second of a plain consumer acking each message of a quorum queue."""
    queue = f"bench.raw-consume-{uuid.uuid4().hex[:8]}"
    _empty_queue(amqp_uri, queue, bindings=[])
    _fill(amqp_uri, queue, bodies)
    connection = connect(amqp_uri, timeout=30)
    channel = connection.channel()
    channel.basic_qos(0, PREFETCH, False)
    stamps: list[float] = []

    def on_message(message: amqp.Message) -> None:
        channel.basic_ack(message.delivery_tag)
        stamps.append(time.perf_counter())

    tag = channel.basic_consume(queue, callback=on_message)
    deadline = time.monotonic() + 600
    while len(stamps) < len(bodies) and time.monotonic() < deadline:
        connection.drain_events(timeout=10)
    channel.basic_cancel(tag)
    channel.queue_delete(queue)
    connection.close()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


HANDLED: list[float] = []  # when the handling of each message started (the child process's)


class NoopConsumer:
    """The shared entrypoint with nothing behind it: what nameko itself costs per message."""

    name = "bench_noop"

    @event_consumer(NOOP_QUEUE, [])
    def handle(self, event: Event) -> bool:
        HANDLED.append(time.perf_counter())
        return True


class NoopBatchConsumer:
    """The batch entrypoint, with the metrics service's settings, and nothing behind it."""

    name = "bench_noop"

    @event_batch_consumer(NOOP_QUEUE, [], batch_size=BATCH_SIZE, batch_wait=BATCH_WAIT)
    def handle(self, events: list[Event]) -> None:
        HANDLED.extend([time.perf_counter()] * len(events))


def rate(stamps: list) -> float:
    """Items per second from the first to the last start; the items started last are not counted."""
    first, last = min(stamps), max(stamps)
    return (len(stamps) - stamps.count(last)) / _seconds(last - first)


def _seconds(span) -> float:
    return span.total_seconds() if isinstance(span, timedelta) else span


def _run_noop_consumer(amqp_uri: str, count: int, batch: bool = False) -> None:
    """In a child process (eventlet patched): consume ``count`` messages, print the rate."""
    import eventlet
    from nameko.containers import ServiceContainer

    service = NoopBatchConsumer if batch else NoopConsumer
    container = ServiceContainer(service, {"AMQP_URI": amqp_uri, "max_workers": PREFETCH})
    container.start()
    while len(HANDLED) < count:
        eventlet.sleep(0.05)
    container.stop()
    print(rate(HANDLED))


def nameko_noop(amqp_uri: str, events: list[Event], bodies: list[bytes], *, batch: bool = False) -> float:
    """Messages per second of a do-nothing ``@event_consumer`` (or ``@event_batch_consumer``) service,
    verifying what it receives as the metrics service does: the entrypoint's ceiling."""
    _empty_queue(amqp_uri, NOOP_QUEUE, bindings=["dossier.#"])
    _route(amqp_uri, events, bodies)
    child = (
        "import eventlet; eventlet.monkey_patch()\n"
        "from benchmarks.bench_metrics import _run_noop_consumer\n"
        f"_run_noop_consumer({amqp_uri!r}, {len(bodies)}, batch={batch})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", child],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    connection = connect(amqp_uri)
    connection.channel().queue_delete(NOOP_QUEUE)
    connection.close()
    return float(result.stdout.strip().splitlines()[-1])


class RunningMetrics(RunningService):
    """The metrics service as its own process (benchmarks/common.py), taking as many messages at a time
    as the services under test."""

    def __init__(self, amqp_uri: str, database_url: str, *, root: Path = ROOT) -> None:
        super().__init__(
            "metrics",
            amqp_uri,
            database_url,
            root=root,
            env={"JWT_SECRET": DEV_SECRET, "MAX_WORKERS": str(PREFETCH)},
        )


def consume_baselines(amqp_uri: str, events: list[Event], bodies: list[bytes]) -> dict:
    """The same-run baselines of the projection: a raw consumer and the do-nothing nameko consumers."""
    raw = raw_consume(amqp_uri, bodies)
    ceiling = nameko_noop(amqp_uri, events, bodies)
    batch_ceiling = nameko_noop(amqp_uri, events, bodies, batch=True)
    return {
        "raw_consume_msgs_per_s": round(raw),
        "nameko_noop_consumer_msgs_per_s": round(ceiling),
        "nameko_noop_batch_consumer_msgs_per_s": round(batch_ceiling),
        "noop_ratio": round(ceiling / raw, 3),
        "noop_batch_ratio": round(batch_ceiling / raw, 3),
    }


def projected_rate(
    amqp_uri: str, database_url: str, events: list[Event], bodies: list[bytes], *, root: Path = ROOT
) -> dict:
    """Events projected per second by the metrics service process (of the source tree ``root``), on
    one database."""
    upgrade("metrics", database_url)
    _empty_queue(amqp_uri, QUEUE, bindings=["dossier.#"])
    _route(amqp_uri, events, bodies)
    engine = create_engine(database_url, pool_size=1)
    inbox = pipeline.inbox
    since = datetime.now(UTC)
    handled = sa.select(sa.func.count()).where(inbox.c.consumer == QUEUE, inbox.c.received_at >= since)
    # When each event's transaction started: a batch's events share one.
    claimed = sa.select(inbox.c.received_at).where(inbox.c.consumer == QUEUE, inbox.c.received_at >= since)
    count = handled_before = 0
    cpu = None
    try:
        with RunningMetrics(amqp_uri, database_url, root=root) as running:
            cpu_before = _cpu_seconds(running.process.pid)
            with engine.connect() as connection:
                # It consumes from its start: what it handled before it answered is not counted.
                handled_before = connection.execute(handled).scalar_one()
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                with engine.connect() as connection:
                    count = connection.execute(handled).scalar_one()
                if count >= len(events):
                    break
                time.sleep(0.5)
            cpu_after = _cpu_seconds(running.process.pid)
            if cpu_before is not None and cpu_after is not None:
                cpu = cpu_after - cpu_before
        with engine.connect() as connection:
            waiting = repository.waiting_count(connection)
            stamps = list(connection.execute(claimed).scalars())
    finally:
        engine.dispose()
        connection = connect(amqp_uri)
        connection.channel().queue_delete(QUEUE)
        connection.close()
    if count < len(events):
        raise RuntimeError(f"only {count} of {len(events)} events projected in time")
    return {
        "projected_events_per_s": round(rate(stamps)),
        # The service process's own CPU time per event, from when it was up to the last event (Linux):
        # less sensitive to the machine's load than the rates.
        "service_cpu_us_per_event": None
        if cpu is None or count <= handled_before
        else round(cpu / (count - handled_before) * 1e6),
        "events_left_waiting": waiting,
    }


def _cpu_seconds(pid: int) -> float | None:
    """The process's CPU seconds so far (benchmarks/common.py), None where there is no /proc."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def projection_throughput(amqp_uri: str, database_urls: dict[str, str], n_events: int) -> dict:
    """Events projected per second by the metrics service on each database, against a raw consumer of the
    same events measured just before it (a baseline taken minutes earlier would make the ratio follow
    the machine's load); the do-nothing consumers, for context, against their own raw run."""
    events = _dossier_events(n_events, seed=random.randrange(1 << 30))
    bodies = [event.to_json().encode() for event in events]
    figures: dict = {
        "events": len(events),
        **consume_baselines(amqp_uri, events, bodies),
        "target_ratio": 0.3,
    }
    for database, url in database_urls.items():
        raw = raw_consume(amqp_uri, bodies)
        projected = projected_rate(amqp_uri, url, events, bodies)
        figures[database] = {
            "raw_consume_msgs_per_s": round(raw),
            **projected,
            "ratio": round(projected["projected_events_per_s"] / raw, 3),
        }
    return figures


def _largest_province(registry: UnitRegistry) -> str:
    provinces = registry.units_at_level("province")
    return max(provinces, key=lambda province: len(registry.descendants(province.code))).code


def _synthetic_facts(
    n_dossiers: int, units: list[str], now: datetime, seed: int = 766
) -> Iterator[DossierFacts]:
    """A province's dossiers of the last year: mostly decided and returned, some in process and late."""
    rng = random.Random(seed)
    fields = sorted(load_catalogue().fields())
    today = now.date()
    for number in range(n_dossiers):
        received_at = now - timedelta(days=rng.uniform(0, 365))
        due_at = received_at + timedelta(days=rng.choice((1, 3, 5, 10, 15, 30)) * 1.4)
        values: dict = {"status": 10}
        draw = rng.random()
        if draw < 0.05:
            values = {"status": 4, "due_at": now + timedelta(hours=rng.uniform(-200, 200))}
        elif draw < 0.08:
            values = {"status": 7}
        else:
            resolved_at = received_at + (due_at - received_at) * rng.uniform(0.2, 1.2)
            values.update(
                resolved_at=resolved_at,
                timeliness=rng.choices(("early", "on_time", "late"), weights=(7, 2, 1))[0],
                working_days=round(rng.uniform(0.2, 30), 2),
            )
            if rng.random() < 0.9:
                values.update(
                    returned_at=resolved_at, returned_by="postal" if rng.random() < 0.3 else "counter"
                )
            else:
                values["status"] = 9
        yield DossierFacts(
            code=f"BENCH-{number:08d}",
            receiving_unit=rng.choice(units),
            handling_unit=units[0],
            procedure_code="1.001193",
            procedure_field=rng.choice(fields),
            channel=rng.choices((1, 2, 3), weights=(6, 3, 1))[0],
            return_method=0,
            received_at=received_at,
            received_on=min(received_at.date(), today),
            original_due_at=due_at,
            supplements=1 if rng.random() < 0.15 else 0,
            last_sequence=8,
            **{"due_at": due_at, **values},
        )


def metrics_render(database_url: str, n_dossiers: int = 1_000_000, runs: int = 7) -> dict:
    """Time to render /metrics, and its series count, for one province with ``n_dossiers`` dossiers."""
    upgrade("metrics", database_url)
    registry = UnitRegistry.default()
    province = _largest_province(registry)
    units = sorted(registry.descendants(province))
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            repository.bulk_insert_facts(connection, _synthetic_facts(n_dossiers, units, now), chunk=10_000)
        with sa.orm.Session(engine) as session, session.begin():
            for unit in units:  # a few ratings per unit, every kind
                codes = session.execute(
                    sa.select(dossier_facts.c.code)
                    .where(dossier_facts.c.receiving_unit == unit, dossier_facts.c.returned_at.is_not(None))
                    .limit(len(RATINGS))
                ).scalars()
                for code, rating in zip(codes, RATINGS, strict=False):
                    repository.add_rating(session, repository.load_facts(session, code), rating, now, "bench")
        if engine.dialect.name == "postgresql":
            # As autovacuum leaves a table in steady state: statistics, and the visibility map that
            # lets the gauges' query read the in-process index alone.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("VACUUM ANALYZE metrics_dossier_facts"))
        loaded = time.perf_counter() - started
        collector = SlaCollector(
            engine, UnitLabels(registry, 2), timedelta(hours=24), WorkingCalendar().day_length
        )
        render(collector)  # warm: connections, caches
        timings, page = [], b""
        for _ in range(runs):
            begin = time.perf_counter()
            page = render(collector)
            timings.append((time.perf_counter() - begin) * 1000)
    finally:
        engine.dispose()
    series = sum(1 for line in page.decode().splitlines() if line and not line.startswith("#"))
    return {
        "dossiers": n_dossiers,
        "database": engine.dialect.name,
        "province": province,
        "units": len(units),
        "series": series,
        "render_ms_median": round(statistics.median(timings), 1),
        "render_ms_max": round(max(timings), 1),
        "target_ms": 250,
        "load_seconds": round(loaded, 1),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Run the metrics benchmarks once.")
    parser.add_argument("--database-url", required=True, action="append", help="once per database")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--dossiers", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("projection", "render"))
    args = parser.parse_args()
    if args.only in (None, "projection"):
        urls = {sa.engine.make_url(url).get_backend_name(): url for url in args.database_url}
        with BenchVhost() as vhost:  # the events are routed through egov.events: never a running system's
            print(json.dumps(projection_throughput(vhost, urls, args.events), indent=2))
    if args.only in (None, "render"):
        for url in args.database_url:
            print(json.dumps(metrics_render(url, args.dossiers), indent=2))
