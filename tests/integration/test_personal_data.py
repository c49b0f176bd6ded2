"""Personal data stays where it belongs (issue 11 §3): not in logs, not in shared caches.

An applicant with known, recognisable data is driven through the API while the database fails under it;
every log record the process makes (any logger, any level, tracebacks included) is then searched for
each of the applicant's values.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
import sqlalchemy as sa

from services.dossier.service import DossierService
from tests.conftest import bearer
from tests.integration.test_http_and_outage import COMMUNE_PROCEDURE, UNIT
from tests.support.broker import Subscriber

pytestmark = pytest.mark.integration

APPLICANT = {
    "full_name": "Trịnh Thị Khánh Vân",
    "id_number": "079303009871",
    "phone": "0987654321",
    "email": "khanhvan.trinh@example.vn",
    "address": "45 Lý Tự Trọng, phường Bến Thành",
}


def break_dossier_inserts(database_url: str) -> None:
    """Make storing a dossier fail inside the database, as a bad migration or a lost table would."""
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE dossiers RENAME TO dossiers_elsewhere")
    engine.dispose()


def test_a_failing_receipt_logs_none_of_the_applicants_data(service_config, container_factory, caplog):
    container = container_factory(DossierService, service_config)
    container.start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    break_dossier_inserts(service_config["DATABASE_URL"])
    body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT}
    with caplog.at_level(logging.DEBUG):
        failed = requests.post(
            f"{base}/api/v1/dossiers",
            json=body,
            headers={**bearer("desk_officer", UNIT), "Idempotency-Key": "k-1"},
            timeout=10,
        )
        bad = requests.post(
            f"{base}/api/v1/dossiers",
            json={**body, "applicant": {**APPLICANT, "phone": "not " + APPLICANT["phone"]}},
            headers=bearer("desk_officer", UNIT),
            timeout=10,
        )
    assert failed.status_code == 500 and bad.status_code == 422
    lines = [record.getMessage() for record in caplog.records]
    lines += [record.exc_text for record in caplog.records if record.exc_text]
    assert any("dossiers" in line and "Error" in line for line in lines), "the fault itself is logged"
    text = "\n".join(lines + [caplog.text, failed.text])
    for value in APPLICANT.values():
        assert value not in text
    assert "Khánh Vân" not in text and "Trịnh" not in text


def test_responses_with_personal_data_are_not_stored_by_caches(service_config, container_factory):
    container = container_factory(DossierService, service_config)
    container.start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    desk = bearer("desk_officer", UNIT)
    body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT}
    created = requests.post(f"{base}/api/v1/dossiers", json=body, headers=desk, timeout=10)
    assert created.status_code == 201
    code = created.json()["code"]
    for path in (
        f"/api/v1/dossiers/{code}",
        "/api/v1/dossiers",
        f"/api/v1/dossiers/{code}/forms/receipt",
        f"/api/v1/dossiers/{code}/forms/receipt.pdf",
    ):
        response = requests.get(f"{base}{path}", headers=desk, timeout=20)
        assert response.status_code == 200, (path, response.text[:200])
        assert response.headers.get("Cache-Control") == "no-store", path
    assert created.headers.get("Cache-Control") == "no-store"


def test_officers_free_text_stays_behind_the_api_and_events_carry_codes(
    service_config, container_factory, rabbit_config
):
    """A reason that names a person and a phone goes to every subscriber only as a code and a flag; the
    text, and the supplement's items, are read through the authorised API (forms, audit trail)."""
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    desk = bearer("desk_officer", UNIT)
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    try:
        body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT}
        code = requests.post(f"{base}/api/v1/dossiers", json=body, headers=desk, timeout=10).json()["code"]
        action = f"{base}/api/v1/dossiers/{code}/actions"
        officer = bearer("handling_officer", UNIT)
        assert (
            requests.post(f"{action}/start_processing", json={}, headers=desk, timeout=10).status_code == 200
        )
        items = ["Giấy ủy quyền của bà Trịnh Thị Khánh Vân", "Bản sao CCCD 079303009871"]
        reason = "Gọi bà Vân 0987654321 để bổ sung"
        supplement = {"items": items, "reason": reason, "reason_code": "incomplete_dossier"}
        answer = requests.post(f"{action}/request_supplement", json=supplement, headers=officer, timeout=10)
        assert answer.status_code == 200, answer.text
        stop = {"reason": "Ông Nguyễn Văn Bình khiếu nại"}
        assert requests.post(f"{action}/stop", json=stop, headers=officer, timeout=10).status_code in (
            200,
            409,
        )
        subscriber.drain(expect=3)
    finally:
        subscriber.close()
    events = {e["type"].rsplit(".", 1)[-1]: e for e in subscriber.envelopes}
    requested = events["supplement_requested"]["data"]
    assert requested["reason_code"] == "incomplete_dossier" and requested["has_reason_text"] is True
    assert requested["items_count"] == 2 and "items" not in requested and "reason" not in requested
    text = json.dumps(subscriber.envelopes, ensure_ascii=False)
    for secret in ("Khánh Vân", "079303009871", "0987654321", "Nguyễn Văn Bình", "bổ sung"):
        assert secret not in text
    form = requests.get(
        f"{base}/api/v1/dossiers/{code}/forms/supplement_request", headers=officer, timeout=10
    )
    assert form.status_code == 200 and form.json()["items"] == items and form.json()["reason"] == reason
