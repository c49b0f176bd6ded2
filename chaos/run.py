"""``make chaos``: each reliability promise under its fault, with the dossier database as the oracle.

    make chaos                                   # every scenario, the issue's durations (long)
    make chaos CHAOS_ARGS="--broker-outage 60 --db-outage 30 --kills 50"
    make chaos CHAOS_ARGS="--only kill-9 --kills 5"

The stack is private to the run: two PostgreSQL servers of its own (dossier, metrics) started with
``initdb``/``pg_ctl`` on free ports, a RabbitMQ node of its own (own node name, ports and directories;
``--broker shared`` uses a throw-away vhost on the local broker instead, without the alarm scenario),
two dossier processes (two
relays, one leader by advisory lock) and a metrics process, each talking to the broker and to its
database through a fault proxy (chaos/proxy.py). A second process (chaos/load.py) files receipts at a
steady rate during every scenario, retrying with the same Idempotency-Key until accepted. An independent
subscriber queue binds ``dossier.#``.

After each scenario the load stops, the system is given time to settle, and three figures are compared
with the oracle — every dossier in the dossier service's own database:

- **lost (subscriber)**: dossiers whose ``dossier.received`` never reached the independent subscriber;
- **lost (projection)**: dossiers the metrics projection does not know;
- **double-counted**: receipts the projection counted more than once (its received total minus the
  dossiers it knows).

Figures are cumulative over the run; every one must be 0. Nothing here touches the shared PostgreSQL
or, unless ``--broker shared``, the shared RabbitMQ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import sqlalchemy as sa

from chaos import neighbours, outside
from chaos.probe import Probe
from chaos.proxy import FaultProxy
from shared.auth import DEV_SECRET, mint
from shared.broker import connect, declare_exchanges
from shared.db import NETWORK_MARGIN_SECONDS
from shared.events import EXCHANGE
from shared.migrate import upgrade
from tests.support.private_postgres import PrivatePostgres
from tests.support.private_rabbitmq import PrivateRabbitMQ

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIBER_QUEUE = "chaos.independent-subscriber"
METRICS_QUEUE = "metrics.dossier-events"
NEIGHBOUR_SCENARIOS = (
    "postal-dossier-down",
    "postal-dossier-slow",
    "postal-operator-down",
    "postal-operator-slow",
    "portal-down",
    "portal-slow",
    "notifier-gateways-down",
    "notifier-gateways-slow",
    "payment-platform-down",
    "payment-platform-slow",
    "esign-tsa-down",
    "esign-tsa-slow",
)
SCENARIOS = (
    "broker-outage",
    "kill-9",
    "db-restart-dossier",
    "db-restart-metrics",
    "db-outage-dossier",
    "db-outage-metrics",
    "poison",
    "leadership-loss",
    "latency",
    "reset",
    "half-open",
    "broker-alarm",
    *NEIGHBOUR_SCENARIOS,
    "blackhole-dossier",
    "blackhole-metrics",
    "broker-disk-alarm",
)


@dataclass
class Settings:
    broker_outage: float = 600.0
    db_outage: float = 120.0
    kills: int = 50
    rate: float = 5.0
    latency: float = 0.2
    neighbour_outage: float = 120.0
    neighbour_slow: float = 5.0
    pickup_rate: float = 1.0
    fault_seconds: float = 20.0
    blackhole: float = 60.0
    disk_alarm: float = 60.0
    # The services' DATABASE_TIMEOUT_SECONDS: a database silent 5 s longer than this answers 503.
    db_timeout: float = 5.0
    settle_timeout: float = 300.0
    seed: int = 12
    only: list[str] = field(default_factory=lambda: list(SCENARIOS))
    # "private": a RabbitMQ node of the run's own (needed for the alarm); "shared": a vhost on the local one.
    broker: str = "private"
    rabbit_host: str = "127.0.0.1"
    rabbit_port: int = 5672
    rabbit_api: str = "http://guest:guest@127.0.0.1:15672"


@dataclass
class Row:
    scenario: str
    parameters: str
    seconds: float = 0.0
    receipts: int = 0
    http: str = ""
    lost_subscriber: int = 0
    lost_projection: int = 0
    double_counted: int = 0
    dead_letters: int = 0
    note: str = ""
    # A neighbour's row (chaos/neighbours.py): what its own oracle found lost or counted twice.
    neighbour_lost: int = 0
    neighbour_double: int = 0
    # Seconds from the end of the fault until requests succeed and the backlog has caught up.
    recovery: float | None = None
    # The longest wait for an answer to the load, and for /health/live, during the run (seconds).
    slowest: float = 0.0
    live_slowest: float = 0.0

    @property
    def ok(self) -> bool:
        counts = (self.lost_subscriber, self.lost_projection, self.double_counted)
        return not any(counts) and self.neighbour_lost == 0 and self.neighbour_double == 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Vhost:
    """A throw-away vhost on the shared broker, created and deleted through the management API."""

    def __init__(self, settings: Settings) -> None:
        self.name = f"motcua-chaos-{uuid.uuid4().hex[:8]}"
        self.api = settings.rabbit_api.rstrip("/")
        requests.put(f"{self.api}/api/vhosts/{quote(self.name, safe='')}", timeout=10).raise_for_status()
        requests.put(
            f"{self.api}/api/permissions/{quote(self.name, safe='')}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            timeout=10,
        ).raise_for_status()

    def delete(self) -> None:
        requests.delete(f"{self.api}/api/vhosts/{quote(self.name, safe='')}", timeout=10)


class Stack:
    """The services, their private databases and fault proxies, and the independent subscriber."""

    SERVICES = {"dossier-a": "dossier", "dossier-b": "dossier", "metrics": "metrics"}

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.rabbit: PrivateRabbitMQ | None = None
        self.vhost: Vhost | None = None
        if settings.broker == "private":
            self.rabbit = PrivateRabbitMQ()
            host, port, vhost = "127.0.0.1", self.rabbit.port, ""
        else:
            self.vhost = Vhost(settings)
            host, port, vhost = settings.rabbit_host, settings.rabbit_port, self.vhost.name
        self.amqp_direct = f"amqp://guest:guest@{host}:{port}/{vhost}"
        self.broker_proxy = FaultProxy(host, port)
        self.amqp_proxied = f"amqp://guest:guest@127.0.0.1:{self.broker_proxy.port}/{vhost}"
        self.pg: dict[str, PrivatePostgres] = {}
        self.db_proxy: dict[str, FaultProxy] = {}
        self.db_direct: dict[str, str] = {}
        for service in ("dossier", "metrics"):
            server = PrivatePostgres()
            self.pg[service] = server
            self.db_direct[service] = server.create_database(service)
            upgrade(service, self.db_direct[service])
            self.db_proxy[service] = FaultProxy("127.0.0.1", server.port)
        self.engines = {s: sa.create_engine(url, pool_pre_ping=True) for s, url in self.db_direct.items()}
        connection = connect(self.amqp_direct)
        channel = connection.channel()
        declare_exchanges(channel)
        channel.queue_declare(SUBSCRIBER_QUEUE, durable=True, auto_delete=False)
        channel.queue_bind(SUBSCRIBER_QUEUE, EXCHANGE, "dossier.#")
        connection.close()
        self.ports = {name: free_port() for name in self.SERVICES}
        self.processes: dict[str, subprocess.Popen] = {}
        self.seen: set[str] = set()
        self.firsts: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.neighbours: neighbours.Neighbours | None = None  # started by the first neighbour row
        self.outside: dict[str, Any] = {}  # chaos/outside.py's families, started by their first row
        self.load_consent = False  # the load's applicants consent to every notification channel
        self.counted_postal: set[str] = set()

    # -- processes ------------------------------------------------------------------------------------

    def env(self, name: str) -> dict[str, str]:
        service = self.SERVICES[name]
        db = f"postgresql://postgres@127.0.0.1:{self.db_proxy[service].port}/{service}"
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AMQP_URI": self.amqp_proxied,
            "JWT_SECRET": DEV_SECRET,
            "MOTCUA_ENV": "development",
            f"{service.upper()}_DATABASE_URL": db,
            f"{service.upper()}_ADDRESS": f"127.0.0.1:{self.ports[name]}",
            "OUTBOX_POLL_SECONDS": "0.2",
            "EVENT_RETRY_DELAYS": "0.2,0.5,1,2",
            "EVENT_OUTAGE_BACKOFF_MAX_SECONDS": "2",
            "MAX_WORKERS": "10",
            "DATABASE_TIMEOUT_SECONDS": str(self.settings.db_timeout),
            "LOG_LEVEL": "WARNING",
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str, crash_at: str | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - the child owns it
        env = self.env(name)
        if crash_at:
            env["MOTCUA_CRASH_AT"] = crash_at
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "shared.runner", self.SERVICES[name]],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_live(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.processes[name].returncode}; see {name}.log")
            try:
                if requests.get(f"{self.url(name)}/health/live", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not come up in {timeout:.0f} s")

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def start_all(self) -> None:
        for name in ("metrics", "dossier-a", "dossier-b"):
            self.start(name)
        for name in self.processes:
            self.wait_live(name)

    # -- the load -------------------------------------------------------------------------------------

    def start_load(self) -> tuple[subprocess.Popen, Path]:
        stats = self.workdir / f"load-{uuid.uuid4().hex[:6]}.json"
        command = [
            sys.executable,
            "-m",
            "chaos.load",
            "--rate",
            str(self.settings.rate),
            "--stats",
            str(stats),
        ]
        for name in ("dossier-a", "dossier-b"):
            command += ["--url", self.url(name)]
        if self.load_consent:
            command.append("--consent")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MOTCUA_ENV": "development"}
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        return process, stats

    @staticmethod
    def stop_load(load: tuple[subprocess.Popen, Path]) -> dict:
        process, stats = load
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        return json.loads(stats.read_text(encoding="utf-8"))

    # -- the oracle and the figures -------------------------------------------------------------------

    def oracle(self) -> set[str]:
        with self.engines["dossier"].connect() as connection:
            return set(connection.execute(sa.text("SELECT code FROM dossiers")).scalars())

    def projection(self) -> tuple[set[str], int]:
        with self.engines["metrics"].connect() as connection:
            known = set(connection.execute(sa.text("SELECT code FROM metrics_dossier_facts")).scalars())
            counted = connection.execute(
                sa.text("SELECT coalesce(sum(received), 0) FROM metrics_totals")
            ).scalar()
        return known, int(counted)

    def outbox_pending(self, created_before: datetime | None = None) -> int:
        """Events not yet published; with ``created_before``, only those written before that moment (the
        backlog of a fault, apart from what the load keeps adding)."""
        query = "SELECT count(*) FROM dossier_outbox WHERE published_at IS NULL"
        with self.engines["dossier"].connect() as connection:
            if created_before is None:
                return connection.execute(sa.text(query)).scalar()
            return connection.execute(sa.text(query + " AND created_at < :t"), {"t": created_before}).scalar()

    def drain_subscriber(self) -> None:
        connection = connect(self.amqp_direct)
        channel = connection.channel()
        while (message := channel.basic_get(SUBSCRIBER_QUEUE, no_ack=True)) is not None:
            try:
                envelope = json.loads(message.body)
            except ValueError:
                continue  # the poison scenario's unparseable message
            # A dossier's first event: received at a desk, or registered (a pickup by post, whose
            # dossier the desk receives later; the neighbour rows make such dossiers).
            kind = envelope.get("type")
            if kind not in ("vn.motcua.dossier.received", "vn.motcua.dossier.registered"):
                continue
            if (kind, envelope["subject"]) in self.firsts:
                self.duplicates += 1
            self.firsts.add((kind, envelope["subject"]))
            self.seen.add(envelope["subject"])
        connection.close()

    def dead_letters(self) -> int:
        connection = connect(self.amqp_direct)
        try:
            return connection.channel().queue_declare(f"{METRICS_QUEUE}.dead-letter", passive=True)[1]
        except Exception:  # noqa: BLE001 - not declared yet: none
            return 0
        finally:
            connection.collect()

    def settle(self, row: Row) -> None:
        """Wait until everything the oracle holds has reached the subscriber and the projection."""
        deadline = time.monotonic() + self.settings.settle_timeout
        while True:
            self.drain_subscriber()
            oracle = self.oracle()
            known, counted = self.projection()
            done = self.outbox_pending() == 0 and oracle <= self.seen and oracle <= known
            if done or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        row.receipts = len(oracle)
        row.lost_subscriber = len(oracle - self.seen)
        row.lost_projection = len(oracle - known)
        row.double_counted = max(0, counted - len(known)) + len(known - oracle - {"POISON-1"})
        row.dead_letters = self.dead_letters()

    def close(self) -> None:
        if self.neighbours is not None:
            self.neighbours.close()
        for family in self.outside.values():
            family.close()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for engine in self.engines.values():
            engine.dispose()
        for proxy in (self.broker_proxy, *self.db_proxy.values()):
            proxy.close()
        for server in self.pg.values():
            server.destroy()
        if self.vhost is not None:
            self.vhost.delete()
        if self.rabbit is not None:
            self.rabbit.destroy()


# -- scenarios ----------------------------------------------------------------------------------------


def under_load(stack: Stack, row: Row, fault) -> None:
    """Run ``fault`` with the load going; record the HTTP answers; settle and measure."""
    started = time.monotonic()
    load = stack.start_load()
    time.sleep(2.0)
    try:
        fault()
    finally:
        time.sleep(3.0)
        stats = stack.stop_load(load)
    row.seconds = round(time.monotonic() - started, 1)
    answers = stats["answers"]
    row.http = " ".join(f"{k}:{v}" for k, v in sorted(answers.items()))
    row.slowest = max([row.slowest, *stats.get("slowest", {}).values()])
    if answers.get("500"):
        row.note += f" {answers['500']} HTTP 500 (must be 503);"
    stack.settle(row)


def broker_outage(stack: Stack, s: Settings) -> Row:
    row = Row("broker-outage", f"{s.broker_outage:.0f} s, all services, {s.rate:g} receipts/s")

    def fault():
        stack.broker_proxy.cut()
        time.sleep(s.broker_outage)
        stack.broker_proxy.restore()

    under_load(stack, row, fault)
    return row


# Crash points (shared/failpoints.py) and the process that reaches them; a dossier replica reaches the
# relay's only while it leads, so the other replica is down meanwhile.
CRASHES = {
    "uow.after_commit": "dossier-a",
    "relay.after_confirm": "dossier-a",
    "consumer.after_commit": "metrics",
}


def kill_9(stack: Stack, s: Settings) -> Row:
    """Half the kills are ``kill -9`` at a random moment of traffic; the other half are the process
    killing itself with SIGKILL at a crash point: between commit and publish, between the broker's
    confirm and marking the rows sent, between the projection's commit and the ack."""
    rng = random.Random(s.seed)
    counts: dict[str, int] = {}
    row = Row(
        "kill-9", f"{s.kills} kills of dossier-a/b (relays) and metrics: random moments and crash points"
    )

    def killed(what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    def crash_at(point: str) -> None:
        name = CRASHES[point]
        others = [n for n in ("dossier-a", "dossier-b") if n != name] if name.startswith("dossier") else []
        for other in others:
            stack.kill(other)
            killed(f"{other} (random)")
        stack.kill(name)
        killed(f"{name} (random)")
        stack.start(name, crash_at=point)
        deadline = time.monotonic() + 60
        while stack.processes[name].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if stack.processes[name].poll() is None:
            stack.kill(name)
            killed(f"{point} not reached in 60 s")
        elif stack.processes[name].returncode == -signal.SIGKILL:
            killed(point)
        for restart in (name, *others):
            stack.start(restart)
        for restart in (name, *others):
            stack.wait_live(restart)

    def fault():
        points = list(CRASHES)
        rounds = 0
        while sum(counts.values()) < s.kills:
            rounds += 1
            if rounds % 2 == 0:
                crash_at(points[(rounds // 2 - 1) % len(points)])
                continue
            name = rng.choice(list(stack.SERVICES))
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment of traffic after it is up
            stack.kill(name)
            killed(f"{name} (random)")
            stack.start(name)
            stack.wait_live(name)

    under_load(stack, row, fault)
    row.note += " " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) + ";"
    return row


def db_restart(service: str):
    def scenario(stack: Stack, s: Settings) -> Row:
        row = Row(f"db-restart-{service}", f"pg_ctl stop -m fast; start, {service}'s PostgreSQL")

        def fault():
            stack.pg[service].stop()
            stack.pg[service].start()
            time.sleep(3.0)

        under_load(stack, row, fault)
        return row

    return scenario


def db_outage(service: str):
    def scenario(stack: Stack, s: Settings) -> Row:
        row = Row(f"db-outage-{service}", f"{s.db_outage:.0f} s, {service}'s PostgreSQL stopped")

        def fault():
            stack.pg[service].stop()
            time.sleep(s.db_outage)
            stack.pg[service].start()

        under_load(stack, row, fault)
        return row

    return scenario


def poison(stack: Stack, s: Settings) -> Row:
    row = Row("poison", "1 unparseable + 1 event the projection rejects, among valid ones")
    before = stack.dead_letters()

    def fault():
        from shared.events import Event

        bad = Event(
            source="dossier",
            name="received",
            subject="POISON-1",
            data={"status": "?"},
            unit_path="79.26740",
            sequence=1,
        )
        connection = connect(stack.amqp_direct)
        channel = connection.channel()
        channel.confirm_select()
        import amqp

        for body in (b"{not an event", bad.to_json().encode()):
            channel.basic_publish_confirm(
                amqp.Message(body, delivery_mode=2),
                exchange=EXCHANGE,
                routing_key="dossier.received.79.26740",
            )
        connection.close()
        time.sleep(10.0)

    under_load(stack, row, fault)
    added = row.dead_letters - before
    alert = _dead_lettered_total(stack)
    row.note += f" dead-lettered {added} (expected 2); motcua_dead_lettered_total={alert:g} (alert fires);"
    if added != 2:
        row.note += " UNEXPECTED;"
    return row


def _dead_lettered_total(stack: Stack) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{stack.url('metrics')}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "motcua_dead_lettered_total"
    )


def leadership_loss(stack: Stack, s: Settings) -> Row:
    row = Row("leadership-loss", "the relay leader's lock connection terminated, twice")
    leaders: list[str] = []

    def leader() -> int | None:
        from shared.leadership import HELD_HERE
        from shared.outbox import leader_lock_key

        with stack.engines["dossier"].connect() as connection:
            return connection.execute(
                sa.text(f"SELECT l.pid FROM pg_locks l WHERE {HELD_HERE}"),
                {"key": leader_lock_key("dossier")},
            ).scalar()

    def fault():
        for _ in range(2):
            pid = leader()
            leaders.append(str(pid))
            with stack.engines["dossier"].connect() as connection:
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                connection.commit()
            time.sleep(5.0)
        leaders.append(str(leader()))

    under_load(stack, row, fault)
    row.note += f" leader backends {' -> '.join(leaders)};"
    return row


def latency(stack: Stack, s: Settings) -> Row:
    row = Row(
        "latency", f"+{s.latency * 1000:.0f} ms per chunk, broker and both databases, {s.fault_seconds:.0f} s"
    )
    proxies = [stack.broker_proxy, *stack.db_proxy.values()]

    def fault():
        for proxy in proxies:
            proxy.latency = s.latency
        time.sleep(s.fault_seconds)
        for proxy in proxies:
            proxy.latency = 0.0

    under_load(stack, row, fault)
    return row


def reset(stack: Stack, s: Settings) -> Row:
    row = Row("reset", "every broker and database connection reset, 5 times")
    proxies = [stack.broker_proxy, *stack.db_proxy.values()]

    def fault():
        for _ in range(5):
            for proxy in proxies:
                proxy.reset()
            time.sleep(s.fault_seconds / 5)

    under_load(stack, row, fault)
    return row


def half_open(stack: Stack, s: Settings) -> Row:
    row = Row("half-open", f"broker and metrics database swallow traffic {s.fault_seconds:.0f} s, then reset")
    proxies = [stack.broker_proxy, stack.db_proxy["metrics"]]

    def fault():
        for proxy in proxies:
            proxy.half_open()
        time.sleep(s.fault_seconds)
        for proxy in proxies:
            proxy.reset()

    under_load(stack, row, fault)
    return row


def broker_alarm(stack: Stack, s: Settings) -> Row:
    row = Row("broker-alarm", f"memory alarm on the (private) broker node, {s.fault_seconds:.0f} s")
    if stack.rabbit is None:
        row.note = "skipped: needs --broker private;"
        return row
    peak = [0]

    def fault():
        stack.rabbit.memory_alarm(True)
        try:
            deadline = time.monotonic() + s.fault_seconds
            while time.monotonic() < deadline:
                peak[0] = max(peak[0], stack.outbox_pending())
                time.sleep(1.0)
        finally:
            stack.rabbit.memory_alarm(False)

    under_load(stack, row, fault)
    row.note += f" publishers blocked: the outbox grew to {peak[0]} waiting events;"
    return row


def blackhole(service: str):
    """The service's database drops every packet (no reset) for ``--blackhole`` seconds, then the packets
    flow again. Requests must answer 503 with ``Retry-After`` within the bound (DATABASE_TIMEOUT_SECONDS
    + 5 s), /health/live must keep answering at once (the eventlet hub is not blocked), and the
    service must recover by itself."""

    def scenario(stack: Stack, s: Settings) -> Row:
        row = Row(
            f"blackhole-{service}",
            f"{s.blackhole:.0f} s, {service}'s PostgreSQL drops every packet, no reset; "
            f"DATABASE_TIMEOUT_SECONDS={s.db_timeout:g}",
        )
        names = [name for name, kind in stack.SERVICES.items() if kind == service]
        token = mint(DEV_SECRET, sub="chaos-probe", roles=["auditor"], units=["79"])
        user_path = "/api/v1/dossiers?page_size=1" if service == "dossier" else "/api/v1/reports/sla?unit=79"
        probes: dict[str, Probe] = {}

        def fault():
            for name in names:
                probes[f"live {name}"] = Probe(f"{stack.url(name)}/health/live")
            probes["user"] = Probe(f"{stack.url(names[0])}{user_path}", {"Authorization": f"Bearer {token}"})
            stack.db_proxy[service].blackhole()
            time.sleep(s.blackhole)
            before, flowed_at = stack.oracle(), datetime.now(UTC)
            stack.db_proxy[service].flow()
            flowed = time.monotonic()
            deadline = flowed + s.settle_timeout
            while time.monotonic() < deadline:
                caught_up = stack.outbox_pending(flowed_at) == 0 and before <= stack.projection()[0]
                if caught_up and probes["user"].last_ok > flowed:
                    break
                time.sleep(0.5)
            row.recovery = round(time.monotonic() - flowed, 1)

        try:
            under_load(stack, row, fault)
        finally:
            seen = {name: probe.stop() for name, probe in probes.items()}
        row.live_slowest = round(max(p.slowest for n, p in probes.items() if n.startswith("live")), 2)
        row.slowest = round(max(row.slowest, probes["user"].slowest), 2)
        row.http += f" | readers of {service}: {seen['user']}"
        row.note += (
            f" slowest answer {row.slowest:g} s (bound {s.db_timeout + NETWORK_MARGIN_SECONDS:g} s);"
            f" /health/live slowest {row.live_slowest:g} s;"
        )
        # A service must outlive the fault: a managed thread ending with an error stops the whole process.
        gone = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
        if gone:
            row.note += f" UNEXPECTED: exited {gone} (see their logs);"
        return row

    return scenario


def neighbour_row(name: str):
    """A neighbour down for ``--neighbour-outage`` s, or answering ``--neighbour-slow`` s late."""
    slow = name.endswith("-slow")

    def scenario(stack: Stack, s: Settings) -> Row:
        what = f"{s.neighbour_slow:g} s answers" if slow else "down (connections reset)"
        if name.startswith("notifier"):
            row = Row(
                name,
                f"SMS, Zalo and e-mail gateways {what} {s.neighbour_outage:.0f} s, {s.rate:g} receipts/s",
            )
            return outside.notifier_row(stack, s, row, slow, under_load)
        if name.startswith("esign"):
            row = Row(
                name,
                f"TSA {what} for esign {s.neighbour_outage:.0f} s, {s.pickup_rate / 4:g} signed results/s"
                f" and {s.rate:g} receipts/s",
            )
            return outside.esign_row(stack, s, row, slow, under_load)
        if name.startswith("payment"):
            row = Row(
                name,
                f"payment platform {what} for payment {s.neighbour_outage:.0f} s,"
                f" {s.pickup_rate / 2:g} payments/s and {s.rate:g} receipts/s",
            )
            return outside.payment_row(stack, s, row, slow, under_load)
        if name.startswith("portal"):
            row = Row(name, f"national portal {what} {s.neighbour_outage:.0f} s, {s.rate:g} receipts/s")
            return neighbours.portal_row(stack, s, row, slow, under_load)
        neighbour = "dossier" if name.startswith("postal-dossier") else "postal_operator"
        row = Row(
            name,
            f"{neighbour} {what} for postal {s.neighbour_outage:.0f} s, {s.pickup_rate:g} pickups/s"
            f" and {s.rate:g} receipts/s",
        )
        return neighbours.postal_row(stack, s, row, neighbour, slow, under_load)

    return scenario


def broker_disk_alarm(stack: Stack, s: Settings) -> Row:
    row = Row("broker-disk-alarm", f"disk alarm on the (private) broker node, {s.disk_alarm:.0f} s")
    if stack.rabbit is None:
        row.note = "skipped: needs --broker private;"
        return row
    peak = [0]

    def fault():
        stack.rabbit.disk_alarm(True)
        try:
            deadline = time.monotonic() + s.disk_alarm
            while time.monotonic() < deadline:
                peak[0] = max(peak[0], stack.outbox_pending())
                time.sleep(1.0)
        finally:
            stack.rabbit.disk_alarm(False)
        cleared, cleared_at = time.monotonic(), datetime.now(UTC)
        while stack.outbox_pending(cleared_at) > 0 and time.monotonic() < cleared + s.settle_timeout:
            time.sleep(0.5)
        row.recovery = round(time.monotonic() - cleared, 1)

    under_load(stack, row, fault)
    row.note += f" publishers blocked: the outbox grew to {peak[0]} waiting events;"
    if peak[0] == 0:
        row.note += " UNEXPECTED: the alarm blocked nothing;"
    return row


RUNNERS = {
    "broker-outage": broker_outage,
    "kill-9": kill_9,
    "db-restart-dossier": db_restart("dossier"),
    "db-restart-metrics": db_restart("metrics"),
    "db-outage-dossier": db_outage("dossier"),
    "db-outage-metrics": db_outage("metrics"),
    "poison": poison,
    "leadership-loss": leadership_loss,
    "latency": latency,
    "reset": reset,
    "half-open": half_open,
    "broker-alarm": broker_alarm,
    **{name: neighbour_row(name) for name in NEIGHBOUR_SCENARIOS},
    "blackhole-dossier": blackhole("dossier"),
    "blackhole-metrics": blackhole("metrics"),
    "broker-disk-alarm": broker_disk_alarm,
}


def table(rows: list[Row]) -> str:
    header = (
        "scenario",
        "parameters",
        "s",
        "receipts",
        "lost (subscriber)",
        "lost (projection)",
        "double-counted",
        "dead letters",
        "recovery s",
        "HTTP answers during the run",
        "notes",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (
            r.scenario,
            r.parameters,
            f"{r.seconds:g}",
            r.receipts,
            r.lost_subscriber,
            r.lost_projection,
            r.double_counted,
            r.dead_letters,
            "" if r.recovery is None else f"{r.recovery:g}",
            r.http,
            r.note.strip(),
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def run(settings: Settings, out=sys.stdout) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="motcua-chaos-"))
    out.write(f"chaos: logs in {workdir}\n")
    stack = Stack(settings, workdir)
    rows: list[Row] = []
    try:
        stack.start_all()
        for name in settings.only:
            out.write(f"chaos: {name} ...\n")
            out.flush()
            row = RUNNERS[name](stack, settings)
            rows.append(row)
            out.write(table([row]).splitlines()[-1] + "\n")
            out.flush()
    finally:
        stack.close()
    out.write("\n" + table(rows) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker-outage", type=float, default=defaults.broker_outage, help="seconds")
    parser.add_argument("--db-outage", type=float, default=defaults.db_outage, help="seconds")
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="receipts a second")
    parser.add_argument("--latency", type=float, default=defaults.latency, help="seconds per chunk")
    parser.add_argument("--fault-seconds", type=float, default=defaults.fault_seconds)
    parser.add_argument("--neighbour-outage", type=float, default=defaults.neighbour_outage, help="seconds")
    parser.add_argument("--neighbour-slow", type=float, default=defaults.neighbour_slow, help="answer delay")
    parser.add_argument("--pickup-rate", type=float, default=defaults.pickup_rate, help="pickups a second")
    parser.add_argument("--blackhole", type=float, default=defaults.blackhole, help="seconds")
    parser.add_argument("--disk-alarm", type=float, default=defaults.disk_alarm, help="seconds")
    parser.add_argument(
        "--db-timeout", type=float, default=defaults.db_timeout, help="the services' DATABASE_TIMEOUT_SECONDS"
    )
    parser.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--broker", choices=("private", "shared"), default=defaults.broker)
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    args = parser.parse_args(argv)
    settings = Settings(
        broker_outage=args.broker_outage,
        db_outage=args.db_outage,
        kills=args.kills,
        rate=args.rate,
        latency=args.latency,
        fault_seconds=args.fault_seconds,
        neighbour_outage=args.neighbour_outage,
        neighbour_slow=args.neighbour_slow,
        pickup_rate=args.pickup_rate,
        blackhole=args.blackhole,
        disk_alarm=args.disk_alarm,
        db_timeout=args.db_timeout,
        settle_timeout=args.settle_timeout,
        seed=args.seed,
        broker=args.broker,
        only=args.only or list(SCENARIOS),
    )
    rows = run(settings)
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
