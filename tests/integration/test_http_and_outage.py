"""What every service answers (problems, health, metrics, OpenAPI) and a broker outage seen from HTTP."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest
import requests
import sqlalchemy as sa

from services.dossier.models import pipeline
from services.dossier.service import DossierService
from tests.conftest import bearer
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

UNIT = "26740"


@pytest.fixture
def dossier(service_config, container_factory):
    container = container_factory(DossierService, service_config)
    container.start()
    return f"http://{service_config['WEB_SERVER_ADDRESS']}"


def receipt(unit: str = UNIT) -> dict:
    return {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": unit, "applicant": APPLICANT}


def test_unknown_route_and_method_are_problems(dossier):
    missing = requests.get(f"{dossier}/api/v1/nothing-here", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json()["status"] == 404 and missing.json()["detail"]
    wrong = requests.delete(f"{dossier}/health/live", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["type"] == f"{dossier}/problems/method-not-allowed"


def test_health_metrics_and_openapi(dossier):
    assert requests.get(f"{dossier}/health/live", timeout=5).json() == {"status": "up"}
    ready = requests.get(f"{dossier}/health/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "up", "broker": "up"}
    requests.get(f"{dossier}/health/live", timeout=5)
    metrics = requests.get(f"{dossier}/metrics", timeout=5).text
    series = 'motcua_http_requests_total{method="GET",route="/health/live",service="dossier",status="200"}'
    assert series in metrics
    document = requests.get(f"{dossier}/api/v1/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.") and "/api/v1/dossiers" in document["paths"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "pointer"),
    [
        ({}, receipt(), 401, None),
        (bearer("auditor", UNIT), receipt(), 403, None),
        (bearer("desk_officer", "26743"), receipt(), 403, None),
        (bearer("desk_officer", UNIT), {**receipt(), "colour": "red"}, 422, "/colour"),
        (bearer("desk_officer", UNIT), {**receipt(), "channel": 7}, 422, "/channel"),
        (bearer("desk_officer", UNIT), {**receipt(), "receiving_unit": "99999"}, 422, "/receiving_unit"),
        (bearer("desk_officer", UNIT), {**receipt(), "procedure_code": "9.999999"}, 422, "/procedure_code"),
        (
            bearer("desk_officer", UNIT),
            {**receipt(), "applicant": {"full_name": "A", "id_number": "12"}},
            422,
            "/applicant/id_number",
        ),
    ],
)
def test_bad_receipts_are_4xx_problems_and_change_nothing(
    dossier, service_config, headers, body, status, pointer
):
    response = requests.post(f"{dossier}/api/v1/dossiers", json=body, headers=headers, timeout=5)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if pointer:
        assert pointer in [error["pointer"] for error in problem["errors"]]
    assert outbox_rows(service_config["DATABASE_URL"]) == 0


def test_not_json_and_oversized_bodies(dossier, service_config):
    headers = bearer("desk_officer", UNIT)
    text = requests.post(
        f"{dossier}/api/v1/dossiers", data="x", timeout=5, headers={**headers, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    broken = requests.post(
        f"{dossier}/api/v1/dossiers",
        data="{",
        timeout=5,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    huge = requests.post(
        f"{dossier}/api/v1/dossiers",
        data="[" + "1," * 200_000 + "1]",
        timeout=5,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    # a 5,000-digit integer is more than Python converts (4,300 digits): 400, not a 500
    digits = requests.post(
        f"{dossier}/api/v1/dossiers",
        data='{"procedure_code": "1.000001", "n": ' + "7" * 5000 + "}",
        timeout=5,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert digits.status_code == 400 and "not valid JSON" in digits.json()["detail"]
    assert outbox_rows(service_config["DATABASE_URL"]) == 0


def test_idempotency_key_replays_the_first_response(dossier, service_config):
    headers = {**bearer("desk_officer", UNIT), "Idempotency-Key": "receipt-42"}
    first = requests.post(f"{dossier}/api/v1/dossiers", json=receipt(), headers=headers, timeout=5)
    again = requests.post(f"{dossier}/api/v1/dossiers", json=receipt(), headers=headers, timeout=5)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    # The first answer again, but for the lookup secret: it is shown once and kept only as a hash.
    assert first.json()["lookup"]["secret"] and again.json()["lookup"] == {"secret": None, "url": None}
    assert {**again.json(), "lookup": None} == {**first.json(), "lookup": None}
    assert outbox_rows(service_config["DATABASE_URL"], published=None) == 1
    other = requests.post(
        f"{dossier}/api/v1/dossiers", json={**receipt(), "channel": "online"}, headers=headers, timeout=5
    )
    assert other.status_code == 422 and other.json()["type"] == f"{dossier}/problems/idempotency-key-reused"


def outbox_rows(url: str, published: bool | None = None) -> int:
    engine = sa.create_engine(url)
    query = sa.select(sa.func.count()).select_from(pipeline.outbox)
    if published is False:
        query = query.where(pipeline.outbox.c.published_at.is_(None))
    with engine.connect() as connection:
        count = connection.execute(query).scalar_one()
    engine.dispose()
    return count


def test_receipts_succeed_while_the_broker_is_down_and_every_event_follows(
    service_config, container_factory, rabbit_config
):
    uri = urlparse(rabbit_config["AMQP_URI"])
    proxy = TcpProxy(uri.hostname, uri.port or 5672)
    service_config["AMQP_URI"] = rabbit_config["AMQP_URI"].replace(
        uri.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}"
    )
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    container = container_factory(DossierService, service_config)
    container.start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    headers = bearer("desk_officer", UNIT)
    try:
        codes = [
            requests.post(f"{base}/api/v1/dossiers", json=receipt(), headers=headers, timeout=5).json()[
                "code"
            ]
            for _ in range(3)
        ]
        subscriber.drain(expect=3)
        proxy.cut()
        during = [
            requests.post(f"{base}/api/v1/dossiers", json=receipt(), headers=headers, timeout=10)
            for _ in range(5)
        ]
        assert [r.status_code for r in during] == [201] * 5
        codes += [r.json()["code"] for r in during]
        time.sleep(1.0)
        assert outbox_rows(service_config["DATABASE_URL"], published=False) == 5
        assert requests.get(f"{base}/health/ready", timeout=10).status_code == 503
        proxy.restore()
        subscriber.drain(expect=8, timeout=40)
    finally:
        subscriber.close()
        # Stop the service while its broker is reachable: its event consumers (the postal intake) hold
        # a connection through the proxy, and nameko's queue consumer would retry it forever on stop.
        container.stop()
        proxy.close()
    received: dict[str, dict] = {}
    for envelope in subscriber.envelopes:  # a subscriber de-duplicating by id
        received.setdefault(envelope["id"], envelope)
    assert sorted(e["subject"] for e in received.values()) == sorted(codes)
    assert outbox_rows(service_config["DATABASE_URL"], published=False) == 0


def test_dossier_metrics_pass_promtool(dossier):
    import os
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (Debian's prometheus package)")
        pytest.skip("install Debian's prometheus package for promtool")
    headers = bearer("desk_officer", UNIT)
    requests.post(f"{dossier}/api/v1/dossiers", json=receipt(), headers=headers, timeout=5)
    text = requests.get(f"{dossier}/metrics", timeout=5).text
    assert "motcua_events_published_total" in text or "motcua_outbox_pending" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
