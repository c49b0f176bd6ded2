"""The whole postal path, end to end: dossier, postal and the operator simulator as processes, on the
real broker and each database.

* pickup → hand-over record co-signed → the dossier received at the record's time → … → resolved with
  return by post → delivery ordered → the sealed result handed to the postal worker on a co-signed
  record (the operator delivers nothing before it) → delivered → status 10 at the delivery time;
* a failed delivery → returned to sender → the desk returns it at the counter.

Expected times come from the rules: the filing time is the record's signing time (docs/domain.md
§8 Postal flows), the return time is the delivery time the operator reported (issue 9).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from shared.auth import DEV_SECRET
from shared.units import UnitRegistry
from tests.conftest import bearer, free_port
from tests.e2e.test_processes import start, wait_live
from tests.support.broker import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
COMMUNE = UnitRegistry.default().children("79")[0].code
PROCEDURE = "1.004859"  # commune level, postal channel and postal return, 3 working days
PORTAL = bearer("portal", COMMUNE, sub="portal-hcm")
OPERATOR = bearer("postal_operator", "79", sub="vnpost-hcm")
DESK = bearer("desk_officer", COMMUNE)
HANDLING = bearer("handling_officer", COMMUNE)
LEADER = bearer("leader", COMMUNE)
CLERK = bearer("clerk", COMMUNE)
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234", "phone": "0901234567"}
PICKUP = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi, phường Bến Thành"}


class System:
    def __init__(self, env: dict[str, str], processes: list[subprocess.Popen]) -> None:
        self.dossier = f"http://{env['DOSSIER_ADDRESS']}"
        self.postal = f"http://{env['POSTAL_ADDRESS']}"
        self.operator = env["POSTAL_OPERATOR_URL"]
        self.processes = processes

    def scenario(self, *names: str) -> None:
        r = requests.post(f"{self.operator}/_control/scenarios", json={"scenarios": list(names)}, timeout=10)
        assert r.status_code == 200, r.text

    def dossier_of(self, code: str, headers=DESK) -> dict:
        r = requests.get(f"{self.dossier}/api/v1/dossiers/{code}", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def shipments(self, code: str) -> list[dict]:
        r = requests.get(f"{self.postal}/api/v1/shipments/{code}", headers=DESK, timeout=10)
        return r.json()["results"] if r.status_code == 200 else []

    def act(self, code: str, action: str, headers: dict, body: dict | None = None) -> dict:
        r = requests.post(
            f"{self.dossier}/api/v1/dossiers/{code}/actions/{action}",
            json=body or {},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 200, (action, r.text)
        return r.json()

    def pickup(self, key: str | None = None, **extra) -> dict:
        body = {
            "procedure_code": PROCEDURE,
            "receiving_unit": COMMUNE,
            "applicant": APPLICANT,
            "pickup": PICKUP,
            "documents": [{"name": "Tờ khai", "copies": 1}],
            **extra,
        }
        r = requests.post(
            f"{self.postal}/api/v1/pickups",
            json=body,
            headers={**PORTAL, "Idempotency-Key": key or f"p-{time.time()}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return r.json()

    def hand_over(self, consignment: str, direction: str, decisions: list[dict]) -> dict:
        r = requests.post(
            f"{self.postal}/api/v1/handover-records",
            json={
                "direction": direction,
                "receiving_unit": COMMUNE,
                "items": [{"consignment": consignment, "packages_counted": 1}],
            },
            headers=OPERATOR,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        record = r.json()["id"]
        signed = requests.post(
            f"{self.postal}/api/v1/handover-records/{record}/signatures",
            json={},
            headers=OPERATOR,
            timeout=10,
        )
        assert signed.status_code == 200, signed.text
        signed = requests.post(
            f"{self.postal}/api/v1/handover-records/{record}/signatures",
            json={"decisions": decisions},
            headers=DESK,
            timeout=10,
        )
        assert signed.status_code == 200, signed.text
        return signed.json()

    def resolve(self, code: str) -> None:
        self.act(code, "start_processing", DESK)
        self.act(code, "appraise", HANDLING, {"opinion": "Hồ sơ hợp lệ"})
        self.act(code, "decide", LEADER, {"decision": "approved"})
        self.act(code, "sign", LEADER)
        self.act(code, "stamp", CLERK)
        self.act(code, "resolve", HANDLING)


@pytest.fixture
def system(rabbit_config, database_url):
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_POLL_SECONDS": "0.2",
        "DOSSIER_DATABASE_URL": database_url,
        "POSTAL_DATABASE_URL": database_url,
        "DOSSIER_ADDRESS": f"127.0.0.1:{free_port()}",
        "POSTAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "POSTAL_WATCH_SECONDS": "1",
    }
    simulator_address = f"127.0.0.1:{free_port()}"
    env["POSTAL_OPERATOR_URL"] = f"http://{simulator_address}"
    env["DOSSIER_URL"] = f"http://{env['DOSSIER_ADDRESS']}"
    processes = [start("dossier", env), start("postal", env)]
    processes.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.postal_operator",
                "--address",
                simulator_address,
                "--webhook-url",
                f"http://{env['POSTAL_ADDRESS']}/api/v1/webhooks/vnpost",
                "--step-seconds",
                "0.3",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    try:
        wait_live(f"http://{env['DOSSIER_ADDRESS']}", processes[0])
        wait_live(f"http://{env['POSTAL_ADDRESS']}", processes[1])
        wait_live(env["POSTAL_OPERATOR_URL"], processes[2])
        yield System(env, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for process in processes:  # shown by pytest when the test fails
            print(" ".join(process.args), "\n", process.stdout.read()[-6000:])


def _status_of(system: System, code: str, direction: str) -> str | None:
    found = [s for s in system.shipments(code) if s["direction"] == direction]
    return found[-1]["status"] if found else None


def test_pickup_hand_over_then_postal_return_delivered(system):
    pickup = system.pickup(return_method="postal")
    code = pickup["dossier_code"]
    registered = system.dossier_of(code, PORTAL)
    assert (registered["status"], registered["channel"]) == (1, "postal")  # the portal sees it at once
    assert wait_for(lambda: _status_of(system, code, "pickup") == "delivered"), system.shipments(code)

    record = system.hand_over(
        pickup["consignment"], "pickup", [{"consignment": pickup["consignment"], "outcome": "received"}]
    )
    assert record["signed_at"] == record["desk_signed_at"]  # the desk signed second
    received = wait_for(lambda: (d := system.dossier_of(code)) and d["status"] == 2 and d)
    assert received, system.dossier_of(code)
    assert datetime.fromisoformat(received["received_at"]) == datetime.fromisoformat(record["signed_at"])

    system.resolve(code)
    assert wait_for(lambda: _status_of(system, code, "delivery") is not None, timeout=20), (
        "no delivery opened"
    )
    time.sleep(2)  # several steps of the simulator: the order alone starts no delivery
    [ordered] = [s for s in system.shipments(code) if s["direction"] == "delivery"]
    assert (ordered["status"], ordered["handed_over_at"]) == ("created", None)
    handed = system.hand_over(ordered["consignment"], "delivery", [])
    assert wait_for(lambda: _status_of(system, code, "delivery") == "delivered", timeout=20)
    delivery = [s for s in system.shipments(code) if s["direction"] == "delivery"][-1]
    assert delivery["handed_over_at"] == handed["signed_at"]  # the result left the desk on the record
    returned = wait_for(lambda: (d := system.dossier_of(code)) and d["status"] == 10 and d)
    assert returned, system.dossier_of(code)
    assert datetime.fromisoformat(returned["returned_at"]) == datetime.fromisoformat(delivery["delivered_at"])
    assert returned["return_method"] == "postal"


def test_failed_delivery_returned_to_sender_then_counter_return(system):
    system.scenario("happy", "returned_to_sender")  # the pickup goes well, the delivery does not
    pickup = system.pickup(return_method="postal")
    code = pickup["dossier_code"]
    system.hand_over(
        pickup["consignment"], "pickup", [{"consignment": pickup["consignment"], "outcome": "received"}]
    )
    assert wait_for(lambda: system.dossier_of(code)["status"] == 2)
    system.resolve(code)
    assert wait_for(lambda: _status_of(system, code, "delivery") is not None, timeout=20)
    [ordered] = [s for s in system.shipments(code) if s["direction"] == "delivery"]
    system.hand_over(ordered["consignment"], "delivery", [])
    assert wait_for(lambda: _status_of(system, code, "delivery") == "returned_to_sender", timeout=30)
    assert system.dossier_of(code)["status"] == 9  # waits at the desk
    returned = system.act(code, "return", DESK, {"method": "counter"})
    assert returned["status"] == 10 and returned["return_method"] == "counter"


def test_a_dossier_refused_on_the_hand_over_record_is_refused_with_its_reason(system):
    pickup = system.pickup(key="one-pickup")
    # the portal retries: the same dossier, the same order (the registration and the order were keyed)
    assert system.pickup(key="one-pickup") == pickup
    code = pickup["dossier_code"]
    reason = "Thiếu tờ khai có chữ ký"
    record = system.hand_over(
        pickup["consignment"],
        "pickup",
        [{"consignment": pickup["consignment"], "outcome": "refused", "reason": reason}],
    )
    refused = wait_for(lambda: (d := system.dossier_of(code)) and d["status"] == 3 and d)
    assert refused, system.dossier_of(code)
    assert record["items"][0]["outcome"] == "refused" and refused["received_at"] is None
    again = requests.post(
        f"{system.postal}/api/v1/handover-records/{record['id']}/signatures",
        json={},
        headers=OPERATOR,
        timeout=10,
    )
    assert again.status_code == 409  # a signed record cannot be signed again


def test_a_counter_return_cancels_the_delivery_still_waiting_at_the_desk(system):
    """Both sides of the seam: the desk hands the result over at the counter while its delivery is
    ordered but not yet handed to the postal worker; the dossier's dossier.returned (counter) makes the
    postal service cancel the order at the operator, which confirms; the shipment ends cancelled with
    the dossier's reason, and no other delivery opens."""
    pickup = system.pickup(return_method="postal")
    code = pickup["dossier_code"]
    system.hand_over(
        pickup["consignment"], "pickup", [{"consignment": pickup["consignment"], "outcome": "received"}]
    )
    assert wait_for(lambda: system.dossier_of(code)["status"] == 2)
    system.resolve(code)
    assert wait_for(lambda: _status_of(system, code, "delivery") == "created", timeout=20)
    returned = system.act(code, "return", DESK, {"method": "counter"})
    assert (returned["status"], returned["return_method"]) == (10, "counter")
    assert wait_for(lambda: _status_of(system, code, "delivery") == "cancelled", timeout=30), (
        system.shipments(code)
    )
    deliveries = [s for s in system.shipments(code) if s["direction"] == "delivery"]
    assert [(d["status"], d["cancel_reason"]) for d in deliveries] == [
        ("cancelled", "dossier_returned_at_counter")
    ]
    time.sleep(2)  # the watch runs every second: it opens no new delivery for a dossier that ended
    assert len([s for s in system.shipments(code) if s["direction"] == "delivery"]) == 1
    assert system.dossier_of(code)["status"] == 10
