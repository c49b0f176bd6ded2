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
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

from shared.auth import DEV_SECRET, mint
from shared.broker import connect, declare_exchanges
from shared.events import EXCHANGE

ROOT = Path(__file__).resolve().parent.parent
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234"}
UNIT = "26740"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningDossier:
    """The dossier service as its own process, migrated, on the given database and broker."""

    def __init__(self, amqp_uri: str, database_url: str) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "AMQP_URI": amqp_uri,
            "DOSSIER_DATABASE_URL": database_url,
            "DOSSIER_ADDRESS": f"127.0.0.1:{self.port}",
            "JWT_SECRET": DEV_SECRET,
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            "MAX_WORKERS": "20",
        }
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RunningDossier:
        subprocess.run(
            [sys.executable, "-m", "shared.migrate", "dossier"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.runner", "dossier"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health/live", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("dossier service did not start")

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _lua(token: str, body: str | None, paths: list[str] | None, method: str = "POST") -> str:
    """A wrk script: JSON POSTs, to one path or cycling through ``paths``."""
    lines = [
        f'wrk.method = "{method}"',
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
    ]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    if paths:
        lines.append("paths = {" + ",".join(json.dumps(p) for p in paths) + "}")
        # Each wrk thread takes its own interleaved share of the paths, so none is sent twice.
        lines.append("threads = 0")
        lines.append("setup = function(thread) thread:set('id', threads); threads = threads + 1 end")
        lines.append("counter = 0")
        lines.append(
            "request = function() local n = counter * 2 + id; counter = counter + 1; "
            "return wrk.format(nil, paths[(n % #paths) + 1]) end"
        )
    lines.append(
        "done = function(summary, latency, requests) io.write(string.format("
        '"RESULT %d %d %d %d %d\\n", summary.requests, latency:percentile(50), '
        "latency:percentile(99), summary.errors.status, summary.duration)) end"
    )
    return "\n".join(lines) + "\n"


def _wrk(url: str, script: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", handle.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    if not match:
        raise RuntimeError(f"wrk said: {output}")
    requests_done, p50, p99, errors, duration_us = map(int, match.groups())
    return {
        "requests": requests_done,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non_2xx": errors,
        "seconds": duration_us / 1e6,
    }


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


def _figures(load: dict, listener: _Listener) -> dict:
    lags = sorted(listener.lags)
    # The rate of transitions whose event arrived, between the first and the last arrival: it does
    # not count the time wrk spent on 409s once every dossier had been moved.
    ok = len(lags)
    span = max(listener.arrivals) - min(listener.arrivals) if ok > 1 else float("inf")
    return {
        "transitions": ok,
        "per_s": round((ok - 1) / span, 1),
        "http_p50_ms": load["p50_ms"],
        "http_p99_ms": load["p99_ms"],
        "event_lag_p50_ms": round(statistics.median(lags) * 1000, 1) if lags else None,
        "event_lag_p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 1)
        if lags
        else None,
        "non_2xx": load["non_2xx"],
    }


def transitions(
    amqp_uri: str, database_url: str, seconds: int = 10, connections: int = 16, procedure: str = "1.001193"
) -> dict:
    """Receipts, then start_processing on the received dossiers, end to end."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the dossier benchmark needs wrk: apt-get install wrk")
    desk = mint(DEV_SECRET, sub="bench-desk", roles=["desk_officer"], units=[UNIT])
    receipt = json.dumps({"procedure_code": procedure, "receiving_unit": UNIT, "applicant": APPLICANT})
    results = {}
    with RunningDossier(amqp_uri, database_url) as service:
        warm = requests.post(
            f"{service.url}/api/v1/dossiers",
            data=receipt,
            timeout=30,
            headers={"Authorization": f"Bearer {desk}", "Content-Type": "application/json"},
        )
        warm.raise_for_status()
        listener = _Listener(amqp_uri, "dossier.received.#")
        load = _wrk(f"{service.url}/api/v1/dossiers", _lua(desk, receipt, None), seconds, connections)
        listener.wait_for(load["requests"] - load["non_2xx"])
        results["receive"] = _figures(load, listener)
        codes = list(dict.fromkeys(listener.subjects))
        listener.close()

        listener = _Listener(amqp_uri, "dossier.processing_started.#")
        paths = [f"/api/v1/dossiers/{code}/actions/start_processing" for code in codes]
        # Each dossier can start processing once; later requests on it are 409s and are not counted.
        load = _wrk(service.url, _lua(desk, "{}", paths), seconds, connections)
        listener.wait_for(min(len(codes), load["requests"] - load["non_2xx"]))
        results["start_processing"] = _figures(load, listener)
        listener.close()
    return results
