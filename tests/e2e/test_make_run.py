"""``make run`` (scripts/run.py) as a newcomer runs it: the whole system on the test's vhost and databases.

It sets the broker up as ``broker-setup`` does, so an event nobody is bound for is kept; and Ctrl-C (SIGINT
to the whole process group, then the script's own SIGTERM to each service) stops an idle system in
seconds, every service stopping once, none killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared.events import UNROUTED_QUEUE
from tests.conftest import free_port
from tests.support.broker import depth, probe_event, publish, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# An idle system: each service stops in about 3 s (its consumer's last poll, then the interpreter's exit).
IDLE_STOP_SECONDS = 10


def run_environment(rabbit_config, tmp_path) -> dict[str, str]:
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "PYTHONPATH": str(ROOT),
        "MOTCUA_ENV": "development",
        "MOTCUA_REPLICAS": "1",
        # Per-service broker users are global to the broker: not created by a test (the fallback is AMQP_URI).
        "MOTCUA_BROKER_API": f"http://guest:guest@127.0.0.1:{free_port()}",
        "ESIGN_TSA_PORT": str(free_port()),
        "ESIGN_PKI_DIR": str(tmp_path / "pki"),
        "ESIGN_STORE_DIR": str(tmp_path / "documents"),
        "SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "PORTAL_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "SMS_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "ZALO_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "EMAIL_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    for service in ("dossier", "postal", "esign", "metrics", "outbound", "notifier"):
        env[f"{service.upper()}_DATABASE_URL"] = f"sqlite:///{tmp_path / service}.sqlite3"
        env[f"{service.upper()}_ADDRESS"] = f"127.0.0.1:{free_port()}"
    env["DOSSIER_URL"] = f"http://{env['DOSSIER_ADDRESS']}"
    env["POSTAL_OPERATOR_URL"] = f"http://{env['SIMULATOR_ADDRESS']}"
    env["PORTAL_URL"] = f"http://{env['PORTAL_SIMULATOR_ADDRESS']}"
    env["ESIGN_PUBLIC_URL"] = f"http://{env['ESIGN_ADDRESS']}"
    return env


def test_make_run_keeps_unroutable_events_and_an_idle_system_stops_in_seconds(rabbit_config, tmp_path):
    uri = rabbit_config["AMQP_URI"]
    process = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=run_environment(rabbit_config, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("motcua is running" in line for line in lines), timeout=180), "".join(
            lines
        )
        # The alternate exchange is in force: an event nobody is bound for is kept, not dropped.
        probe = probe_event(1).to_json().encode()
        assert wait_for(
            lambda: publish(uri, probe, routing_key="nobody.listens.here") or depth(uri, UNROUTED_QUEUE)
        )
        time.sleep(2)  # idle
        stopping = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        process.wait(timeout=60)
        took = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=5)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "did not stop" not in output and "Traceback" not in output, output
    assert took < IDLE_STOP_SECONDS, f"an idle system took {took:.1f} s to stop\n{output}"
