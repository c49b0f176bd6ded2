"""``make run``: migrate, then start every service that exists, each in its own process.

Prints where each service listens; Ctrl-C (or SIGTERM) stops them all.

``make run REPLICAS=n`` (or ``MOTCUA_REPLICAS=n``) starts n processes of each HTTP service, all on the
service's one port: the web server (eventlet.listen) sets SO_REUSEPORT, so the kernel spreads the
connections over the processes, with no balancer in front. Replicas share a database, so they need
PostgreSQL: a service whose ``<SERVICE>_DATABASE_URL`` is not given gets a local database
``motcua_run_<service>`` (``MOTCUA_RUN_POSTGRES``, default postgresql://postgres@127.0.0.1:5432),
created if missing; SQLite with n > 1 is refused. The postal operator, national portal and payment
platform simulators, the messaging gateways' simulators (SMS 8013, Zalo 8014, e-mail 8015, with the
notifier) and the test TSA stay single. Services without a ``service.py`` and a
``config.yml`` under ``services/`` are not started (they arrive with their own issues). With the
e-signature service comes the local RFC 3161 test TSA (``ESIGN_TSA_PORT``, default 8010), unless
``ESIGN_TSA_URL`` names a real one.

Before the services start, the broker is set up as ``python -m shared.ops broker-setup`` sets it up (the
exchanges, and the policy that keeps an event nobody is bound for in ``egov.events.unrouted``), every
time: it is idempotent. Ctrl-C reaches every service twice (the terminal's SIGINT and this script's
SIGTERM); each stops once, finishing what it is doing (shared/runner.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
RUN_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
ORDER = ("dossier", "postal", "esign", "metrics", "outbound", "notifier", "payment")
DEFAULT_PORTS = {
    "dossier": 8000,
    "postal": 8001,
    "esign": 8002,
    "metrics": 8003,
    "outbound": 8004,
    "notifier": 8005,
    "payment": 8006,
}
# The messaging gateways' simulators (simulators/messaging.py), one process each, with the notifier:
# name -> (its address setting, default port, the notifier's setting that points at it).
GATEWAY_SIMULATORS = {
    "sms-gateway-simulator": ("SMS_SIMULATOR_ADDRESS", 8013, "SMS_GATEWAY_URL"),
    "zalo-gateway-simulator": ("ZALO_SIMULATOR_ADDRESS", 8014, "ZALO_GATEWAY_URL"),
    "email-gateway-simulator": ("EMAIL_SIMULATOR_ADDRESS", 8015, "EMAIL_GATEWAY_URL"),
}
SIMULATORS = (
    "postal-operator-simulator",
    "national-portal-simulator",
    "payment-platform-simulator",
    *GATEWAY_SIMULATORS,
)
# What a stop may take, all processes together, before they are killed: work in flight finishes first.
STOP_SECONDS = 15


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


def simulator_address(name: str = "postal-operator-simulator") -> str:
    if name in GATEWAY_SIMULATORS:
        setting, port, _ = GATEWAY_SIMULATORS[name]
        return f"http://{os.environ.get(setting, f'127.0.0.1:{port}')}"
    if name == "national-portal-simulator":
        host, _, port = os.environ.get("PORTAL_SIMULATOR_ADDRESS", "127.0.0.1:8012").rpartition(":")
    elif name == "payment-platform-simulator":
        host, _, port = os.environ.get("PAYMENT_SIMULATOR_ADDRESS", "127.0.0.1:8016").rpartition(":")
    else:
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


def answering(url: str) -> bool:
    """Whether something accepts connections at ``url`` already."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def broker_setup(amqp_uri: str) -> bool:
    """``python -m shared.ops broker-setup`` on the broker the services use; True when it is in force."""
    import io

    import amqp

    from shared import ops

    out = io.StringIO()
    try:
        ops.broker_setup(amqp_uri, out)
    except (OSError, ops.OpsError, amqp.exceptions.AMQPError) as exc:
        print(f"could not set up the broker ({type(exc).__name__}: {str(exc).splitlines()[0]});", flush=True)
        print("  an event nobody is bound for is dropped, not kept in egov.events.unrouted", flush=True)
        return False
    print(out.getvalue().strip(), flush=True)
    return True


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


class RunError(Exception):
    """``make run`` cannot start as asked; the message is the one line to print."""


def replica_count(environ: dict[str, str]) -> int:
    value = (environ.get("MOTCUA_REPLICAS") or "1").strip()
    if not value.isdigit() or int(value) < 1:
        raise RunError(f"REPLICAS must be a whole number of processes per service, 1 or more (not {value!r})")
    return int(value)


def database_urls(names: list[str], replicas: int, environ: dict[str, str]) -> dict[str, str]:
    """The ``<SERVICE>_DATABASE_URL`` each service gets: what the environment says, and with replicas a
    local PostgreSQL database for every service it says nothing about. Replicas on SQLite: refused."""
    if replicas == 1:
        return {}
    server = (environ.get("MOTCUA_RUN_POSTGRES") or RUN_POSTGRES).rstrip("/")
    urls = {}
    for name in names:
        setting = f"{name.upper()}_DATABASE_URL"
        url = environ.get(setting) or f"{server}/motcua_run_{name}"
        if not url.startswith("postgresql"):
            raise RunError(
                f"REPLICAS={replicas} needs PostgreSQL (the replicas share a database and elect leaders in "
                f"it), but {setting} is {url.split(':', 1)[0]}: unset it for a local PostgreSQL database"
            )
        urls[setting] = url
    return urls


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names when it does not exist; True when it was created."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).scalar()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    return not exists


def main() -> int:
    os.chdir(ROOT)
    (ROOT / "data").mkdir(exist_ok=True)
    names = services()
    python = sys.executable
    try:
        replicas = replica_count(dict(os.environ))
        urls = database_urls(names, replicas, dict(os.environ))
        for setting, url in urls.items():
            if setting not in os.environ:
                created = ensure_database(url)
                shown = url.rsplit("@", 1)[-1]
                print(f"{setting} not given: {'created' if created else 'using'} {shown}", flush=True)
    except RunError as exc:
        print(f"make run: {exc}", flush=True)
        return 2
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        print(f"make run: cannot prepare the replicas' PostgreSQL databases ({reason})", flush=True)
        return 2
    os.environ.update(urls)
    taken = [name for name in names if answering(address(name))]
    if taken:
        # SO_REUSEPORT would let these processes join whatever listens there instead of failing.
        ports = ", ".join(f"{name} {address(name).rsplit(':', 1)[1]}" for name in taken)
        print(f"make run: port(s) already in use ({ports}): is another make run going?", flush=True)
        return 2
    for name in names:
        if (ROOT / "services" / name / "migrations").is_dir():
            print(f"migrating {name} ...", flush=True)
            subprocess.run([python, "-m", "shared.migrate", name], check=True)
    broker_setup(os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
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
        started = time.monotonic()
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, started + STOP_SECONDS - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {STOP_SECONDS} s; killing it", flush=True)
                process.kill()
        print(f"stopped in {time.monotonic() - started:.1f} s", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    # Ctrl-C, even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for name in names:
            config = ROOT / "services" / name / "config.yml"
            environment = {**os.environ, **({"AMQP_URI": uris[name]} if name in uris else {})}
            if name == "dossier" and "payment" in names:
                # The lookup page offers the payment service's start page while a dossier awaits payment.
                environment.setdefault("PAYMENT_START_URL", f"{address('payment')}/thanh-toan")
            if name == "notifier":
                # The gateways are the simulators started below, unless the environment names real ones.
                for simulator, (_, _, url_setting) in GATEWAY_SIMULATORS.items():
                    environment.setdefault(url_setting, simulator_address(simulator))
            if name == "outbound":
                # `make demo`'s subscriber listens on loopback, which the callback guard refuses otherwise.
                environment.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
            for replica in range(1, replicas + 1):
                processes[name if replica == 1 else f"{name}#{replica}"] = subprocess.Popen(
                    [python, "-m", "shared.runner", name, "--config", str(config)], env=environment
                )
        if "postal" in processes:
            # The postal operator stands in as a simulator (simulators/postal_operator.py); its
            # webhooks go to the postal service's receiver.
            webhooks = f"{address('postal')}/api/v1/webhooks/vnpost"
            processes["postal-operator-simulator"] = subprocess.Popen(
                [python, "-m", "simulators.postal_operator", "--webhook-url", webhooks]
            )
        if "outbound" in processes:
            # The national portal's adapter stands in as a simulator (simulators/national_portal.py).
            processes["national-portal-simulator"] = subprocess.Popen(
                [
                    python,
                    "-m",
                    "simulators.national_portal",
                    "--address",
                    simulator_address("national-portal-simulator").removeprefix("http://"),
                ]
            )
        if "payment" in processes:
            # The national payment platform stands in as a simulator (simulators/payment_platform.py); its
            # confirmations go to the payment service.
            processes["payment-platform-simulator"] = subprocess.Popen(
                [
                    python,
                    "-m",
                    "simulators.payment_platform",
                    "--address",
                    simulator_address("payment-platform-simulator").removeprefix("http://"),
                    "--callback-url",
                    f"{address('payment')}/api/v1/platform/confirmations",
                ]
            )
        if "notifier" in processes:
            # The SMS, Zalo and e-mail gateways stand in as simulators (simulators/messaging.py); each
            # logs what it received and lists it at /_control/received.
            for name in GATEWAY_SIMULATORS:
                gateway = name.split("-")[0]
                processes[name] = subprocess.Popen(
                    [
                        python,
                        "-m",
                        "simulators.messaging",
                        "--gateway",
                        gateway,
                        "--address",
                        simulator_address(name).removeprefix("http://"),
                    ]
                )
        for name, process in processes.items():
            if name == "tsa":
                print(f"  test TSA listening on {os.environ['ESIGN_TSA_URL']}", flush=True)
                continue
            service = name.split("#")[0]
            url = address(service) if name not in SIMULATORS else simulator_address(name)
            if wait_live(url, process):
                if "#" in name:
                    continue
                shown = f"{name} ×{replicas}" if replicas > 1 and name in names else name
                print(f"  {shown:11} listening on {url}  (OpenAPI: {url}/api/v1/openapi.json)", flush=True)
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
