"""The chaos suite's outside parties: the notifier's messaging gateways and the payment platform, each down
for a while or answering slowly, under load (issue 22, "each neighbour down for 120 s and slow").

Beside the chaos stack run the notifier (its gateways: simulators/messaging.py, SMS, Zalo and e-mail)
and the payment service (the national payment platform: simulators/payment_platform.py), each outside
party behind a fault proxy (chaos/proxy.py) that cuts it (**down**: every connection reset) or holds each
chunk of its answers ``--neighbour-slow`` seconds (**slow**). Both services read the stack's dossier
service directly (that neighbour is not faulted here).

- **notifier rows**: the stack's receipts, each applicant consenting to SMS, Zalo and e-mail. The oracle
  is the gateways' own record of what they accepted (once per request id, as a real gateway's client
  reference): every dossier the dossier database holds from the row must have one message at each of the
  three gateways once the notifier has caught up (lost: one missing), and none two (double-counted).
- **payment rows**: payments by 4 citizens in a closed loop: a dossier filed at the desk, put in
  processing and asked for its fee; the citizen starts the payment (``POST /api/v1/payments``, retried
  after the ``Retry-After`` it is given, at most 5 s, until 201) and pays at the platform; the platform
  confirms to the payment service, which records it with the dossier service. Lost: a payment the
  platform holds as paid whose dossier the dossier database does not hold paid (status back to
  processing, one ``dossier.paid`` in its outbox) once the service has caught up; double-counted: a
  dossier with two ``dossier.paid`` events.

Recovery: from the party's return until everything owed from before it returned is done (every message
accepted; every paid dossier recorded), and for the payment rows also until the first payment started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from chaos.load import APPLICANT as LOAD_APPLICANT
from chaos.load import PROCEDURE as LOAD_PROCEDURE
from chaos.neighbours import UNIT, UnderLoad, _fault, _free_port, _wait_live
from chaos.probe import Probe, SteadyClients
from chaos.proxy import FaultProxy
from services.payment.domain import protocol
from shared.auth import DEV_SECRET, PAYMENT_DEVELOPMENT_SECRET, mint

ROOT = Path(__file__).resolve().parent.parent
Stack = Settings = Row = Any
GATEWAYS = ("sms", "zalo", "email")
# What the chaos rows give the notifier: no quiet hours and no daily cap (every receipt of the load is the
# same applicant's), and retries every 5, 10, 20, then 40 s instead of 10 s, 1 min, 5 min, 30 min, so
# that recovery is measured in seconds; 8 tries, as by default, outlive a 120 s outage.
NOTIFIER_SETTINGS = {
    "NOTIFY_QUIET_HOURS": "off",
    "NOTIFY_DAILY_CAP": "0",
    "NOTIFY_RETRY_DELAYS": "5,10,20,40",
    "NOTIFY_UNITS": "79",
}
PAYMENT_PROCEDURE = "1.012767"  # a commune's, with a fee (tests/integration/test_online_payment.py)
FEE_VND = 150_000
DEVELOPMENT_PASSPHRASE = "motcua-development-keys-not-for-production"  # the Makefile's default
CODE_IN_TEXT = re.compile(r"(?:Hồ sơ|Ho so) (\S+)")  # the SMS is unaccented


class _Processes:
    """Processes started beside the stack, their logs in its work directory; stopped by :meth:`close`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.processes: dict[str, subprocess.Popen] = {}
        self.proxies: list[FaultProxy] = []
        self.common = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AMQP_URI": stack.amqp_direct,
            "JWT_SECRET": DEV_SECRET,
            "MOTCUA_ENV": "development",
            "LOG_LEVEL": "WARNING",
        }

    def start(self, name: str, command: list[str], env: dict[str, str], url: str, live: str = "") -> None:
        log = open(self.stack.workdir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - the child owns it
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _wait_live(url, self.processes[name], name, path=live or "/health/live")

    def service(self, name: str, env: dict[str, str], url: str) -> None:
        subprocess.run([sys.executable, "-m", "shared.migrate", name], cwd=ROOT, env=env, check=True)
        self.start(name, [sys.executable, "-m", "shared.runner", name], env, url)

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for proxy in self.proxies:
            proxy.close()


class Messaging(_Processes):
    """The notifier and the SMS, Zalo and e-mail gateway simulators, each gateway behind a fault proxy."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.gateway_url: dict[str, str] = {}
        self.proxy: dict[str, FaultProxy] = {}
        self.notifier_url = f"http://127.0.0.1:{_free_port()}"
        try:
            for kind in GATEWAYS:
                port = _free_port()
                self.gateway_url[kind] = f"http://127.0.0.1:{port}"
                command = [sys.executable, "-m", "simulators.messaging", "--gateway", kind]
                self.start(
                    f"{kind}-gateway",
                    [*command, "--address", f"127.0.0.1:{port}"],
                    self.common,
                    self.gateway_url[kind],
                )
                self.proxy[kind] = FaultProxy("127.0.0.1", port)
                self.proxies.append(self.proxy[kind])
            env = {
                **self.common,
                "NOTIFIER_DATABASE_URL": f"sqlite:///{stack.workdir}/notifier.sqlite3",
                "NOTIFIER_ADDRESS": self.notifier_url.removeprefix("http://"),
                "DOSSIER_URL": stack.url("dossier-a"),
                **{f"{k.upper()}_GATEWAY_URL": f"http://127.0.0.1:{p.port}" for k, p in self.proxy.items()},
                **NOTIFIER_SETTINGS,
            }
            self.service("notifier", env, self.notifier_url)
        except BaseException:
            self.close()
            raise

    def held(self) -> dict[str, Counter[str]]:
        """Per gateway, the messages it accepted, by the dossier code their text names."""
        held = {}
        for kind, url in self.gateway_url.items():
            messages = requests.get(f"{url}/_control/received", timeout=30).json()["messages"]
            held[kind] = Counter(
                match.group(1).rstrip(".,")
                for m in messages
                if (match := CODE_IN_TEXT.search(m.get("text", "")))
            )
        return held

    def ready(self) -> dict:
        return requests.get(f"{self.notifier_url}/health/ready", timeout=10).json()


def notifier_row(stack: Stack, settings: Settings, row: Row, slow: bool, under_load: UnderLoad) -> Row:
    """The three messaging gateways down (or slow) for ``settings.neighbour_outage`` s."""
    family = stack.outside.get("messaging") or stack.outside.setdefault("messaging", Messaging(stack))
    before = stack.oracle()
    seen: dict[str, str] = {}
    caught_up: list[float] = []

    def missing(wanted: set[str]) -> set[str]:
        held = family.held()
        return {code for code in wanted if any(held[kind][code] == 0 for kind in GATEWAYS)}

    def fault() -> None:
        proxies = list(family.proxy.values())
        _fault_all(proxies, settings, slow)
        seen["readiness"] = json.dumps({k: v for k, v in family.ready()["checks"].items() if "gateway" in k})
        waiting, returned = stack.oracle() - before, time.monotonic()
        while time.monotonic() < returned + settings.settle_timeout:
            if not missing(waiting):
                caught_up.append(time.monotonic() - returned)
                return
            time.sleep(1.0)

    stack.load_consent = True
    try:
        under_load(stack, row, fault)
    finally:
        stack.load_consent = False
    filed = stack.oracle() - before
    deadline = time.monotonic() + settings.settle_timeout
    while (lost := missing(filed)) and time.monotonic() < deadline:
        time.sleep(1.0)
    held = family.held()
    twice = sum(1 for kind in GATEWAYS for code in filed if held[kind][code] > 1)
    row.neighbour_lost, row.neighbour_double = len(lost), twice
    recovery = f"{caught_up[0]:.1f} s" if caught_up else "not within the settle timeout"
    row.recovery = round(caught_up[0], 1) if caught_up else None
    sent = " ".join(f"{kind}:{sum(held[kind][c] > 0 for c in filed)}" for kind in GATEWAYS)
    row.note += (
        f" messages: {len(filed)} dossiers with consent, accepted by the gateways {sent}; lost {len(lost)},"
        f" sent twice {twice}; every dossier filed before they returned had its 3 messages {recovery} after;"
        f" notifier readiness at the end of the fault: {seen.get('readiness')};"
    )
    if gone := family.exited():
        row.note += f" UNEXPECTED: exited {gone};"
    return row


class Payments(_Processes):
    """The payment service and the payment platform simulator, the platform behind a fault proxy."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        port = _free_port()
        self.payment_url = f"http://127.0.0.1:{port}"
        platform_port = _free_port()
        self.platform_url = f"http://127.0.0.1:{platform_port}"
        try:
            self.start(
                "payment-platform",
                [
                    sys.executable,
                    "-m",
                    "simulators.payment_platform",
                    "--address",
                    f"127.0.0.1:{platform_port}",
                    "--callback-url",
                    f"{self.payment_url}/api/v1/platform/confirmations",
                    "--secret",
                    PAYMENT_DEVELOPMENT_SECRET,
                ],
                self.common,
                self.platform_url,
            )
            self.proxy = FaultProxy("127.0.0.1", platform_port)
            self.proxies.append(self.proxy)
            env = {
                **self.common,
                "PAYMENT_DATABASE_URL": f"sqlite:///{stack.workdir}/payment.sqlite3",
                "PAYMENT_ADDRESS": f"127.0.0.1:{port}",
                "PAYMENT_PLATFORM_URL": f"http://127.0.0.1:{self.proxy.port}",
                "PAYMENT_PARTNER_SECRET": PAYMENT_DEVELOPMENT_SECRET,
                "DOSSIER_URL": stack.url("dossier-a"),
                "PAYMENT_RECONCILE_SECONDS": "2",
                "PAYMENT_QUERY_AFTER_SECONDS": "10",
                "PAYMENT_PER_MINUTE": "6000",
                "PAYMENT_UNITS": "79",
            }
            self.service("payment", env, self.payment_url)
        except BaseException:
            self.close()
            raise

    def paid_at_platform(self) -> set[str]:
        """The references the platform holds as paid."""
        transactions = requests.get(f"{self.platform_url}/_control/received", timeout=30).json()[
            "transactions"
        ]
        return {ref for ref, held in transactions.items() if held.get("state") == protocol.PAID}

    def ready(self) -> dict:
        return requests.get(f"{self.payment_url}/health/ready", timeout=10).json()


class Citizens(SteadyClients):
    """Payments by ``workers`` citizens at ``rate`` a second in all: a dossier asked for its fee, the payment
    started (retried after its Retry-After until 201) and paid at the platform."""

    def __init__(self, stack: Stack, family: Payments, rate: float, workers: int = 4) -> None:
        super().__init__(rate, workers)
        self.stack, self.family = stack, family
        self.answers: Counter[str] = Counter()
        self.paid: dict[str, str] = {}  # reference -> dossier code
        self.slowest = 0.0  # the longest wait for an answer to a start, seconds
        self.started_at: list[float] = []
        self.failures: Counter[str] = Counter()
        token = mint(DEV_SECRET, sub="chaos-desk", roles=["desk_officer"], units=[UNIT])
        self.desk = {"Authorization": f"Bearer {token}"}
        self.start()

    def _awaiting_payment(self, session: requests.Session) -> tuple[str, str] | None:
        dossier = self.stack.url("dossier-a")
        body = {
            "procedure_code": PAYMENT_PROCEDURE,
            "receiving_unit": UNIT,
            "applicant": {"full_name": "Nguyễn Văn An", "id_number": "079203009876"},
        }
        filed = session.post(
            f"{dossier}/api/v1/dossiers",
            json=body,
            headers={**self.desk, "Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        if filed.status_code != 201:
            self.failures[f"file {filed.status_code}"] += 1
            return None
        code, secret = filed.json()["code"], filed.json()["lookup"]["secret"]
        for action, body in (("start_processing", {}), ("request_payment", {"amount_vnd": FEE_VND})):
            acted = session.post(
                f"{dossier}/api/v1/dossiers/{code}/actions/{action}", json=body, headers=self.desk, timeout=30
            )
            if acted.status_code != 200:
                self.failures[f"{action} {acted.status_code}"] += 1
                return None
        return code, secret

    def one(self, session: requests.Session) -> None:
        try:
            awaiting = self._awaiting_payment(session)
        except requests.RequestException as exc:
            self.failures[type(exc).__name__] += 1
            return
        if awaiting is None:
            return
        code, secret = awaiting
        for attempt in range(200):
            if self.stop.is_set() and attempt > 60:
                return
            started = time.monotonic()
            try:
                response = session.post(
                    f"{self.family.payment_url}/api/v1/payments",
                    json={"code": code, "secret": secret},
                    timeout=60,
                )
                outcome, wait = str(response.status_code), float(response.headers.get("Retry-After") or 1)
            except requests.RequestException as exc:
                outcome, wait = type(exc).__name__, 1.0
            with self.lock:
                self.answers[outcome] += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
            if outcome == "201":
                reference = response.json()["reference"]
                paid = requests.post(
                    f"{self.family.platform_url}/_control/pay",
                    json={"reference": reference, "outcome": "paid"},
                    timeout=30,
                )
                with self.lock:
                    self.started_at.append(time.monotonic())
                    if paid.status_code == 200:
                        self.paid[reference] = code
                    else:
                        self.failures[f"pay {paid.status_code}"] += 1
                return
            time.sleep(min(wait, 5.0))


def payment_row(stack: Stack, settings: Settings, row: Row, slow: bool, under_load: UnderLoad) -> Row:
    """The payment platform down (or slow) for ``settings.neighbour_outage`` s, for the payment service."""
    family = stack.outside.get("payments") or stack.outside.setdefault("payments", Payments(stack))
    citizens = Citizens(stack, family, settings.pickup_rate / 2)
    seen: dict[str, str] = {}
    returned = [0.0]
    caught_up: list[float] = []

    def recorded() -> tuple[set[str], Counter[str]]:
        """Dossiers the dossier database holds paid: back in processing, and their dossier.paid events."""
        with stack.engines["dossier"].connect() as connection:
            events = Counter(
                connection.execute(
                    sa.text("SELECT subject FROM dossier_outbox WHERE event_type = 'vn.motcua.dossier.paid'")
                ).scalars()
            )
        return set(events), events

    def owed() -> set[str]:
        with citizens.lock:
            paid = dict(citizens.paid)
        platform = family.paid_at_platform()
        return {code for ref, code in paid.items() if ref in platform} - recorded()[0]

    def fault() -> None:
        _fault(family.proxy, settings, slow)
        seen["readiness"] = json.dumps(family.ready()["checks"].get("neighbour payment_platform"))
        returned[0] = time.monotonic()
        while time.monotonic() < returned[0] + settings.settle_timeout:
            if not owed():
                caught_up.append(time.monotonic() - returned[0])
                return
            time.sleep(1.0)

    under_load(stack, row, fault)
    citizens.finish()
    deadline = time.monotonic() + settings.settle_timeout
    while (lost := owed()) and time.monotonic() < deadline:
        time.sleep(1.0)
    codes, events = recorded()
    mine = set(citizens.paid.values())
    twice = sum(1 for code in mine if events[code] > 1)
    row.neighbour_lost, row.neighbour_double = len(lost), twice
    after = [t for t in citizens.started_at if t >= returned[0]]
    first = f"{after[0] - returned[0]:.1f} s" if after else "none started after"
    recovery = f"{caught_up[0]:.1f} s" if caught_up else "not within the settle timeout"
    # Back for the citizens once a payment starts again and every one paid before is recorded.
    row.recovery = round(max(caught_up[0], after[0] - returned[0]), 1) if caught_up and after else None
    answers = " ".join(f"{k}:{v}" for k, v in sorted(citizens.answers.items()))
    failures = " ".join(f"{k}:{v}" for k, v in sorted(citizens.failures.items())) or "none"
    row.note += (
        f" payments: {len(citizens.paid)} started and paid at the platform (starts {answers}, the slowest"
        f" answer {citizens.slowest:.1f} s), recorded"
        f" {len(mine & codes)}, lost {len(lost)}, recorded twice {twice}; the first payment started {first}"
        f" after the platform returned, every payment made before it was recorded {recovery} after;"
        f" payment readiness at the end of the fault: {seen.get('readiness')};"
        f" the load's own failures: {failures};"
    )
    if gone := family.exited():
        row.note += f" UNEXPECTED: exited {gone};"
    return row


def _fault_all(proxies: list[FaultProxy], settings: Settings, slow: bool) -> None:
    for proxy in proxies:
        if slow:
            proxy.answer_delay = settings.neighbour_slow
        else:
            proxy.cut()
    time.sleep(settings.neighbour_outage)
    for proxy in proxies:
        if slow:
            proxy.answer_delay = 0.0
        else:
            proxy.restore()


class Signing(_Processes):
    """The e-signature service and the test timestamp authority, the TSA behind a fault proxy."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        pki = stack.workdir / "pki"
        self.common["ESIGN_KEY_PASSPHRASE"] = os.environ.get("ESIGN_KEY_PASSPHRASE") or DEVELOPMENT_PASSPHRASE
        tsa_port, port = _free_port(), _free_port()
        self.esign_url = f"http://127.0.0.1:{port}"
        try:
            # The TSA makes the test PKI the e-signature service then uses: it starts first.
            command = [
                sys.executable,
                "-m",
                "services.esign.tsa",
                "--port",
                str(tsa_port),
                "--pki-dir",
                str(pki),
            ]
            self.start("tsa", command, self.common, f"http://127.0.0.1:{tsa_port}", live="/")
            self.proxy = FaultProxy("127.0.0.1", tsa_port)
            self.proxies.append(self.proxy)
            env = {
                **self.common,
                "ESIGN_DATABASE_URL": f"sqlite:///{stack.workdir}/esign.sqlite3",
                "ESIGN_ADDRESS": f"127.0.0.1:{port}",
                "ESIGN_PKI_DIR": str(pki),
                "ESIGN_STORE_DIR": str(stack.workdir / "documents"),
                "ESIGN_KEYSTORE": "files",
                "ESIGN_TSA_URL": f"http://127.0.0.1:{self.proxy.port}/",
                "ESIGN_TSA_CIRCUIT_COOLDOWN_SECONDS": "10",  # as chaos/neighbours.py's POLICY
            }
            self.service("esign", env, self.esign_url)
        except BaseException:
            self.close()
            raise

    def ready(self) -> dict:
        return requests.get(f"{self.esign_url}/health/ready", timeout=30).json()


class Signers(SteadyClients):
    """Results signed by the leader and sealed by the clerk, ``workers`` at a time at ``rate`` a second in
    all: a dossier decided at the desk; its signing request (made from ``dossier.decided``); the signature,
    then the seal, each retried after the ``Retry-After`` it is given (at most 5 s) until done."""

    join_seconds = 600.0  # a signature and a seal under way may wait out a slow TSA

    def __init__(self, stack: Stack, family: Signing, rate: float, workers: int = 2) -> None:
        super().__init__(rate, workers)
        self.stack, self.family = stack, family
        self.answers: Counter[str] = Counter()  # "signature 200", "seal 503", …
        self.sealed: set[str] = set()
        self.slowest = 0.0  # the longest wait for an answer to a signature or a seal, seconds
        self.signed_at: list[float] = []
        self.failures: Counter[str] = Counter()
        roles = ("desk_officer", "handling_officer", "leader", "clerk")
        tokens = {
            role: mint(DEV_SECRET, sub=f"{role}.chaos@{UNIT}", roles=[role], units=[UNIT]) for role in roles
        }
        self.as_role = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
        self.start()

    def _decided(self, session: requests.Session) -> str | None:
        dossier = f"{self.stack.url('dossier-a')}/api/v1/dossiers"
        body = {"procedure_code": LOAD_PROCEDURE, "receiving_unit": UNIT, "applicant": LOAD_APPLICANT}
        headers = {**self.as_role["desk_officer"], "Idempotency-Key": str(uuid.uuid4())}
        filed = session.post(dossier, json=body, headers=headers, timeout=30)
        if filed.status_code != 201:
            self.failures[f"file {filed.status_code}"] += 1
            return None
        code = filed.json()["code"]
        for action, role, body in (
            ("start_processing", "desk_officer", {}),
            ("appraise", "handling_officer", {"opinion": "Hồ sơ hợp lệ"}),
            ("decide", "leader", {"decision": "approved"}),
        ):
            acted = session.post(
                f"{dossier}/{code}/actions/{action}", json=body, headers=self.as_role[role], timeout=30
            )
            if acted.status_code != 200:
                self.failures[f"{action} {acted.status_code}"] += 1
                return None
        return code

    def _request(self, session: requests.Session, path: str) -> dict | None:
        found = session.get(
            f"{self.family.esign_url}/api/v1/{path}", headers=self.as_role["leader"], timeout=60
        )
        return found.json() if found.status_code == 200 else None

    def _step(self, session: requests.Session, request: dict, step: str, role: str, done: str) -> dict | None:
        """POST the step until the request reached ``done`` (the answer, or a re-read after a failure)."""
        for attempt in range(200):
            if self.stop.is_set() and attempt > 60:
                return None
            body = {"document_sha256": request["document_sha256"], "signer_name": "Nguyễn Văn An"}
            started = time.monotonic()
            try:
                answer = session.post(
                    f"{self.family.esign_url}/api/v1/signing-requests/{request['id']}/{step}",
                    json=body,
                    headers=self.as_role[role],
                    timeout=60,
                )
                outcome, wait = str(answer.status_code), float(answer.headers.get("Retry-After") or 1)
            except requests.RequestException as exc:
                answer, outcome, wait = None, type(exc).__name__, 1.0
            with self.lock:
                self.answers[f"{step} {outcome}"] += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
            if answer is not None and answer.status_code == 200:
                return answer.json()
            # Done by an attempt whose answer did not arrive? Then the request says so.
            again = self._request(session, f"signing-requests/{request['id']}")
            if again is not None and again.get("stage") == done:
                return again
            if again is not None:
                request = again
            time.sleep(min(wait, 5.0))
        return None

    def one(self, session: requests.Session) -> None:
        try:
            code = self._decided(session)
            if code is None:
                return
            deadline, request = time.monotonic() + 120, None
            while request is None and time.monotonic() < deadline:
                request = self._request(session, f"results/{code}/signing-request")
                if request is None:
                    time.sleep(0.5)
            if request is None:
                self.failures["no signing request in 120 s"] += 1
                return
            signed = self._step(session, request, "signature", "leader", "signed")
            if signed is None:
                return
            with self.lock:
                self.signed_at.append(time.monotonic())
            if self._step(session, signed, "seal", "clerk", "sealed") is not None:
                with self.lock:
                    self.sealed.add(code)
        except requests.RequestException as exc:
            self.failures[type(exc).__name__] += 1


def esign_row(stack: Stack, settings: Settings, row: Row, slow: bool, under_load: UnderLoad) -> Row:
    """The timestamp authority down (or slow) for ``settings.neighbour_outage`` s, for the e-signature
    service; its /health/live probed throughout (a TSA call must not hold the other requests)."""
    family = stack.outside.get("signing") or stack.outside.setdefault("signing", Signing(stack))
    signers = Signers(stack, family, settings.pickup_rate / 4)
    live = Probe(f"{family.esign_url}/health/live")
    seen: dict[str, str] = {}
    returned = [0.0]

    def fault() -> None:
        _fault(family.proxy, settings, slow)
        seen["readiness"] = json.dumps(family.ready()["checks"].get("neighbour tsa"))
        returned[0] = time.monotonic()

    try:
        under_load(stack, row, fault)
        signers.finish()
    finally:
        probed = live.stop()
    time.sleep(2.0)
    deadline = time.monotonic() + settings.settle_timeout
    while True:
        with stack.engines["dossier"].connect() as connection:
            events = Counter(
                (subject, kind)
                for subject, kind in connection.execute(
                    sa.text(
                        "SELECT subject, event_type FROM dossier_outbox WHERE event_type IN "
                        "('vn.motcua.dossier.signed', 'vn.motcua.dossier.stamped')"
                    )
                )
            )
        lost = {code for code in signers.sealed if not events[(code, "vn.motcua.dossier.stamped")]}
        if not lost or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    twice = sum(1 for count in events.values() if count > 1)
    row.neighbour_lost, row.neighbour_double = len(lost), twice
    after = [t for t in signers.signed_at if t >= returned[0]]
    recovery = round(after[0] - returned[0], 1) if after else None
    row.recovery = recovery
    answers = " ".join(f"{k}:{v}" for k, v in sorted(signers.answers.items()))
    failures = " ".join(f"{k}:{v}" for k, v in sorted(signers.failures.items())) or "none"
    row.live_slowest = round(live.slowest, 2)
    first = "none" if recovery is None else f"{recovery:.1f} s"
    row.note += (
        f" signatures: {len(signers.sealed)} results signed and sealed ({answers}; the slowest answer"
        f" {signers.slowest:.1f} s); recorded by the dossier"
        f" service {len(signers.sealed) - len(lost)}, lost {len(lost)}, a step recorded twice {twice};"
        f" the first signature {first} after the TSA returned;"
        f" esign /health/live {probed}, slowest {row.live_slowest:g} s;"
        f" esign readiness at the end of the fault: {seen.get('readiness')};"
        f" the load's own failures: {failures};"
    )
    if gone := family.exited():
        row.note += f" UNEXPECTED: exited {gone};"
    return row
