"""The seam between the dossier and postal services, from both sides (issue 17): dossier, postal and the
operator simulator as processes, on the real broker and each database (the fixture of
tests/e2e/test_postal_flows.py).

The rules (Decision 45/2016): a dossier that came by post is filed by its hand-over record only; a result
goes back by post only when the operator reports it delivered; a hand-over at the counter is a counter
return, and it ends the delivery still running; every way a shipment ends reaches the dossier — a lost
pickup closes it with its reason code, a lost delivery leaves the desk a task.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from tests.e2e.test_postal_flows import (  # noqa: F401 - the system fixture
    APPLICANT,
    COMMUNE,
    DESK,
    PROCEDURE,
    System,
    _status_of,
    system,
)
from tests.support.broker import wait_for

pytestmark = pytest.mark.e2e


def action(system: System, code: str, name: str, body: dict | None = None) -> requests.Response:  # noqa: F811
    return requests.post(
        f"{system.dossier}/api/v1/dossiers/{code}/actions/{name}", json=body or {}, headers=DESK, timeout=10
    )


def received_by_record(system: System, pickup: dict) -> dict:  # noqa: F811
    consignment = pickup["consignment"]
    return system.hand_over(consignment, "pickup", [{"consignment": consignment, "outcome": "received"}])


def delivery_handed_over(system: System, code: str) -> dict:  # noqa: F811
    """The sealed result leaves the desk on a co-signed record: only now does the operator deliver."""
    assert wait_for(lambda: _status_of(system, code, "delivery") is not None, timeout=20), (
        "no delivery opened"
    )
    [ordered] = [s for s in system.shipments(code) if s["direction"] == "delivery"]
    system.hand_over(ordered["consignment"], "delivery", [])
    return ordered


def audit(system: System, code: str) -> list[dict]:  # noqa: F811
    r = requests.get(f"{system.dossier}/api/v1/dossiers/{code}/audit", headers=DESK, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_a_pickup_is_filed_by_its_hand_over_record_never_by_a_click(system):  # noqa: F811
    pickup = system.pickup(return_method="counter")
    code = pickup["dossier_code"]
    # The desk cannot receive it by a click, before or after the package arrives ...
    clicked = action(system, code, "receive")
    assert clicked.status_code == 409, clicked.text
    assert "hand-over record" in clicked.json()["detail"] and clicked.json()["allowed_actions"] == [
        "withdraw"
    ]
    # ... nor file a dossier of its own claiming the postal channel.
    filed = requests.post(
        f"{system.dossier}/api/v1/dossiers",
        json={
            "procedure_code": PROCEDURE,
            "receiving_unit": COMMUNE,
            "channel": "postal",
            "applicant": APPLICANT,
        },
        headers=DESK,
        timeout=10,
    )
    assert filed.status_code == 422 and filed.json()["errors"][0]["pointer"] == "/channel", filed.text
    assert wait_for(lambda: _status_of(system, code, "pickup") == "delivered"), system.shipments(code)
    record = received_by_record(system, pickup)
    received = wait_for(lambda: (d := system.dossier_of(code)) and d["status"] == 2 and d)
    assert received, system.dossier_of(code)
    # The filing time is the record's, not any click's.
    assert datetime.fromisoformat(received["received_at"]) == datetime.fromisoformat(record["signed_at"])
    assert [e["action"] for e in audit(system, code)] == ["register", "receive"]


def test_a_lost_pickup_closes_its_dossier_with_its_reason(system):  # noqa: F811
    system.scenario("lost")
    code = system.pickup()["dossier_code"]
    closed = wait_for(lambda: (d := system.dossier_of(code)) and d["status"] == 3 and d, timeout=20)
    assert closed, (system.dossier_of(code), system.shipments(code))
    assert closed["received_at"] is None and closed["allowed_actions"] == []
    last = audit(system, code)[-1]
    assert (last["action"], last["actor"], last["status_before"]) == ("pickup_lost", "postal-service", 1)
    form = requests.get(f"{system.dossier}/api/v1/dossiers/{code}/forms/refusal", headers=DESK, timeout=10)
    assert form.status_code == 200 and "thất lạc" in form.json()["reason"], form.text


def test_a_lost_delivery_leaves_the_desk_a_task_answered_by_a_counter_return(system):  # noqa: F811
    system.scenario("happy", "lost")  # the pickup goes well, the delivery is lost
    pickup = system.pickup(return_method="postal")
    code = pickup["dossier_code"]
    assert wait_for(lambda: _status_of(system, code, "pickup") == "delivered"), system.shipments(code)
    received_by_record(system, pickup)
    assert wait_for(lambda: system.dossier_of(code)["status"] == 2)
    system.resolve(code)
    delivery = delivery_handed_over(system, code)
    tasks = wait_for(lambda: system.dossier_of(code)["open_tasks"], timeout=30)
    assert tasks, (system.dossier_of(code), system.shipments(code))
    assert [(t["kind"], t["cause"], t["shipment_id"]) for t in tasks] == [
        ("return_result", "delivery_lost", delivery["id"])
    ]
    assert system.dossier_of(code)["status"] == 9  # still decided, its return open
    returned = action(system, code, "return")
    assert returned.status_code == 200, returned.text
    assert (returned.json()["status"], returned.json()["return_method"], returned.json()["open_tasks"]) == (
        10,
        "counter",
        [],
    )


def test_a_counter_return_during_a_delivery_wins_and_stays_a_counter_return(system):  # noqa: F811
    system.scenario("happy", "failed_delivery")  # the delivery takes a failed attempt: it is in flight longer
    pickup = system.pickup(return_method="postal")
    code = pickup["dossier_code"]
    assert wait_for(lambda: _status_of(system, code, "pickup") == "delivered"), system.shipments(code)
    received_by_record(system, pickup)
    assert wait_for(lambda: system.dossier_of(code)["status"] == 2)
    system.resolve(code)
    delivery_handed_over(system, code)  # the result is on its way
    returned = action(system, code, "return")  # the applicant came to the desk meanwhile
    assert returned.status_code == 200, (returned.text, system.shipments(code))
    at_counter = returned.json()
    assert (at_counter["status"], at_counter["return_method"]) == (10, "counter")
    # The delivery ends (cancelled at the operator, or delivered before the cancellation reached it):
    # either way the dossier stays returned at the counter, at the counter's time.
    ended = wait_for(lambda: _status_of(system, code, "delivery") in ("cancelled", "delivered"), timeout=30)
    assert ended, system.shipments(code)
    time.sleep(1.5)  # a delivered report takes the outbox and the dossier's consumer: let it arrive
    after = system.dossier_of(code)
    assert (after["status"], after["return_method"], after["returned_at"]) == (
        10,
        "counter",
        at_counter["returned_at"],
    )
    assert [e["action"] for e in audit(system, code)].count("return") == 1
