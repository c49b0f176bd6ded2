"""The chaos suite's failing neighbours: each one down for a while, or answering slowly, under load.

The postal service (pickups: it registers the dossier with the dossier service, then orders the pickup
from the postal operator) and the outbound service (each dossier event to the national portal) run as
processes beside the chaos stack's dossier service, each neighbour behind a fault proxy
(chaos/proxy.py) that cuts it (down: every connection reset) or holds each answer ``--neighbour-slow``
seconds (slow). The
neighbours are the stack's dossier service and the simulators (simulators/postal_operator.py,
simulators/national_portal.py).

- **postal rows**: pickups at a steady rate, each retried with its Idempotency-Key (waiting the
  ``Retry-After`` it is given, at most 5 s) until accepted. Lost: an accepted pickup whose dossier is not
  in the dossier database or whose order the operator does not know. Double-counted: postal dossiers in
  the dossier database beyond one per accepted pickup.
- **portal rows**: the stack's receipts. Lost: a dossier of the dossier database the portal does not
  hold once the sync has drained. Double-counted: a step the portal holds twice.

Recovery: from the neighbour's return to the first success of the kind it blocked.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from chaos.probe import SteadyClients
from chaos.proxy import FaultProxy
from shared.auth import DEV_SECRET, mint
from shared.vocabulary import Channel

ROOT = Path(__file__).resolve().parent.parent
# chaos/run.py's Stack, Settings and Row; its under_load runs a fault under the receipts' load.
Stack = Settings = Row = Any
UnderLoad = Callable[[Any, Any, Callable[[], None]], None]
UNIT = "26740"
PICKUP_PROCEDURE = "1.004859"  # a commune's, taken by post and returned by post
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234", "phone": "0901234567"}
CONTACT = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi, phường Bến Nghé"}
# The neighbours' policy in these runs: the services' defaults but a 10 s cool-down, so that a
# 120 s outage shows several trials.
POLICY = {"CIRCUIT_COOLDOWN_SECONDS": "10"}


class Neighbours:
    """The postal and outbound services and their neighbours, started on the chaos stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        port = {name: _free_port() for name in ("postal", "outbound", "operator", "portal")}
        self.port = port
        self.proxy = {
            "dossier": FaultProxy("127.0.0.1", stack.ports["dossier-a"]),
            "postal_operator": FaultProxy("127.0.0.1", port["operator"]),
            "national_portal": FaultProxy("127.0.0.1", port["portal"]),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        workdir = stack.workdir
        common = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AMQP_URI": stack.amqp_direct,
            "JWT_SECRET": DEV_SECRET,
            "MOTCUA_ENV": "development",
            "LOG_LEVEL": "WARNING",
            "OUTBOX_POLL_SECONDS": "0.2",
        }
        postal = {
            **common,
            "POSTAL_DATABASE_URL": f"sqlite:///{workdir}/postal.sqlite3",
            "POSTAL_ADDRESS": f"127.0.0.1:{port['postal']}",
            "DOSSIER_URL": f"http://127.0.0.1:{self.proxy['dossier'].port}",
            "POSTAL_OPERATOR_URL": f"http://127.0.0.1:{self.proxy['postal_operator'].port}",
            **{f"DOSSIER_{k}": v for k, v in POLICY.items()},
            **{f"POSTAL_OPERATOR_{k}": v for k, v in POLICY.items()},
        }
        outbound = {
            **common,
            "OUTBOUND_DATABASE_URL": f"sqlite:///{workdir}/outbound.sqlite3",
            "OUTBOUND_ADDRESS": f"127.0.0.1:{port['outbound']}",
            "PORTAL_URL": f"http://127.0.0.1:{self.proxy['national_portal'].port}",
            "DOSSIER_URL": stack.url("dossier-a"),
            "PORTAL_SYNC_UNITS": "79",
            **{f"PORTAL_{k}": v for k, v in POLICY.items()},
        }
        try:
            self._start_all(postal, outbound, common)
        except BaseException:
            self.close()  # what did start is stopped, not left running
            raise

    def _start_all(self, postal: dict[str, str], outbound: dict[str, str], common: dict[str, str]) -> None:
        port = self.port
        for name, env in (("postal", postal), ("outbound", outbound)):
            subprocess.run([sys.executable, "-m", "shared.migrate", name], cwd=ROOT, env=env, check=True)
            self._start(name, [sys.executable, "-m", "shared.runner", name], env)
        self._start(
            "operator",
            [
                sys.executable,
                "-m",
                "simulators.postal_operator",
                "--address",
                f"127.0.0.1:{port['operator']}",
                "--webhook-url",
                f"http://127.0.0.1:{port['postal']}/api/v1/webhooks/vnpost",
            ],
            common,
        )
        self._start(
            "portal",
            [sys.executable, "-m", "simulators.national_portal", "--address", f"127.0.0.1:{port['portal']}"],
            common,
        )
        for name in ("postal", "outbound", "operator", "portal"):
            _wait_live(f"http://127.0.0.1:{port[name]}", self.processes[name], name)

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.stack.workdir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - the child owns it
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port[name]}"

    def ready(self, service: str) -> dict:
        return requests.get(f"{self.url(service)}/health/ready", timeout=10).json()

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for proxy in self.proxy.values():
            proxy.close()


class Pickups(SteadyClients):
    """Pickups at ``rate`` a second, each retried with its key until accepted (at most 5 s apart)."""

    join_seconds = 180.0

    def __init__(self, url: str, rate: float, workers: int = 4) -> None:
        super().__init__(rate, workers)
        self.url = url
        self.answers: Counter[str] = Counter()
        self.accepted: list[dict] = []
        self.accepted_at: list[float] = []
        token = mint(DEV_SECRET, sub="chaos-pickups", roles=["portal"], units=[UNIT])
        self.headers = {"Authorization": f"Bearer {token}"}
        self.start()

    def one(self, session: requests.Session) -> None:
        key = str(uuid.uuid4())
        body = {
            "procedure_code": PICKUP_PROCEDURE,
            "receiving_unit": UNIT,
            "applicant": APPLICANT,
            "pickup": CONTACT,
            "documents": [{"name": "Tờ khai", "copies": 1}],
        }
        for attempt in itertools.count():
            # Once the load stops, a pickup under way is still retried (up to 2 minutes): a client gives
            # up on its own, not at the moment the test stops counting.
            if self.stop.is_set() and attempt > 60:
                return
            try:
                response = session.post(
                    f"{self.url}/api/v1/pickups",
                    json=body,
                    headers={**self.headers, "Idempotency-Key": key},
                    timeout=60,
                )
                outcome, wait = str(response.status_code), float(response.headers.get("Retry-After") or 1)
            except requests.RequestException as exc:
                outcome, wait = type(exc).__name__, 1.0
            with self.lock:
                self.answers[outcome] += 1
                if outcome == "201":
                    self.accepted.append(response.json())
                    self.accepted_at.append(time.monotonic())
                    return
            time.sleep(min(wait, 5.0))


def postal_row(
    stack: Stack, settings: Settings, row: Row, neighbour: str, slow: bool, under_load: UnderLoad
) -> Row:
    """A neighbour of the postal service down (or slow) for ``settings.neighbour_outage`` s."""
    stack.neighbours = stack.neighbours or Neighbours(stack)
    nb = stack.neighbours
    proxy = nb.proxy[neighbour]
    pickups = Pickups(nb.url("postal"), settings.pickup_rate)
    seen: dict[str, str] = {}
    returned = [0.0]

    def fault() -> None:
        _fault(proxy, settings, slow)
        seen["readiness"] = json.dumps(nb.ready("postal")["checks"].get(f"neighbour {neighbour}"))
        returned[0] = time.monotonic()

    before = len(stack.oracle())
    under_load(stack, row, fault)
    pickups.finish()
    time.sleep(2.0)
    with stack.engines["dossier"].connect() as connection:
        postal_dossiers = connection.execute(
            sa.text("SELECT code FROM dossiers WHERE channel = :postal"), {"postal": int(Channel.POSTAL)}
        ).scalars()
        postal_dossiers = set(postal_dossiers)
    accepted = pickups.accepted
    codes = {p["dossier_code"] for p in accepted}
    unknown_orders = sum(
        1
        for p in accepted
        if requests.get(f"{nb.url('operator')}/orders/{p['consignment']}", timeout=10).status_code != 200
    )
    lost = len(codes - postal_dossiers) + unknown_orders
    double = max(0, len(postal_dossiers - stack.counted_postal) - len(codes))
    stack.counted_postal |= postal_dossiers
    after = [t for t in pickups.accepted_at if t >= returned[0]]
    recovery = f"{after[0] - returned[0]:.1f} s" if after else "none accepted after"
    answers = " ".join(f"{k}:{v}" for k, v in sorted(pickups.answers.items()))
    row.neighbour_lost, row.neighbour_double = lost, double
    row.note += (
        f" pickups: {len(accepted)} accepted ({answers}); lost {lost}, registered twice {double};"
        f" first pickup accepted {recovery} after the {neighbour} returned;"
        f" readiness at the end of the fault: {seen.get('readiness')}; receipts before {before};"
    )
    return row


def portal_row(stack: Stack, settings: Settings, row: Row, slow: bool, under_load: UnderLoad) -> Row:
    """The national portal down (or slow) for ``settings.neighbour_outage`` s, the receipts going on."""
    stack.neighbours = stack.neighbours or Neighbours(stack)
    nb = stack.neighbours
    proxy = nb.proxy["national_portal"]
    seen: dict[str, str] = {}
    caught_up: list[float] = []

    def held() -> tuple[set[str], dict]:
        received = requests.get(f"{nb.url('portal')}/_control/received", timeout=30).json()
        return set(received["dossiers"]), received["steps"]

    def fault() -> None:
        _fault(proxy, settings, slow)
        seen["readiness"] = json.dumps(nb.ready("outbound")["checks"].get("neighbour national_portal"))
        # Recovery: until the portal holds every dossier filed before it returned (the load goes on).
        waiting, returned = stack.oracle(), time.monotonic()
        while time.monotonic() < returned + settings.settle_timeout:
            try:
                if waiting <= held()[0]:
                    caught_up.append(time.monotonic() - returned)
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)

    under_load(stack, row, fault)
    oracle = stack.oracle()
    deadline = time.monotonic() + settings.settle_timeout
    while not oracle <= (portal := held())[0] and time.monotonic() < deadline:
        time.sleep(1.0)
    dossiers, steps = portal
    twice = sum(len(s) - len({json.dumps(x, sort_keys=True) for x in s}) for s in steps.values())
    row.neighbour_lost = len(oracle - dossiers)
    row.neighbour_double = twice
    recovery = f"{caught_up[0]:.1f} s" if caught_up else "not within the settle timeout"
    row.note += (
        f" portal: {len(dossiers & oracle)} of {len(oracle)} dossiers held, lost {len(oracle - dossiers)},"
        f" steps held twice {twice}; every dossier filed before it returned was there {recovery} after;"
        f" outbound readiness at the end of the fault: {seen.get('readiness')};"
    )
    return row


def _fault(proxy: FaultProxy, settings: Settings, slow: bool) -> None:
    if slow:
        proxy.answer_delay = settings.neighbour_slow
        time.sleep(settings.neighbour_outage)
        proxy.answer_delay = 0.0
    else:
        proxy.cut()
        time.sleep(settings.neighbour_outage)
        proxy.restore()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_live(
    url: str, process: subprocess.Popen, name: str, timeout: float = 60.0, path: str = "/health/live"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {name}.log")
        try:
            if requests.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not come up in {timeout:.0f} s")
