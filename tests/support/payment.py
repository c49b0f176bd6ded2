"""The payment platform simulator as the tests run it: its own process on a free port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from shared.auth import PAYMENT_DEVELOPMENT_SECRET
from tests.conftest import free_port
from tests.support.broker import wait_for

ROOT = Path(__file__).resolve().parents[2]
SECRET = PAYMENT_DEVELOPMENT_SECRET


class PlatformSimulator:
    def __init__(self, url: str) -> None:
        self.url = url

    def live(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/live", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def pay(self, reference: str, outcome: str = "paid", fault: str | None = None) -> dict:
        body = {"reference": reference, "outcome": outcome, "fault": fault}
        response = requests.post(f"{self.url}/_control/pay", json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def inject(self, *faults: str) -> None:
        response = requests.post(f"{self.url}/_control/faults", json={"faults": list(faults)}, timeout=5)
        assert response.status_code == 200, response.text

    def received(self) -> dict:
        return requests.get(f"{self.url}/_control/received", timeout=5).json()


@contextmanager
def payment_platform(callback_url: str, *, hang_seconds: float = 3.0) -> Iterator[PlatformSimulator]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.payment_platform",
            "--address",
            f"127.0.0.1:{port}",
            "--callback-url",
            callback_url,
            "--hang-seconds",
            str(hang_seconds),
            "--secret",
            SECRET,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    simulator = PlatformSimulator(f"http://127.0.0.1:{port}")
    try:
        assert wait_for(simulator.live, timeout=20), "the payment platform simulator did not start"
        yield simulator
    finally:
        process.terminate()
        process.wait(timeout=10)
