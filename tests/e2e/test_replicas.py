"""Two processes of a service on one database, as `make run REPLICAS=2` and Kubernetes run them.

Real processes (``python -m shared.runner``), the real broker, PostgreSQL (replicas share a database
and elect their leaders in it; SQLite has one process per database). Two dossier processes and two
metrics processes, each on its own port so that the test chooses which one takes a request. Under
concurrent writes to one receiving unit, from the rules:

(a) dossier codes are ``{identifier}-{YYMMDD}-{NNNN}``, a daily per-unit sequence (docs/domain.md §6): on a
    fresh database they are 1, 2, … n for the day, unique, with no gap;
(b) one outbox relay leads (PostgreSQL's pg_locks); killed with SIGKILL, the other process takes over,
    and every event recorded, before and after, reaches a subscriber exactly once per (subject, sequence);
(c) a subscriber on egov.events sees each dossier's events in strictly increasing sequence;
(d) with both processes running the overdue watch, each overdue dossier gets one dossier.overdue;
(e) the SLA figures equal what the events say, once: the report and the metrics of the one SLA exporter
    (``motcua_metrics_sla_exporter`` 1 on exactly one replica, the SLA families on it alone, so a sum
    over replicas is the truth), also after the exporter is killed and the other replica takes over.

And the shared port of `make run REPLICAS=n`: two processes bound to one port (SO_REUSEPORT, which
eventlet.listen sets), the kernel spreading new connections over both.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from services.dossier.models import dossiers
from services.metrics.exposition import GAUGES, RESOLUTION, SIMPLE
from shared import ops
from shared.auth import DEV_SECRET
from shared.leadership import HELD_HERE
from shared.outbox import leader_lock_key
from shared.units import UnitRegistry
from tests.conftest import _postgres_database, bearer, free_port
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
UNIT = "26740"  # a commune of Hồ Chí Minh City (province 79)
DESK = bearer("desk_officer", UNIT)
HANDLING = bearer("handling_officer", UNIT)
LEADER = bearer("leader", UNIT, sub="leader.an@26740")
CLERK = bearer("clerk", UNIT, sub="clerk.binh@26740")
PROVINCE_LEADER = bearer("leader", "79")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
SLA_FAMILIES = {f.exposed_name for f in (*SIMPLE, *GAUGES)} | {RESOLUTION.name}
RECEIPTS, AFTER_FAILOVER, DECIDED, OVERDUE = 30, 8, 4, 4


@pytest.fixture
def databases():
    """One PostgreSQL database per service (dossier, metrics)."""
    made = [_postgres_database() for _ in range(2)]
    yield [next(maker) for maker in made]
    for maker in made:
        next(maker, None)


class Replica:
    """One service process; its output goes to a file (a pipe nobody reads would fill and stall it).
    ``PGAPPNAME`` names its PostgreSQL sessions, so pg_stat_activity tells which process holds a lock."""

    def __init__(self, service: str, name: str, env: dict[str, str], logs: Path, port: int | None = None):
        self.service, self.name = service, name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"{name}.log"
        environment = {**env, f"{service.upper()}_ADDRESS": f"127.0.0.1:{self.port}", "PGAPPNAME": name}
        with open(self.log, "w", encoding="utf-8") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shared.runner", service],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_live(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output()}"
            try:
                if requests.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not come up in {seconds} s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release; PostgreSQL ends its sessions when the sockets close."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def migrate(service: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "shared.migrate", service], cwd=ROOT, env=env, check=True, capture_output=True
    )


def query(url: str, statement: str, **params) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(statement), params).all()
    finally:
        engine.dispose()


def relay_leaders(url: str) -> list[str]:
    """The sessions holding the dossier relay's advisory lock, by the process they belong to."""
    rows = query(
        url,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        f"WHERE {HELD_HERE}",
        key=leader_lock_key("dossier"),
    )
    return sorted(row.application_name for row in rows)


def receive(replica: Replica) -> dict:
    response = requests.post(
        f"{replica.url}/api/v1/dossiers",
        json={"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT},
        headers=DESK,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def act(replica: Replica, code: str, action: str, headers: dict, body: dict | None = None) -> None:
    response = requests.post(
        f"{replica.url}/api/v1/dossiers/{code}/actions/{action}", json=body or {}, headers=headers, timeout=30
    )
    assert response.status_code == 200, f"{action} {code} on {replica.name}: {response.text}"


def collect(subscriber: Subscriber, until, timeout: float = 30.0) -> list[dict]:
    """Take deliveries until ``until(envelopes)`` holds or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(subscriber.envelopes):
        subscriber.drain(timeout=0.3, quiet=0)
    return subscriber.envelopes


def outbox(url: str) -> list[tuple[str, int, bool]]:
    """(subject, sequence, published) of every event the dossier service recorded."""
    rows = query(url, "SELECT subject, body, published_at IS NOT NULL AS published FROM dossier_outbox")
    return [(row.subject, int(json.loads(row.body)["sequence"]), row.published) for row in rows]


def scrape(replica: Replica) -> dict[str, float]:
    """Every sample of a replica's /metrics page, summed over labels, by sample name."""
    response = requests.get(f"{replica.url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            totals[sample.name] += sample.value
            totals[f"family:{family.name}"] += 1
    return totals


def sla_families(page: dict[str, float]) -> set[str]:
    names = {key.removeprefix("family:") for key in page if key.startswith("family:")}
    # prometheus_client's parser names a counter family without _total
    return {name for name in SLA_FAMILIES if name in names or name.removesuffix("_total") in names}


def test_two_dossier_and_two_metrics_processes_share_their_databases_correctly(
    databases, rabbit_config, tmp_path
):
    dossier_url, metrics_url = databases
    amqp_uri = rabbit_config["AMQP_URI"]
    env = {
        **os.environ,
        "AMQP_URI": amqp_uri,
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_POLL_SECONDS": "0.2",
        "OVERDUE_WATCH_SECONDS": "0.3",
        "DOSSIER_DATABASE_URL": dossier_url,
        "METRICS_DATABASE_URL": metrics_url,
    }
    migrate("dossier", env)
    migrate("metrics", env)
    subscriber = Subscriber(amqp_uri, "dossier.#")
    replicas = [
        Replica("dossier", "dossier-a", env, tmp_path),
        Replica("dossier", "dossier-b", env, tmp_path),
        Replica("metrics", "metrics-a", env, tmp_path),
        Replica("metrics", "metrics-b", env, tmp_path),
    ]
    first, second, metrics_a, metrics_b = replicas
    try:
        for replica in replicas:
            replica.wait_live()

        # (a) Receipts for one unit, alternately to each process, eight at a time.
        with ThreadPoolExecutor(8) as pool:
            filed = list(pool.map(lambda n: receive((first, second)[n % 2]), range(RECEIPTS)))
        identifier = UnitRegistry.from_settings(None).get(UNIT).identifier
        by_day: dict[str, list[int]] = defaultdict(list)
        for dossier in filed:
            received_on = datetime.fromisoformat(dossier["received_at"]).astimezone(VIETNAM)
            prefix, number = dossier["code"].rsplit("-", 1)
            assert prefix == f"{identifier}-{received_on:%y%m%d}", dossier["code"]
            by_day[prefix].append(int(number))
        for prefix, numbers in by_day.items():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"{prefix}: {sorted(numbers)}"
        codes = [dossier["code"] for dossier in filed]
        assert len(set(codes)) == RECEIPTS

        # (c) Each dossier's next steps alternate between the processes, concurrently over dossiers.
        def steps(n: int) -> None:
            code, one, other = codes[n], (first, second)[n % 2], (second, first)[n % 2]
            act(other, code, "start_processing", DESK)
            if n < DECIDED:  # to the result, each step on the other process than the last
                act(one, code, "appraise", HANDLING, {"opinion": "Hồ sơ hợp lệ"})
                act(other, code, "decide", LEADER, {"decision": "approved"})
                act(one, code, "sign", LEADER)
                act(other, code, "stamp", CLERK)
                act(one, code, "resolve", HANDLING)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(steps, range(RECEIPTS)))

        # (d) Dossiers in process whose appointment passed yesterday; both processes watch.
        late = codes[DECIDED : DECIDED + OVERDUE]
        now = datetime.now(UTC)
        engine = sa.create_engine(dossier_url)
        with engine.begin() as connection:
            connection.execute(
                dossiers.update()
                .where(dossiers.c.code.in_(late))
                .values(due_at=now - timedelta(days=1), original_due_at=now - timedelta(days=1), watch_at=now)
            )
        engine.dispose()

        def overdue(envelopes: list[dict]) -> Counter:
            return Counter(e["subject"] for e in envelopes if e["type"] == "vn.motcua.dossier.overdue")

        collect(subscriber, lambda envelopes: len(overdue(envelopes)) >= OVERDUE)
        # Give a second emission every chance: ten more watch rounds of each process.
        watched_until = time.monotonic() + 3.0
        while time.monotonic() < watched_until:
            subscriber.drain(timeout=0.3, quiet=0)
        assert overdue(subscriber.envelopes) == Counter(late), "one dossier.overdue per overdue dossier"
        assert all(r.process.poll() is None for r in replicas)

        # (b) One relay leads. Once everything so far is published, the leader is killed.
        assert wait_for(lambda: all(published for *_, published in outbox(dossier_url)), timeout=30)
        leaders = relay_leaders(dossier_url)
        assert len(leaders) == 1 and leaders[0] in ("dossier-a", "dossier-b"), leaders
        leader, survivor = (first, second) if leaders[0] == "dossier-a" else (second, first)
        leader.kill()
        killed = time.monotonic()
        assert wait_for(lambda: relay_leaders(dossier_url) == [survivor.name], timeout=30), (
            f"the survivor did not take over: {relay_leaders(dossier_url)}\n{survivor.output()}"
        )
        print(f"relay failover after SIGKILL: {time.monotonic() - killed:.2f} s")
        # What the operator's command says too (docs/runbook.md).
        assert f"({survivor.name})" in ops.leaders("dossier", dossier_url, io.StringIO())["outbox relay"]
        for _ in range(AFTER_FAILOVER):
            codes.append(receive(survivor)["code"])
        assert relay_leaders(dossier_url) == [survivor.name]

        recorded = outbox(dossier_url)
        expected = Counter((subject, sequence) for subject, sequence, _ in recorded)
        assert set(expected.values()) == {1}
        envelopes = collect(
            subscriber,
            lambda got: Counter((e["subject"], int(e["sequence"])) for e in got) >= expected,
            timeout=30,
        )
        subscriber.drain(timeout=1.0, quiet=0)  # a duplicate would arrive now
        envelopes = subscriber.envelopes
        delivered = Counter((e["subject"], int(e["sequence"])) for e in envelopes)
        assert delivered == expected, "every recorded event published once: none lost, none duplicated"
        assert {code for code in codes[-AFTER_FAILOVER:]} <= {subject for subject, _ in delivered}

        # (c) In the order each dossier's events happened.
        seen: dict[str, list[int]] = defaultdict(list)
        for envelope in envelopes:
            seen[envelope["subject"]].append(int(envelope["sequence"]))
        for subject, sequences in seen.items():
            assert sequences == sorted(set(sequences)), f"{subject} arrived as {sequences}"
        assert all(len(seen[code]) >= 2 for code in codes[:RECEIPTS]), "each dossier had several events"

        # (e) The SLA figures, from what was sent: every dossier received, DECIDED of them decided.
        total = RECEIPTS + AFTER_FAILOVER

        def report() -> dict:
            response = requests.get(
                f"{metrics_a.url}/api/v1/reports/sla",
                params={"unit": "79"},
                headers=PROVINCE_LEADER,
                timeout=30,
            )
            assert response.status_code == 200, response.text
            return response.json()["total"]

        def decided(figures: dict) -> int:
            return figures["decided_early"] + figures["decided_on_time"] + figures["decided_late"]

        def caught_up() -> dict | None:
            figures = report()
            return figures if figures["received"] == total and decided(figures) == DECIDED else None

        figures = wait_for(caught_up, timeout=60)
        assert figures, report()
        in_process = figures["in_process_within_deadline"] + figures["in_process_overdue"]
        assert in_process == total - DECIDED

        def exporters() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
            pages = [scrape(replica) for replica in (metrics_a, metrics_b) if replica.process.poll() is None]
            return [p for p in pages if p["motcua_metrics_sla_exporter"] == 1], pages

        def true_totals(pages: list[dict[str, float]]) -> bool:
            return (
                sum(p.get("motcua_dossiers_received_total", 0) for p in pages) == total
                and sum(p.get("motcua_dossiers_resolved_total", 0) for p in pages) == DECIDED
                and sum(p.get("motcua_dossiers_in_process", 0) for p in pages) == total - DECIDED
            )

        assert wait_for(lambda: true_totals(exporters()[1]), timeout=30), exporters()[1]
        exporting, pages = exporters()
        assert len(exporting) == 1 and len(pages) == 2, "exactly one replica exports the SLA families"
        (exporter,) = exporting
        assert sla_families(exporter) == SLA_FAMILIES
        (other,) = [page for page in pages if page is not exporter]
        assert other["motcua_metrics_sla_exporter"] == 0 and not sla_families(other)
        assert "motcua_http_requests_total" in other, "the other replica still serves its own metrics"

        # The exporter is killed: the other replica exports the same totals, once.
        exporting_replica = metrics_a if scrape(metrics_a)["motcua_metrics_sla_exporter"] == 1 else metrics_b
        exporting_replica.kill()
        killed = time.monotonic()
        assert wait_for(lambda: len(exporters()[0]) == 1 and true_totals(exporters()[1]), timeout=30), (
            exporters()[1]
        )
        print(f"SLA exporter failover after SIGKILL (scraped every 0.1 s): {time.monotonic() - killed:.2f} s")
        standby = metrics_b if exporting_replica is metrics_a else metrics_a
        assert f"({standby.name})" in ops.leaders("metrics", metrics_url, io.StringIO())["SLA exporter"]
    finally:
        subscriber.close()
        for replica in replicas:
            replica.stop()


def test_two_processes_on_one_port_share_its_connections(databases, rabbit_config, tmp_path):
    """SO_REUSEPORT: both bind the port, and the kernel hands new connections to both."""
    dossier_url, _ = databases
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "DOSSIER_DATABASE_URL": dossier_url,
    }
    migrate("dossier", env)
    port = free_port()
    first = Replica("dossier", "dossier-a", env, tmp_path, port)
    try:
        first.wait_live()
        # Started after the first answers: the processes' start times tell them apart.
        second = Replica("dossier", "dossier-b", env, tmp_path, port)
        try:
            second.wait_live()  # the port answers already: wait until the second process answers too

            def answering(connections: int) -> Counter:
                """Which process (by its start time) took each of so many new connections."""
                answered: Counter = Counter()
                for _ in range(connections):
                    page = requests.get(f"{first.url}/metrics", headers={"Connection": "close"}, timeout=30)
                    lines = page.text.splitlines()
                    answered[next(line for line in lines if line.startswith("process_start_time"))] += 1
                assert second.process.poll() is None, second.output()
                return answered

            assert wait_for(lambda: len(answering(10)) == 2, timeout=60), second.output()
            answered = answering(200)
            assert len(answered) == 2, f"one process took every connection: {answered}"
            assert min(answered.values()) >= 50, f"connections spread unevenly: {sorted(answered.values())}"
            print(f"SO_REUSEPORT spread of 200 connections: {sorted(answered.values())}")
        finally:
            second.stop()
    finally:
        first.stop()
