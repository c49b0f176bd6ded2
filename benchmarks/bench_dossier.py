"""End-to-end dossier transitions: HTTP request → committed → event confirmed on the broker → received.

The dossier service runs as its own process (as ``make run`` starts it) on SQLite or PostgreSQL. ``wrk``
(a C load generator, so the client does not eat the CPU it measures) sends transitions for a fixed time
while a subscriber on ``egov.events`` takes their events. Two transitions are measured: the receipt at the
counter (a new dossier, status 2) and ``start_processing`` on those dossiers (status 4). Throughput counts
transitions whose event reached the subscriber; latency is wrk's request latency (to the commit) and the
event lag (the event's time, set in the transaction, to its arrival at the subscriber).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import requests

from benchmarks.common import ROOT, MachineCpu, RunningService, wrk
from shared.auth import DEV_SECRET, mint
from shared.broker import connect, declare_exchanges
from shared.events import EXCHANGE
from shared.units import UnitRegistry

APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234"}
UNIT = "26740"
PROVINCE = "79"  # UNIT's province


BEFORE = "48840d6"  # main before issue 13's cheaper transition: the CPU-per-transition baseline


@contextmanager
def source_tree(revision: str | None) -> Iterator[Path]:
    """The working tree, or ``revision`` checked out in a throw-away ``git worktree`` (for a baseline)."""
    if revision is None:
        yield ROOT
        return
    scratch = Path(tempfile.mkdtemp(prefix="motcua-before-"))
    tree = scratch / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT, check=True, capture_output=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


class RunningDossier(RunningService):
    """The dossier service as its own processes (benchmarks/common.py), with the development secret."""

    def __init__(self, amqp_uri: str, database_url: str, *, root: Path = ROOT, processes: int = 1) -> None:
        super().__init__(
            "dossier", amqp_uri, database_url, root=root, processes=processes, env={"JWT_SECRET": DEV_SECRET}
        )


def _lua(
    token: str,
    body: str | None,
    paths: list[str] | None,
    method: str = "POST",
    delay_ms: float | None = None,
    bodies: list[str] | None = None,
) -> str:
    """A wrk script: JSON POSTs, to one path or cycling through ``paths``; every response counted by
    status; with ``delay_ms``, each connection waits that long after each response (a paced load); with
    ``bodies``, one path and the bodies in turn."""
    lines = [
        f'wrk.method = "{method}"',
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        "threads = {}",
        "setup = function(thread) thread:set('id', #threads); table.insert(threads, thread) end",
        "statuses = {}",
        "response = function(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end",
    ]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    if delay_ms is not None:
        lines.append(f"delay = function() return {delay_ms:.3f} end")
    if bodies:
        lines.append("bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}")
        lines.append("sent = 0")
        lines.append(
            "request = function() sent = sent + 1; "
            "return wrk.format(nil, nil, nil, bodies[((sent + id) % #bodies) + 1]) end"
        )
    if paths:
        lines.append("paths = {" + ",".join(json.dumps(p) for p in paths) + "}")
        # Each wrk thread takes its own interleaved share of the paths, so none is sent twice.
        lines.append("counter = 0")
        lines.append(
            "request = function() local n = counter * 2 + id; counter = counter + 1; "
            "return wrk.format(nil, paths[(n % #paths) + 1]) end"
        )
        # A thread whose share is sent stops: requests in flight then may still meet a moved dossier.
        lines.append(
            "local counted = response; response = function(status, headers, body) "
            "counted(status, headers, body); if counter * 2 + id >= #paths then wrk.thread:stop() end end"
        )
    lines.append(
        "done = function(summary, latency, requests) io.write(string.format("
        '"RESULT %d %d %d %d %d\\n", summary.requests, latency:percentile(50), '
        "latency:percentile(99), summary.errors.status, summary.duration)); "
        "for _, thread in ipairs(threads) do for status, n in pairs(thread:get('statuses')) do "
        'io.write(string.format("STATUS %d %d\\n", status, n)) end end end'
    )
    return "\n".join(lines) + "\n"


def _wrk(url: str, script: str, seconds: int, connections: int) -> dict:
    output = wrk(url, script, seconds, connections)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    if not match:
        raise RuntimeError(f"wrk said: {output}")
    requests_done, p50, p99, errors, duration_us = map(int, match.groups())
    statuses: dict[str, int] = {}
    for status, count in re.findall(r"STATUS (\d+) (\d+)", output):
        statuses[status] = statuses.get(status, 0) + int(count)
    return {
        "requests": requests_done,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non_2xx": errors,
        "statuses": dict(sorted(statuses.items())),
        "seconds": duration_us / 1e6,
    }


def non_2xx_kinds(statuses: dict[str, int]) -> dict[str, int]:
    """What the non-2xx answers were: 409 (the dossier had moved on already: the run ran out of
    dossiers, or sent one twice), 5xx (the service failed, 503 its database or broker), other 4xx."""
    kinds = {"conflict_409": 0, "service_5xx": 0, "other_4xx": 0}
    for status, count in statuses.items():
        code = int(status)
        if code == 409:
            kinds["conflict_409"] += count
        elif code >= 500:
            kinds["service_5xx"] += count
        elif code >= 400:
            kinds["other_4xx"] += count
    return kinds


class _Listener:
    """Takes the events of one kind as they arrive, noting each one's lag from its event time."""

    def __init__(self, amqp_uri: str, binding: str) -> None:
        self.connection = connect(amqp_uri)
        channel = self.connection.channel()
        declare_exchanges(channel)
        queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
        channel.queue_bind(queue, EXCHANGE, binding)
        channel.basic_consume(queue, callback=self._on_message, no_ack=True)
        self.lags: list[float] = []
        self.arrivals: list[float] = []
        self.subjects: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_message(self, message) -> None:
        arrived = time.time()
        envelope = json.loads(message.body)
        sent = datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).timestamp()
        self.lags.append(arrived - sent)
        self.arrivals.append(arrived)
        self.subjects.append(envelope["subject"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.connection.drain_events(timeout=0.2)
            except (TimeoutError, OSError):
                continue

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lags) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.connection.close()


def _figures(load: dict, listener: _Listener, cpu: float) -> dict:
    lags = sorted(listener.lags)
    # The rate of transitions whose event arrived, between the first and the last arrival: it does
    # not count the time wrk spent on 409s once every dossier had been moved.
    ok = len(lags)
    span = max(listener.arrivals) - min(listener.arrivals) if ok > 1 else float("inf")
    return {
        "transitions": ok,
        "per_s": round((ok - 1) / span, 1),
        # The service processes' own CPU time (relay included) per transition whose event arrived.
        "cpu_ms_per_transition": round(cpu * 1000 / ok, 2) if ok else None,
        "http_p50_ms": load["p50_ms"],
        "http_p99_ms": load["p99_ms"],
        "event_lag_p50_ms": round(statistics.median(lags) * 1000, 1) if lags else None,
        "event_lag_p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 1)
        if lags
        else None,
        "non_2xx": load["non_2xx"],
        "non_2xx_kinds": non_2xx_kinds(load["statuses"]),
        "statuses": load["statuses"],
    }


def _measured(service: RunningDossier, amqp_uri: str, binding: str, expected, run) -> dict:
    """Run a load (``run()`` → wrk's figures) and wait for its events; CPU from before the load
    until the last expected event arrived (the relay's publishing counts)."""
    listener = _Listener(amqp_uri, binding)
    machine = MachineCpu({process.pid for process in service.processes})
    machine.start()
    cpu = service.cpu_seconds()
    load = run()
    listener.wait_for(expected(load))
    used = service.cpu_seconds() - cpu
    figures = _figures(load, listener, used)
    # Who else spent the machine's CPU meanwhile (the database, the broker, wrk): what a second process
    # could use, and what a deployment must size.
    figures.update(machine.stop(figures["transitions"]))
    figures["subjects"] = list(dict.fromkeys(listener.subjects))
    listener.close()
    return figures


def _succeeded(load: dict) -> int:
    return sum(n for status, n in load["statuses"].items() if status.startswith("2"))


def transitions(
    amqp_uri: str,
    database_url: str,
    seconds: int = 10,
    connections: int = 16,
    procedure: str = "1.001193",
    *,
    root: Path = ROOT,
    processes: int = 1,
    units: int = 1,
) -> dict:
    """Receipts, then start_processing on the received dossiers, end to end. ``units`` > 1: the receipts
    go to that many communes of the province in turn (a province's desks), not all to one: each unit's
    daily code counter is a row lock that orders that unit's receipts, so one unit is the worst case."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the dossier benchmark needs wrk: apt-get install wrk")
    receiving = [UNIT] if units == 1 else [u.code for u in UnitRegistry.default().children(PROVINCE)[:units]]
    desk = mint(
        DEV_SECRET, sub="bench-desk", roles=["desk_officer"], units=[UNIT] if units == 1 else [PROVINCE]
    )
    bodies = [
        json.dumps({"procedure_code": procedure, "receiving_unit": unit, "applicant": APPLICANT})
        for unit in receiving
    ]
    receipt = bodies[0]
    results = {}
    with RunningDossier(amqp_uri, database_url, root=root, processes=processes) as service:
        _warm(service, desk, receipt)
        received = _measured(
            service,
            amqp_uri,
            "dossier.received.#",
            _succeeded,
            lambda: _wrk(
                f"{service.url}/api/v1/dossiers",
                _lua(desk, receipt, None, bodies=bodies if units > 1 else None),
                seconds,
                connections,
            ),
        )
        codes = received.pop("subjects")
        results["receive"] = received
        paths = [f"/api/v1/dossiers/{code}/actions/start_processing" for code in codes]
        # Each dossier can start processing once: wrk stops when every one was sent (see _lua).
        started = _measured(
            service,
            amqp_uri,
            "dossier.processing_started.#",
            lambda load: min(len(codes), _succeeded(load)),
            lambda: _wrk(service.url, _lua(desk, "{}", paths), seconds, connections),
        )
        started.pop("subjects")
        started["dossiers_available"] = len(codes)
        results["start_processing"] = started
    return results


def _warm(service: RunningDossier, token: str, receipt: str) -> None:
    # One request per process (SO_REUSEPORT spreads connections by their source port).
    for _ in range(2 * len(service.processes)):
        requests.post(
            f"{service.url}/api/v1/dossiers",
            data=receipt,
            timeout=30,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ).raise_for_status()
    time.sleep(1)  # their events are out before a listener binds


def paced_receipts(
    amqp_uri: str, database_url: str, rate: float, seconds: int = 10, connections: int = 8
) -> dict:
    """Receipts at about ``rate`` per second: each of wrk's connections waits ``connections / rate``
    after each response (wrk's Lua ``delay()``), so the offered rate is that minus the latency — a
    paced closed loop, not an open-loop schedule (which wrk cannot do); the achieved rate is reported."""
    desk = mint(DEV_SECRET, sub="bench-desk", roles=["desk_officer"], units=[UNIT])
    receipt = json.dumps({"procedure_code": "1.001193", "receiving_unit": UNIT, "applicant": APPLICANT})
    delay_ms = connections * 1000 / rate
    with RunningDossier(amqp_uri, database_url) as service:
        _warm(service, desk, receipt)
        figures = _measured(
            service,
            amqp_uri,
            "dossier.received.#",
            _succeeded,
            lambda: _wrk(
                f"{service.url}/api/v1/dossiers",
                _lua(desk, receipt, None, delay_ms=delay_ms),
                seconds,
                connections,
            ),
        )
    figures.pop("subjects")
    return {"target_per_s": round(rate, 1), "delay_ms_per_connection": round(delay_ms, 1), **figures}


def storage(database_url: str) -> dict:
    """What the dossiers of a run take on PostgreSQL (tables with their indexes and TOAST): bytes per
    dossier for the dossier rows, per audit line, per outbox row (pruned after RETENTION_OUTBOX_DAYS)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:

            def measure(table: str) -> tuple[int, int]:
                size = connection.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar()
                rows = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608
                return size, rows

            figures = {}
            for table, per in (
                ("dossiers", "dossier"),
                ("dossier_audit", "audit_line"),
                ("dossier_outbox", "event"),
            ):
                size, rows = measure(table)
                figures[f"{table}_bytes_per_{per}"] = round(size / rows) if rows else None
                figures[f"{table}_rows"] = rows
    finally:
        engine.dispose()
    return figures
