"""The running system: services started as `make run` starts them, one process each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import bearer, free_port
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def start(service: str, env: dict[str, str]) -> subprocess.Popen:
    subprocess.run(
        [sys.executable, "-m", "shared.migrate", service], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return subprocess.Popen(
        [sys.executable, "-m", "shared.runner", service],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_live(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if requests.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in {seconds} s")


def test_dossier_process_receives_publishes_and_stops_cleanly(environment, rabbit_config):
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.*.79.#")
    process = start("dossier", environment)
    url = f"http://{environment['DOSSIER_ADDRESS']}"
    try:
        wait_live(url, process)
        response = requests.post(
            f"{url}/api/v1/dossiers",
            headers=bearer("desk_officer", "26740"),
            timeout=10,
            json={"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": "26740", "applicant": APPLICANT},
        )
        assert response.status_code == 201, response.text
        subscriber.drain(expect=1)
        assert [e["subject"] for e in subscriber.envelopes] == [response.json()["code"]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        subscriber.close()
        if process.poll() is None:
            process.kill()


def test_a_wrong_setting_stops_the_service_with_its_name(environment):
    environment["JWT_SECRET"] = "short"
    process = start("dossier", environment)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "JWT_SECRET" in output and "Traceback" not in output


def test_a_clock_file_outside_development_stops_the_service(environment, tmp_path):
    """Only development may move a service's time (shared/clock.py)."""
    environment.update(MOTCUA_ENV="production", MOTCUA_CLOCK_FILE=str(tmp_path / "clock"))
    process = start("dossier", environment)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "MOTCUA_CLOCK_FILE is set outside MOTCUA_ENV=development" in output and "Traceback" not in output


def test_an_idle_service_stops_on_sigterm_without_waiting_for_its_next_timer(rabbit_config, tmp_path):
    """The payment service has no consumer: between reconciliation rounds its hub sleeps until the next
    round. SIGTERM must end that sleep (shared/runner.py), not wait for the round an hour later: here
    the round is an hour away, so a stop that waited for it could not happen within the test's bound
    (Kubernetes' grace period is 30 s, make run's 15 s)."""
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "PYTHONPATH": str(ROOT),
        "MOTCUA_ENV": "development",
        "PAYMENT_DATABASE_URL": f"sqlite:///{tmp_path / 'payment.sqlite3'}",
        "PAYMENT_ADDRESS": f"127.0.0.1:{free_port()}",
        "PAYMENT_RECONCILE_SECONDS": "3600",
    }
    process = start("payment", env)
    try:
        # Started (its signal handlers are set before it logs this), and then left alone: no request
        # (an HTTP call's own timers would wake the hub and hide the fault).
        for line in process.stdout:
            if "starting services: payment" in line:
                break
        time.sleep(10)  # past its start-up's own timers: from here its hub sleeps until the next round
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert "stopping services: payment" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
