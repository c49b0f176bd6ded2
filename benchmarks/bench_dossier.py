"""End-to-end dossier transitions: HTTP request → committed → event confirmed on the broker → received.

The dossier service runs as its own process (as ``make run`` starts it) on SQLite or PostgreSQL; a client
pool sends receipts over HTTP while a subscriber on ``egov.events`` takes the events. Throughput counts
transitions whose event reached the subscriber; latency is measured per transition from the request
being sent to its event arriving.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from shared.auth import DEV_SECRET, mint
from tests.support.broker import Subscriber

ROOT = Path(__file__).resolve().parent.parent
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningDossier:
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


def receipts(
    amqp_uri: str,
    database_url: str,
    count: int,
    concurrency: int = 8,
    procedure: str = "1.001193",
    unit: str = "26740",
) -> dict:
    """Receipts per second, end to end, and p50/p99 latency from request to event received."""
    token = mint(DEV_SECRET, sub="bench", roles=["desk_officer"], units=[unit])
    headers = {"Authorization": f"Bearer {token}"}
    body = json.dumps({"procedure_code": procedure, "receiving_unit": unit, "applicant": APPLICANT})
    subscriber = Subscriber(amqp_uri, "dossier.received.#")
    sent_at: dict[str, float] = {}
    arrived_at: dict[str, float] = {}
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set() and len(arrived_at) < count:
            before = len(subscriber.messages)
            subscriber.drain(timeout=0.2, quiet=0)
            now = time.perf_counter()
            for message in subscriber.messages[before:]:
                arrived_at.setdefault(json.loads(message.body)["subject"], now)

    with RunningDossier(amqp_uri, database_url) as service:
        session = requests.Session()
        session.post(
            f"{service.url}/api/v1/dossiers",
            data=body,
            timeout=30,
            headers={**headers, "Content-Type": "application/json"},
        )  # warm-up
        subscriber.drain(expect=1, timeout=10, quiet=0.2)
        subscriber.messages.clear()
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        sessions = threading.local()

        def one(_n: int) -> None:
            client = getattr(sessions, "client", None) or requests.Session()
            sessions.client = client
            started = time.perf_counter()
            response = client.post(
                f"{service.url}/api/v1/dossiers",
                data=body,
                timeout=60,
                headers={**headers, "Content-Type": "application/json"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"receipt failed: {response.status_code} {response.text[:200]}")
            sent_at[response.json()["code"]] = started

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(count)))
        listener.join(timeout=120)
        elapsed = max(arrived_at.values(), default=time.perf_counter()) - started
        stop.set()
    subscriber.close()
    latencies = sorted(arrived_at[code] - sent_at[code] for code in sent_at if code in arrived_at)
    if len(latencies) < count:
        raise RuntimeError(f"only {len(latencies)} of {count} events arrived")
    return {
        "transitions": count,
        "per_s": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }
