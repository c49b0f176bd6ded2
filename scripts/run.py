"""``make run``: migrate, then start every service that exists, each in its own process.

Prints where each service listens; Ctrl-C stops them all. Services without a ``service.py`` and a
``config.yml`` under ``services/`` are not started (they arrive with their own issues). With the
e-signature service comes the local RFC 3161 test TSA (``ESIGN_TSA_PORT``, default 8010), unless
``ESIGN_TSA_URL`` names a real one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("dossier", "postal", "esign", "metrics")
DEFAULT_PORTS = {"dossier": 8000, "postal": 8001, "esign": 8002, "metrics": 8003}


def services() -> list[str]:
    found = [
        p.name
        for p in (ROOT / "services").iterdir()
        if (p / "service.py").is_file() and (p / "config.yml").is_file()
    ]
    return sorted(found, key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))


def address(name: str) -> str:
    value = os.environ.get(f"{name.upper()}_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS.get(name, 8010)}")
    host, _, port = value.rpartition(":")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def simulator_address() -> str:
    host, _, port = os.environ.get("SIMULATOR_ADDRESS", "127.0.0.1:8011").rpartition(":")
    return f"http://{host}:{port}"


def wait_live(url: str, process: subprocess.Popen, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health/live", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def broker_uris(names: list[str]) -> dict[str, str]:
    """Each service's own RabbitMQ user (shared/broker_users.py), created through the management API."""
    from shared.broker_users import provision_all

    amqp_uri = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    api = os.environ.get("MOTCUA_BROKER_API", "http://guest:guest@127.0.0.1:15672")
    try:
        uris = provision_all(api, amqp_uri, names)
    except (OSError, RuntimeError) as exc:
        print(f"could not create per-service broker users through {api.split('@')[-1]} ({exc});", flush=True)
        print("  every service connects with AMQP_URI as given", flush=True)
        return {}
    print(
        f"broker users: {', '.join(f'motcua-{name}' for name in names)} (each its own permissions)",
        flush=True,
    )
    return uris


def main() -> int:
    os.chdir(ROOT)
    (ROOT / "data").mkdir(exist_ok=True)
    names = services()
    python = sys.executable
    for name in names:
        if (ROOT / "services" / name / "migrations").is_dir():
            print(f"migrating {name} ...", flush=True)
            subprocess.run([python, "-m", "shared.migrate", name], check=True)
    uris = broker_uris(names)
    processes: dict[str, subprocess.Popen] = {}
    if "esign" in names and not os.environ.get("ESIGN_TSA_URL"):
        if not os.environ.get("ESIGN_KEY_PASSPHRASE"):
            print("esign needs ESIGN_KEY_PASSPHRASE (it encrypts the test PKI's keys); make run sets one")
            return 2
        port = os.environ.get("ESIGN_TSA_PORT", "8010")
        os.environ["ESIGN_TSA_URL"] = f"http://127.0.0.1:{port}/"
        processes["tsa"] = subprocess.Popen([python, "-m", "services.esign.tsa", "--port", port])

    def stop_all(*_args) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 15 s; killing it", flush=True)
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    # Ctrl-C, even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for name in names:
            config = ROOT / "services" / name / "config.yml"
            environment = {**os.environ, **({"AMQP_URI": uris[name]} if name in uris else {})}
            processes[name] = subprocess.Popen(
                [python, "-m", "shared.runner", name, "--config", str(config)], env=environment
            )
        if "postal" in processes:
            # The postal operator stands in as a simulator (simulators/postal_operator.py); its
            # webhooks go to the postal service's receiver.
            webhooks = f"{address('postal')}/api/v1/webhooks/vnpost"
            processes["postal-operator-simulator"] = subprocess.Popen(
                [python, "-m", "simulators.postal_operator", "--webhook-url", webhooks]
            )
        for name, process in processes.items():
            if name == "tsa":
                print(f"  test TSA listening on {os.environ['ESIGN_TSA_URL']}", flush=True)
                continue
            url = address(name) if name != "postal-operator-simulator" else simulator_address()
            if wait_live(url, process):
                print(f"  {name:8} listening on {url}  (OpenAPI: {url}/api/v1/openapi.json)", flush=True)
            else:
                print(f"  {name:8} FAILED to start (see its log above)", flush=True)
                stop_all()
                return 1
        print("motcua is running. Ctrl-C stops every service.", flush=True)
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        crashed = [name for name, process in processes.items() if process.poll() is not None]
        print(f"service(s) stopped unexpectedly: {', '.join(crashed)}; stopping the rest", flush=True)
        stop_all()
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        stop_all()
        return 0


if __name__ == "__main__":
    sys.exit(main())
