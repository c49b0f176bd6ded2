"""The messaging gateways' simulators as the tests run them: one process each, on free ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from tests.conftest import free_port
from tests.support.broker import wait_for

ROOT = Path(__file__).resolve().parents[2]


class GatewaySimulator:
    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url

    def live(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/live", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def inject(self, *faults: str) -> None:
        response = requests.post(f"{self.url}/_control/faults", json={"faults": list(faults)}, timeout=5)
        assert response.status_code == 200, response.text

    def received(self) -> dict:
        return requests.get(f"{self.url}/_control/received", timeout=5).json()

    def messages(self) -> list[dict]:
        return self.received()["messages"]

    def calls(self) -> list[dict]:
        return self.received()["calls"]


@contextmanager
def gateway_simulators(
    *, hang_seconds: float = 3.0, not_followers: str = ""
) -> Iterator[dict[str, GatewaySimulator]]:
    """The SMS, Zalo and e-mail simulators, started together."""
    with ExitStack() as stack:
        simulators = {}
        for kind in ("sms", "zalo", "email"):
            port = free_port()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "simulators.messaging",
                    "--gateway",
                    kind,
                    "--address",
                    f"127.0.0.1:{port}",
                    "--hang-seconds",
                    str(hang_seconds),
                    "--not-followers",
                    not_followers,
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(process.wait, timeout=10)
            stack.callback(process.terminate)
            simulators[kind] = GatewaySimulator(kind, f"http://127.0.0.1:{port}")
        for simulator in simulators.values():
            assert wait_for(simulator.live, timeout=20), f"the {simulator.kind} simulator did not start"
        yield simulators
