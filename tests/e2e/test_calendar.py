"""Issue 17, time as a test input: the whole system through 29 December 2026 - 12 February 2027.

Every service (dossier, postal, esign, metrics), the postal operator simulator and the test TSA run as
processes on one PostgreSQL database and the broker, with ``MOTCUA_CLOCK_FILE`` naming one file
(shared/clock.py): the test moves that file's instant and every process's "now" moves with it. Dossiers
are filed, supplemented, stopped, withdrawn, decided, signed, sealed, delivered and returned on both
sides of the new year and of Tết 2027; the scenario runs once (module fixture) and each test below
checks one rule on what it left, so a failing rule does not hide the others.

The calendar, derived by hand (holidays.VN for 2027: New Year's Day Fri 1 Jan; Tết Thu 4 - Wed 10 Feb,
i.e. 29 Tết, New Year's Eve, the first to fifth days; no swapped working Saturday in this stretch):

    Dec 2026  Tue 29 W   Wed 30 W   Thu 31 W
    Jan 2027  Fri 1 holiday, Sat 2, Sun 3 off; Mon 4 - Fri 8 W; Mon 11 - Fri 15 W; ... every weekday W
    Feb 2027  Mon 1 W   Tue 2 W   Wed 3 W   Thu 4 - Wed 10 off (Tết and its weekend)   Thu 11 W   Fri 12 W
              Mon 15 W  Tue 16 W

The procedure is 1.004873 (commune level, 3 working days, counter and postal, postal return, sign and
stamp steps). An appointment is close of office (17:00) on the 3rd working day after the start day;
the start day is the filing day if it is a working day and the filing is before 15:00, else the next
working day (the start day itself is not counted). Times below are Vietnam time (UTC+7).

    A  counter  Tue 29 Dec 09:00  start Tue 29 -> Wed 30, Thu 31, Mon 4  due Mon 4 Jan  resolved Wed 30: early
    B  postal   Wed 30 Dec 15:30 (hand-over record, after the cut-off) start Thu 31 -> Mon 4, Tue 5, Wed 6;
                supplement asked Thu 31, complete Mon 4 Jan 09:00: filed again then, start Mon 4 ->
                Tue 5, Wed 6, Thu 7   due Thu 7 Jan   resolved Wed 6 Jan: early; delivered by post Thu 7
    C  counter  Thu 31 Dec 16:00 (after the cut-off) start Mon 4 -> Tue 5, Wed 6, Thu 7   due Thu 7 Jan;
                decided Fri 1 Jan 00:30 (2026-12-31T17:30Z); resolved Fri 8 Jan: late
    D  counter  Fri 1 Jan 00:10 (2026-12-31T17:10Z, a holiday) start Mon 4 -> 5, 6, 7   due Thu 7 Jan;
                stopped Tue 5 10:00, resumed Thu 7 10:00: two working days (Tue->Wed, Wed->Thu) move it
                to Fri 8, Mon 11   due Mon 11 Jan   resolved Mon 11 Jan: on time
    E  counter  Mon 4 Jan 08:00  start Mon 4 -> 5, 6, 7   due Thu 7 Jan   withdrawn Tue 5 Jan
    I  postal   Mon 1 Feb 10:00 (hand-over record; pickup ordered 08:00) start Mon 1 -> Tue 2, Wed 3, Thu 11
                due Thu 11 Feb   resolved Wed 3 Feb: early; the delivery fails over Tết, returned to the
                desk, handed over at the counter Thu 11 Feb
    J  counter  Mon 1 Feb 09:00  start Mon 1 -> Tue 2, Wed 3, Thu 11   due Thu 11 Feb   in process on 12 Feb
    F  counter  Tue 2 Feb 10:00  start Tue 2 -> Wed 3, Thu 11, Fri 12  due Fri 12 Feb  resolved 12th: on time
    G  counter  Wed 3 Feb 14:59  start Wed 3 -> Thu 11, Fri 12, Mon 15  due Mon 15 Feb  in process
    H  counter  Wed 3 Feb 15:00 (at the cut-off: not before it) start Thu 11 -> 12, 15, 16  due Tue 16 Feb

Dossier codes are {unit}-{YYMMDD}-{NNNN}, the Vietnam-local date of registration and a per-unit daily
count; document numbers restart at 1 on 1 January Vietnam time (C's decision, at 17:30Z on 31 December,
is the first of 2027).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared import clock
from shared.auth import DEV_SECRET
from shared.units import UnitRegistry
from tests.conftest import DATABASES, _postgres_database, bearer, free_port
from tests.support.broker import wait_for
from tests.support.esign import PASSPHRASE, tsa_process

# The scenario runs in the first test's time: about a minute, more while a step waits for what never comes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]
ROOT = Path(__file__).resolve().parents[2]
VN = timezone(timedelta(hours=7))
UNIT = UnitRegistry.default().children("79")[0].code
PROCEDURE = "1.004873"
PORTAL = bearer("portal", UNIT, sub="portal-hcm")
OPERATOR = bearer("postal_operator", "79", sub="vnpost-hcm")
DESK = bearer("desk_officer", UNIT)
HANDLING = bearer("handling_officer", UNIT)
LEADER = bearer("leader", UNIT, sub=f"leader.an@{UNIT}")
CLERK = bearer("clerk", UNIT, sub=f"clerk.binh@{UNIT}")
AUDITOR = bearer("auditor", "79")
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234", "phone": "0901234567"}
PICKUP = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi, phường Bến Thành"}


def vn(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026 if month == 12 else 2027, month, day, hour, minute, tzinfo=VN)


def close_of_office(month: int, day: int) -> datetime:
    return vn(month, day, 17)


START = vn(12, 29, 8)
SERVICES = ("dossier", "postal", "esign", "metrics")


@dataclass
class Dossier:
    key: str
    code: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)  # what the system answered, by step
    failed: str | None = None  # the first step that failed; later steps of this dossier are skipped


class System:
    def __init__(self, env: dict[str, str], clock_file: Path) -> None:
        self.dossier = f"http://{env['DOSSIER_ADDRESS']}/api/v1"
        self.postal = f"http://{env['POSTAL_ADDRESS']}/api/v1"
        self.esign = f"http://{env['ESIGN_ADDRESS']}/api/v1"
        self.metrics = f"http://{env['METRICS_ADDRESS']}"
        self.operator = env["POSTAL_OPERATOR_URL"]
        self.clock_file = clock_file
        self.dossiers: dict[str, Dossier] = {}

    # -- time -------------------------------------------------------------------------------------------
    def at(self, instant: datetime) -> None:
        clock.move_to(self.clock_file, instant)

    # -- HTTP -------------------------------------------------------------------------------------------
    @staticmethod
    def _ok(response: requests.Response, *expected: int) -> dict:
        assert response.status_code in (expected or (200,)), (response.request.url, response.text)
        return response.json()

    def act(self, code: str, action: str, headers: dict, body: dict | None = None) -> dict:
        url = f"{self.dossier}/dossiers/{code}/actions/{action}"
        return self._ok(requests.post(url, json=body or {}, headers=headers, timeout=30))

    def dossier_of(self, code: str) -> dict:
        return self._ok(requests.get(f"{self.dossier}/dossiers/{code}", headers=DESK, timeout=10))

    def audit(self, code: str) -> list[dict]:
        return self._ok(requests.get(f"{self.dossier}/dossiers/{code}/audit", headers=DESK, timeout=10))[
            "entries"
        ]

    def shipments(self, code: str, direction: str) -> list[dict]:
        r = requests.get(f"{self.postal}/shipments/{code}", headers=DESK, timeout=10)
        return [s for s in r.json()["results"] if s["direction"] == direction] if r.status_code == 200 else []

    def scenario(self, *names: str) -> None:
        r = requests.post(f"{self.operator}/_control/scenarios", json={"scenarios": list(names)}, timeout=10)
        assert r.status_code == 200, r.text

    def exposed(self, name: str, label: str | None = None) -> dict[str | None, float]:
        """A family's samples on /metrics, summed over every label but ``label``."""
        sums: dict[str | None, float] = defaultdict(float)
        text = requests.get(f"{self.metrics}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.value:
                    sums[sample.labels.get(label) if label else None] += sample.value
        return dict(sums)

    def report(self, first: str, last: str, **query: str) -> dict:
        params = {"unit": UNIT, "from": first, "to": last, **query}
        r = requests.get(f"{self.metrics}/api/v1/reports/sla", params=params, headers=AUDITOR, timeout=10)
        return self._ok(r)

    # -- steps ------------------------------------------------------------------------------------------
    def file(self, key: str) -> None:
        body = {"procedure_code": PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT}
        r = requests.post(f"{self.dossier}/dossiers", json=body, headers=DESK, timeout=30)
        filed = self._ok(r, 201)
        self.dossiers[key].code = filed["code"]
        self.dossiers[key].seen["filed"] = filed

    def order_pickup(self, key: str) -> None:
        body = {
            "procedure_code": PROCEDURE,
            "receiving_unit": UNIT,
            "applicant": APPLICANT,
            "pickup": PICKUP,
            "documents": [{"name": "Tờ khai", "copies": 1}],
            "return_method": "postal",
        }
        headers = {**PORTAL, "Idempotency-Key": f"pickup-{key}"}
        pickup = self._ok(
            requests.post(f"{self.postal}/pickups", json=body, headers=headers, timeout=30), 201
        )
        self.dossiers[key].code = pickup["dossier_code"]
        self.dossiers[key].seen["pickup"] = pickup
        arrived = wait_for(lambda: self.shipments(pickup["dossier_code"], "pickup"), timeout=20)
        assert arrived, "no pickup shipment"
        delivered = wait_for(
            lambda: self.shipments(pickup["dossier_code"], "pickup")[-1]["status"] == "delivered", timeout=30
        )
        assert delivered, self.shipments(pickup["dossier_code"], "pickup")

    def _co_sign(self, consignment: str, direction: str, decisions: list[dict]) -> dict:
        body = {
            "direction": direction,
            "receiving_unit": UNIT,
            "items": [{"consignment": consignment, "packages_counted": 1}],
        }
        record = self._ok(
            requests.post(f"{self.postal}/handover-records", json=body, headers=OPERATOR, timeout=10), 201
        )
        url = f"{self.postal}/handover-records/{record['id']}/signatures"
        self._ok(requests.post(url, json={}, headers=OPERATOR, timeout=10))
        return self._ok(requests.post(url, json={"decisions": decisions}, headers=DESK, timeout=10))

    def hand_over_pickup(self, key: str) -> None:
        dossier = self.dossiers[key]
        consignment = dossier.seen["pickup"]["consignment"]
        record = self._co_sign(consignment, "pickup", [{"consignment": consignment, "outcome": "received"}])
        dossier.seen["pickup_record"] = record
        received = wait_for(
            lambda: (d := self.dossier_of(dossier.code)) and d["status"] == 2 and d, timeout=20
        )
        assert received, self.dossier_of(dossier.code)
        dossier.seen["filed"] = received

    def process(self, key: str) -> None:
        code = self.dossiers[key].code
        self.act(code, "start_processing", DESK)
        self.act(code, "appraise", HANDLING, {"opinion": "Hồ sơ hợp lệ"})

    def decide_sign_seal(self, key: str) -> None:
        dossier = self.dossiers[key]
        self.act(dossier.code, "decide", LEADER, {"decision": "approved"})

        def opened() -> dict | None:
            r = requests.get(
                f"{self.esign}/results/{dossier.code}/signing-request", headers=LEADER, timeout=10
            )
            return r.json() if r.status_code == 200 else None

        request = wait_for(opened, timeout=20)
        assert request, "the decision opened no signing request"
        dossier.seen["signing_request"] = request
        for step, headers, name in (("signature", LEADER, "Nguyễn Văn An"), ("seal", CLERK, "Trần Thị Bình")):
            body = {"document_sha256": request["document_sha256"], "signer_name": name}
            url = f"{self.esign}/signing-requests/{request['id']}/{step}"
            request = self._ok(requests.post(url, json=body, headers=headers, timeout=60))
        dossier.seen["sealed"] = request
        recorded = wait_for(
            lambda: {"sign", "stamp"} <= {e["action"] for e in self.audit(dossier.code)}, timeout=30
        )
        assert recorded, self.audit(dossier.code)

    def resolve(self, key: str) -> None:
        self.dossiers[key].seen["resolved"] = self.act(self.dossiers[key].code, "resolve", HANDLING)

    def return_at_counter(self, key: str) -> None:
        # No method given: the desk's return is a counter return, whatever was chosen at filing.
        self.dossiers[key].seen["returned"] = self.act(self.dossiers[key].code, "return", DESK)

    def ordered_not_handed_over(self, key: str) -> None:
        """The delivery is ordered; without the co-signed record nothing moves, however long it waits."""
        dossier = self.dossiers[key]
        delivery = wait_for(lambda: self.shipments(dossier.code, "delivery")[-1:], timeout=30)
        assert delivery, "no delivery opened"
        time.sleep(3)  # ten of the simulator's steps, in real seconds
        dossier.seen["before_record"] = {
            "status": self.dossier_of(dossier.code)["status"],
            "shipment": self.shipments(dossier.code, "delivery")[-1]["status"],
        }

    def deliver(self, key: str) -> None:
        """The sealed result leaves the desk on a co-signed delivery record; delivered, it is returned."""
        dossier = self.dossiers[key]
        delivery = wait_for(lambda: self.shipments(dossier.code, "delivery")[-1:], timeout=30)
        assert delivery, "no delivery opened"
        consignment = delivery[0]["consignment"]
        dossier.seen["delivery_record"] = self._co_sign(consignment, "delivery", [])
        returned = wait_for(
            lambda: (d := self.dossier_of(dossier.code)) and d["status"] == 10 and d, timeout=30
        )
        assert returned, (self.dossier_of(dossier.code), self.shipments(dossier.code, "delivery"))
        dossier.seen["returned"] = returned
        dossier.seen["delivery"] = self.shipments(dossier.code, "delivery")[-1]

    def delivery_fails(self, key: str) -> None:
        """Two failed attempts over Tết: the result comes back to the desk (status 9)."""
        dossier = self.dossiers[key]
        delivery = wait_for(lambda: self.shipments(dossier.code, "delivery")[-1:], timeout=30)
        assert delivery, "no delivery opened"
        dossier.seen["delivery_record"] = self._co_sign(delivery[0]["consignment"], "delivery", [])
        back = wait_for(
            lambda: self.shipments(dossier.code, "delivery")[-1]["status"] == "returned_to_sender", timeout=40
        )
        assert back, self.shipments(dossier.code, "delivery")
        assert self.dossier_of(dossier.code)["status"] == 9

    def snapshot(self, key: str, name: str) -> None:
        self.dossiers[key].seen[name] = self.dossier_of(self.dossiers[key].code)


def _timeline(s: System) -> list[tuple[datetime, str, Callable[[], None]]]:
    supplement = {"items": ["Bản sao giấy khai sinh"], "reason": "Thiếu bản sao giấy khai sinh"}
    stop = {"reason": "Chờ kết quả xác minh của cơ quan khác"}
    return [
        (vn(12, 29, 9), "A", lambda: s.file("A")),
        (vn(12, 29, 9, 5), "A", lambda: s.process("A")),
        (vn(12, 30, 8), "B", lambda: (s.scenario("happy", "happy"), s.order_pickup("B"))),
        (vn(12, 30, 10), "A", lambda: s.decide_sign_seal("A")),
        (vn(12, 30, 11), "A", lambda: s.resolve("A")),
        (vn(12, 30, 15, 30), "B", lambda: s.hand_over_pickup("B")),
        (vn(12, 31, 9), "A", lambda: s.return_at_counter("A")),
        (vn(12, 31, 9, 30), "B", lambda: s.act(s.dossiers["B"].code, "start_processing", DESK)),
        (vn(12, 31, 10), "B", lambda: s.act(s.dossiers["B"].code, "request_supplement", DESK, supplement)),
        (vn(12, 31, 16), "C", lambda: s.file("C")),
        (vn(12, 31, 16, 5), "C", lambda: s.process("C")),
        (datetime(2026, 12, 31, 17, 10, tzinfo=UTC), "D", lambda: s.file("D")),
        (datetime(2026, 12, 31, 17, 30, tzinfo=UTC), "C", lambda: s.decide_sign_seal("C")),
        (vn(1, 4, 8), "E", lambda: s.file("E")),
        (vn(1, 4, 9), "B", lambda: s.act(s.dossiers["B"].code, "supplement", DESK)),
        (vn(1, 4, 9, 5), "B", lambda: s.snapshot("B", "supplemented")),
        (vn(1, 4, 10), "D", lambda: s.process("D")),
        (
            vn(1, 5, 9),
            "E",
            lambda: s.act(s.dossiers["E"].code, "withdraw", DESK, {"reason": "Người nộp rút"}),
        ),
        (vn(1, 5, 10), "D", lambda: s.act(s.dossiers["D"].code, "stop", HANDLING, stop)),
        (vn(1, 6, 9), "B", lambda: s.act(s.dossiers["B"].code, "appraise", HANDLING, {"opinion": "Đủ"})),
        (vn(1, 6, 10), "B", lambda: s.decide_sign_seal("B")),
        (vn(1, 6, 11), "B", lambda: s.resolve("B")),
        (vn(1, 6, 11, 5), "B", lambda: s.ordered_not_handed_over("B")),
        (vn(1, 7, 9), "B", lambda: s.deliver("B")),
        (vn(1, 7, 10), "D", lambda: s.act(s.dossiers["D"].code, "resume", HANDLING)),
        (vn(1, 7, 10, 5), "D", lambda: s.snapshot("D", "resumed")),
        (vn(1, 8, 9), "C", lambda: s.resolve("C")),
        (vn(1, 8, 9, 30), "C", lambda: s.return_at_counter("C")),
        (vn(1, 11, 9), "D", lambda: s.decide_sign_seal("D")),
        (vn(1, 11, 16), "D", lambda: s.resolve("D")),
        (vn(1, 12, 9), "D", lambda: s.return_at_counter("D")),
        (vn(2, 1, 8), "I", lambda: (s.scenario("happy", "returned_to_sender"), s.order_pickup("I"))),
        (vn(2, 1, 9), "J", lambda: s.file("J")),
        (vn(2, 1, 10), "I", lambda: s.hand_over_pickup("I")),
        (vn(2, 1, 10, 30), "I", lambda: s.process("I")),
        (vn(2, 2, 10), "F", lambda: s.file("F")),
        (vn(2, 2, 10, 5), "F", lambda: s.process("F")),
        (vn(2, 3, 10), "F", lambda: s.decide_sign_seal("F")),
        (vn(2, 3, 11), "I", lambda: s.decide_sign_seal("I")),
        (vn(2, 3, 14, 59), "G", lambda: s.file("G")),
        (vn(2, 3, 15), "H", lambda: s.file("H")),
        (vn(2, 3, 16), "I", lambda: s.resolve("I")),
        (vn(2, 5, 9), "I", lambda: s.delivery_fails("I")),
        (vn(2, 11, 9), "I", lambda: s.return_at_counter("I")),
        (vn(2, 12, 9), "F", lambda: s.resolve("F")),
        (vn(2, 12, 9, 30), "F", lambda: s.return_at_counter("F")),
    ]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Output to a file: a pipe nobody reads during the scenario fills up and stalls the process.
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def _processes(env: dict[str, str], simulator_address: str, folder: Path) -> list[subprocess.Popen]:
    processes = []
    for name in SERVICES:
        migrate = [sys.executable, "-m", "shared.migrate", name]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True)
        processes.append(_start([sys.executable, "-m", "shared.runner", name], env, folder / f"{name}.log"))
    simulator = [
        sys.executable,
        "-m",
        "simulators.postal_operator",
        "--address",
        simulator_address,
        "--webhook-url",
        f"http://{env['POSTAL_ADDRESS']}/api/v1/webhooks/vnpost",
        "--step-seconds",
        "0.3",
    ]
    processes.append(_start(simulator, env, folder / "simulator.log"))
    return processes


@pytest.fixture(scope="module")
def run(request, vhost_pipeline, tmp_path_factory):
    """The scenario, run once on PostgreSQL (several processes on one database, as deployed)."""
    if "postgresql" not in DATABASES:
        pytest.skip("the calendar runs on PostgreSQL (MOTCUA_TEST_DATABASES leaves it out)")
    folder = tmp_path_factory.mktemp("calendar")
    clock_file = folder / "clock"
    clock.move_to(clock_file, START)  # before any process starts: the test PKI is issued at this time
    broker = urlsplit(request.config.getoption("RABBIT_AMQP_URI"))
    database = _postgres_database()
    database_url = next(database)
    with vhost_pipeline.get() as vhost:
        simulator_address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "MOTCUA_ENV": "development",
            "MOTCUA_CLOCK_FILE": str(clock_file),
            "AMQP_URI": f"{broker.scheme}://{broker.netloc}/{vhost}",
            "JWT_SECRET": DEV_SECRET,
            "PYTHONPATH": str(ROOT),
            "OUTBOX_POLL_SECONDS": "0.2",
            "POSTAL_WATCH_SECONDS": "1",
            "POSTAL_OPERATOR_URL": f"http://{simulator_address}",
            "ESIGN_KEY_PASSPHRASE": PASSPHRASE,
            "ESIGN_PKI_DIR": str(folder / "pki"),
            "ESIGN_STORE_DIR": str(folder / "documents"),
            "ESIGN_KEYSTORE": "files",
        }
        for service in SERVICES:
            env[f"{service.upper()}_DATABASE_URL"] = database_url
            env[f"{service.upper()}_ADDRESS"] = f"127.0.0.1:{free_port()}"
        env["DOSSIER_URL"] = f"http://{env['DOSSIER_ADDRESS']}"
        clock_env = {"MOTCUA_ENV": "development", "MOTCUA_CLOCK_FILE": str(clock_file)}
        with tsa_process(folder / "pki", free_port(), clock_env) as tsa_url:
            env["ESIGN_TSA_URL"] = tsa_url
            processes = _processes(env, simulator_address, folder)
            try:
                for name, process in zip(SERVICES, processes, strict=False):
                    _wait_live(f"http://{env[f'{name.upper()}_ADDRESS']}", process)
                _wait_live(env["POSTAL_OPERATOR_URL"], processes[4])
                system = System(env, clock_file)
                timeline = _timeline(system)
                system.dossiers = {key: Dossier(key) for key in dict.fromkeys(k for _, k, _ in timeline)}
                for instant, key, step in timeline:
                    dossier = system.dossiers[key]
                    if dossier.failed:
                        continue
                    system.at(instant)
                    try:
                        step()
                    except Exception as exc:  # noqa: BLE001 - kept for the test of this dossier's rule
                        dossier.failed = f"{instant.isoformat()}: {type(exc).__name__}: {exc}"[:1500]
                system.at(vn(2, 12, 16))
                yield system
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                for log in sorted(folder.glob("*.log")):  # shown by pytest when a test fails
                    print(log.name, "\n", log.read_text(errors="replace")[-4000:])
    database.close()


def _wait_live(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{' '.join(process.args)} exited"
        try:
            if requests.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in 60 s")


def _reached(run: System, step: str, *keys: str) -> None:
    """The scenario reached ``step`` for each of ``keys``; else the first step that failed, and why."""
    missing = {k: run.dossiers[k].failed for k in keys if step not in run.dossiers[k].seen}
    assert not missing, f"{step} not reached: {missing}"


def _local(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(VN)


def test_dossier_codes_count_per_unit_and_vietnam_day(run):
    expected = {
        "A": "261229-0001",
        "B": "261230-0001",
        "C": "261231-0001",
        "D": "270101-0001",  # 2026-12-31T17:10Z is already 1 January in Vietnam
        "E": "270104-0001",
        "I": "270201-0001",
        "J": "270201-0002",
        "F": "270202-0001",
        "G": "270203-0001",
        "H": "270203-0002",
    }
    codes = {key: run.dossiers[key].code for key in expected}
    assert codes == {key: f"{UNIT}-{suffix}" for key, suffix in expected.items()}


def test_appointments_skip_the_new_year_and_tet(run):
    expected = {
        "A": close_of_office(1, 4),
        "C": close_of_office(1, 7),
        "D": close_of_office(1, 7),
        "E": close_of_office(1, 7),
        "J": close_of_office(2, 11),
        "F": close_of_office(2, 12),
        "G": close_of_office(2, 15),
        "H": close_of_office(2, 16),
    }
    filed = {k: run.dossiers[k].seen.get("filed", {}).get("due_at") for k in expected}
    assert {k: v and _local(v) for k, v in filed.items()} == expected, {
        k: run.dossiers[k].failed for k in expected
    }


def test_postal_filings_date_from_the_hand_over_record(run):
    _reached(run, "pickup_record", "B", "I")
    b, i = run.dossiers["B"].seen, run.dossiers["I"].seen
    assert _local(b["filed"]["received_at"]) == _local(b["pickup_record"]["signed_at"])
    assert _local(b["pickup_record"]["signed_at"]).date() == vn(12, 30, 0).date()
    assert _local(b["filed"]["due_at"]) == close_of_office(1, 6)  # after the cut-off: from Thu 31
    assert _local(i["filed"]["due_at"]) == close_of_office(2, 11)


def test_a_completed_supplement_files_again_and_a_stop_moves_the_appointment(run):
    _reached(run, "supplemented", "B")
    _reached(run, "resumed", "D")
    supplemented = run.dossiers["B"].seen["supplemented"]
    assert _local(supplemented["received_at"]).replace(second=0, microsecond=0) == vn(1, 4, 9)
    assert _local(supplemented["due_at"]) == close_of_office(1, 7)
    assert supplemented["code"] == f"{UNIT}-261230-0001"  # the code stays
    assert _local(run.dossiers["D"].seen["resumed"]["due_at"]) == close_of_office(1, 11)


def test_document_numbers_restart_on_the_first_of_january_vietnam_time(run):
    _reached(run, "sealed", "A", "C", "B", "D", "F", "I")
    numbers = {
        key: int(run.dossiers[key].seen["sealed"]["document_number"].split("/")[0])
        for key in ("A", "C", "B", "D", "F", "I")
    }
    assert numbers == {"A": 1, "C": 1, "B": 2, "D": 3, "F": 4, "I": 5}


def test_signatures_and_timestamps_carry_the_simulated_time(run):
    _reached(run, "sealed", "C")
    sealed = run.dossiers["C"].seen["sealed"]
    assert _local(sealed["signed_at"]).date() == vn(1, 1, 0).date()
    result = requests.get(f"{run.esign}/results/{run.dossiers['C'].code}", headers=DESK, timeout=10)
    assert result.status_code == 200, result.text
    report = requests.post(
        f"{run.esign}/verifications",
        data=result.content,
        headers={"Content-Type": "application/pdf"},
        timeout=60,
    ).json()
    assert report["verdict"] == "valid and trusted", report
    assert [s["timestamp"][:10] for s in report["signatures"]] == ["2027-01-01", "2027-01-01"], report


def test_timeliness_is_judged_on_vietnam_dates(run):
    expected = {"A": "early", "B": "early", "C": "late", "D": "on_time", "I": "early", "F": "on_time"}
    _reached(run, "resolved", *expected)
    assert {k: run.dossiers[k].seen["resolved"]["timeliness"] for k in expected} == expected


def test_returns_by_post_only_when_delivered(run):
    _reached(run, "returned", "B", "I")
    _reached(run, "before_record", "B")
    b = run.dossiers["B"].seen
    # Resolved on Wed 6 Jan and ordered, the result waits at the desk until the record is co-signed.
    assert b["before_record"]["status"] == 9, b["before_record"]
    assert b["before_record"]["shipment"] == "created", b["before_record"]
    assert b["returned"]["return_method"] == "postal"
    assert _local(b["returned"]["returned_at"]) == _local(b["delivery"]["delivered_at"])
    assert _local(b["returned"]["returned_at"]) >= _local(b["delivery_record"]["signed_at"])
    assert _local(b["returned"]["returned_at"]).date() == vn(1, 7, 0).date()
    i = run.dossiers["I"].seen
    assert (i["returned"]["status"], i["returned"]["return_method"]) == (10, "counter")
    assert _local(i["returned"]["returned_at"]).date() == vn(2, 11, 0).date()


def test_sla_figures_by_hand(run):
    """Figures as they stand at Fri 12 Feb 16:00, over the dossiers received in each period.

    received A B C (December), D E (January: D is 1 January in Vietnam), I J F G H (February) = 10;
    decided early A B I, on time D F, late C; withdrawn E; in process within deadline G H (due 15, 16
    Feb); overdue J (due Thu 11 Feb 17:00); supplemented B; received by post B I; returned A B C D I F,
    by post B only. Progress score 20 x (2 + 3 + 2 + 1) / 10 = 16.
    """
    expected = {
        "received": 10,
        "decided_early": 3,
        "decided_on_time": 2,
        "decided_late": 1,
        "withdrawn": 1,
        "in_process_within_deadline": 2,
        "in_process_overdue": 1,
        "supplemented": 1,
        "received_online": 0,
        "received_postal": 2,
        "returned": 6,
        "returned_postal": 1,
        "decided": 6,
        "on_time_rate": 5 / 6,
        "postal_share": 1 / 10,
        "postal_receipt_share": 2 / 10,
        "supplement_rate": 1 / 10,
        "progress_score": 16.0,
    }

    def total() -> dict:
        figures = run.report("2026-12-29", "2027-02-12")["total"]
        return {k: figures[k] for k in expected}

    settled = wait_for(lambda: total() == expected, timeout=30)
    assert settled, (total(), {k: d.failed for k, d in run.dossiers.items() if d.failed})
    months = run.report("2026-12-29", "2027-02-12", group_by="month")["groups"]
    assert {g["key"]: g["received"] for g in months} == {"2026-12": 3, "2027-01": 2, "2027-02": 5}
    assert run.report("2026-12-29", "2026-12-31")["total"]["received"] == 3
    assert run.report("2027-01-01", "2027-01-01")["total"]["received"] == 1  # D, filed at 17:10Z on 31 Dec


def test_the_processes_read_the_moved_clock(run):
    """The report says when it was made: the metrics process's clock, moved to 12 Feb 16:00."""
    as_of = _local(run.report("2027-02-01", "2027-02-12")["as_of"])
    assert vn(2, 12, 16) <= as_of < vn(2, 12, 16) + timedelta(minutes=5)


def test_prometheus_counts_the_same_dossiers(run):
    """The exposition at 12 Feb 16:00 (a fresh database: its counters are the scenario's).

    received by channel: counter A C D E J F G H = 8, postal B I = 2; decided early A B I, on time D F,
    late C; returned at the counter A C D I F = 5, by post B = 1; one supplement request (B); in process
    G H J = 3, of which overdue J = 1.
    """
    expected = {
        ("motcua_dossiers_received_total", "channel"): {"counter": 8, "postal": 2},
        ("motcua_dossiers_resolved_total", "timeliness"): {"early": 3, "on_time": 2, "late": 1},
        ("motcua_dossiers_returned_total", "method"): {"counter": 5, "postal": 1},
        ("motcua_supplement_requests_total", None): {None: 1},
        ("motcua_dossiers_in_process", None): {None: 3},
        ("motcua_dossiers_overdue", None): {None: 1},
    }

    def exposed() -> dict:
        return {key: run.exposed(*key) for key in expected}

    assert wait_for(lambda: exposed() == expected, timeout=30), exposed()
