"""Failing neighbours, seen from a running service: the postal service (real broker, both databases)
calling the dossier service and the postal operator, here tiny HTTP servers a test takes down, slows
down and brings back (tests/support/neighbour.py). And the circuit under eventlet, in a process of its
own, as the services run.

The policy under test (the config below): 2 attempts, connect 0.5 s, read 0.5 s, a Retry-After waited
up to 0.2 s, the circuit opened by 2 failed calls in a row, a 1 s cool-down. So one call takes at most
2 × (0.5 + 0.5) + 0.2 = 2.2 s (Policy.bound), whatever the neighbour does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from services.postal.service import PostalService
from shared.migrate import upgrade
from shared.neighbours import Policy
from shared.units import UnitRegistry
from tests.conftest import bearer, free_port
from tests.support.neighbour import StubNeighbour
from tests.support.postal import postal_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COMMUNE = UnitRegistry.default().children("79")[0].code
PORTAL = bearer("portal", COMMUNE, sub="portal-hcm")
BOUND = Policy(connect_timeout=0.5, read_timeout=0.5, attempts=2, retry_after_max=0.2).bound()  # 2.2 s
COOLDOWN = 1.0
PICKUP = {
    "procedure_code": "1.004859",
    "receiving_unit": COMMUNE,
    "applicant": {"full_name": "Nguyễn Văn An", "id_number": "079203001234", "phone": "0901234567"},
    "pickup": {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi, phường Bến Thành"},
    "documents": [{"name": "Tờ khai", "copies": 1}],
}


def policy(prefix: str) -> dict:
    return {
        f"{prefix}_CONNECT_TIMEOUT_SECONDS": 0.5,
        f"{prefix}_TIMEOUT_SECONDS": 0.5,
        f"{prefix}_ATTEMPTS": 2,
        f"{prefix}_RETRY_AFTER_MAX_SECONDS": 0.2,
        f"{prefix}_CIRCUIT_FAILURES": 2,
        f"{prefix}_CIRCUIT_COOLDOWN_SECONDS": COOLDOWN,
    }


@pytest.fixture
def postal(rabbit_config, database_url, container_factory):
    dossier = StubNeighbour(201, {"code": f"000.00.{COMMUNE}-261207-0001"})
    operator = StubNeighbour(201, {"consignment": "EP000000001VN", "fee_vnd": 22000, "packages": 1})
    upgrade("postal", database_url)
    config = postal_config(
        rabbit_config["AMQP_URI"],
        database_url,
        free_port(),
        DOSSIER_URL=dossier.url,
        POSTAL_OPERATOR_URL=operator.url,
        **policy("DOSSIER"),
        **policy("POSTAL_OPERATOR"),
    )
    container = container_factory(PostalService, config)
    container.start()
    try:
        yield f"http://{config['WEB_SERVER_ADDRESS']}", dossier, operator
    finally:
        dossier.close()
        operator.close()


def pickup(base: str, key: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = requests.post(
        f"{base}/api/v1/pickups", json=PICKUP, headers={**PORTAL, "Idempotency-Key": key}, timeout=30
    )
    return answer, time.monotonic() - started


def circuit_gauge(base: str, neighbour: str) -> float:
    line = f'motcua_neighbour_circuit_state{{neighbour="{neighbour}",service="postal"}} '
    text = requests.get(f"{base}/metrics", timeout=10).text
    return float(next(row for row in text.splitlines() if row.startswith(line)).split()[-1])


def test_a_neighbour_down_is_a_503_within_the_bound_its_circuit_opens_and_closes_when_it_returns(postal):
    base, dossier, operator = postal
    ready = requests.get(f"{base}/health/ready", timeout=10).json()
    assert ready["status"] == "ready"
    assert ready["checks"]["neighbour dossier"] == ready["checks"]["neighbour postal_operator"] == "up"

    dossier.down()
    for _ in range(2):  # two failed calls in a row open the circuit
        answer, took = pickup(base, "pickup-1")
        assert answer.status_code == 503 and took < BOUND, (answer.status_code, took)
        assert answer.json()["neighbour"] == "dossier"
        assert int(answer.headers["Retry-After"]) >= 1
    answer, took = pickup(base, "pickup-1")
    assert answer.status_code == 503 and took < 0.5  # not even tried: the circuit is open
    assert answer.headers["Retry-After"] == "1"  # the cool-down left (under 1 s), in whole seconds

    ready = requests.get(f"{base}/health/ready", timeout=10)
    # degraded, not failed: pickups are refused, webhooks, hand-overs and reads go on
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["neighbour dossier"].startswith("circuit open")
    assert circuit_gauge(base, "dossier") == 2
    assert operator.received == []  # nothing was ordered for a dossier that was not registered

    dossier.up()
    time.sleep(COOLDOWN)
    answer, _ = pickup(base, "pickup-1")  # the client's retry, with its key: the trial call
    assert answer.status_code == 201, answer.text
    assert requests.get(f"{base}/health/ready", timeout=10).json()["status"] == "ready"
    assert circuit_gauge(base, "dossier") == 0
    # every registration the dossier service saw carried the one key: it registers one dossier
    keys = {r["headers"].get("Idempotency-Key") for r in dossier.received}
    assert len(keys) == 1 and len(operator.received) == 1


def test_a_slow_neighbour_costs_a_request_at_most_the_bound(postal):
    base, _dossier, operator = postal
    operator.delay = 5.0  # answers in 5 s: longer than the read timeout (0.5 s)
    answer, took = pickup(base, "pickup-slow")
    assert answer.status_code == 503 and answer.json()["neighbour"] == "postal_operator"
    # two reads of 0.5 s time out (the order is retried: it carries its Idempotency-Key)
    assert 1.0 <= took < BOUND + 0.5, took
    assert len(operator.received) == 2
    assert len({r["headers"]["Idempotency-Key"] for r in operator.received}) == 1
    operator.delay = 0.0
    answer, _ = pickup(base, "pickup-slow")
    assert answer.status_code == 201, answer.text


def test_calls_to_one_neighbour_run_side_by_side_under_eventlet():
    """pybreaker holds its lock only to decide, never during a call: ten calls to a neighbour that
    answers in 1 s take about 1 s together in a monkey-patched process, not 10."""
    script = textwrap.dedent(
        """
        import eventlet
        eventlet.monkey_patch()
        import time
        from shared.neighbours import Neighbour, Policy
        from tests.support.neighbour import StubNeighbour
        stub = StubNeighbour()
        stub.delay = 1.0
        neighbour = Neighbour("eventlet", "slow", stub.url, Policy(read_timeout=3, attempts=1))
        started = time.monotonic()
        codes = list(eventlet.GreenPool().imap(lambda _: neighbour.request("GET", "").status_code, range(10)))
        print(codes.count(200), round(time.monotonic() - started, 2))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    answered, seconds = done.stdout.split()
    assert int(answered) == 10 and float(seconds) < 3.0, done.stdout
