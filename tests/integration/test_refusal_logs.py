"""A refusal is one INFO line with the request id; tracebacks are for failures.

Before, each 4xx answer (a 422, a 409, a refused webhook) logged nameko's "(expected) error handling
worker" WARNING with two chained tracebacks.
"""

from __future__ import annotations

import logging

import pytest
import requests

from services.dossier.catalogue_files import load_catalogue
from services.dossier.service import DossierService
from services.postal.service import PostalService
from shared.migrate import upgrade
from tests.conftest import bearer, free_port
from tests.support.postal import FOREIGN_SECRET, postal_config, signed

pytestmark = pytest.mark.integration
COMMUNE_PROCEDURE = next(
    p.code for p in load_catalogue() if "commune" in p.levels and "counter" in p.channels
)


def traced(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info or r.exc_text or "(expected)" in r.getMessage()]


def lines_about(records: list[logging.LogRecord], request_id: str) -> list[logging.LogRecord]:
    return [r for r in records if request_id in r.getMessage()]


def test_a_422_and_a_409_are_one_info_line_each_with_the_request_id(
    service_config, container_factory, caplog
):
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}/api/v1"
    desk = bearer("desk_officer", "26740")
    caplog.set_level(logging.DEBUG)
    invalid = requests.post(
        f"{base}/dossiers",
        json={"procedure_code": 7},
        headers={**desk, "X-Request-Id": "req-422"},
        timeout=10,
    )
    assert invalid.status_code == 422, invalid.text
    assert invalid.headers["X-Request-Id"] == "req-422"
    created = requests.post(
        f"{base}/dossiers",
        json={
            "procedure_code": COMMUNE_PROCEDURE,
            "receiving_unit": "26740",
            "applicant": {"full_name": "Lê Thị Hoa", "id_number": "079190001234"},
        },
        headers=desk,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    refused = requests.post(
        f"{base}/dossiers/{created.json()['code']}/actions/return",
        json={},
        headers={**desk, "X-Request-Id": "req-409"},
        timeout=10,
    )
    assert refused.status_code == 409, refused.text

    assert traced(caplog.records) == []
    for request_id, status in (("req-422", 422), ("req-409", 409)):
        (line,) = lines_about(caplog.records, request_id)
        assert line.levelno == logging.INFO and line.name == "shared.http"
        assert f" {status} " in line.getMessage() and "\n" not in line.getMessage()


def test_a_refused_webhook_is_one_info_line(rabbit_config, database_url, container_factory, caplog):
    upgrade("postal", database_url)
    config = postal_config(rabbit_config["AMQP_URI"], database_url, free_port())
    container_factory(PostalService, config).start()
    body, headers = signed({"anything": 1}, secrets=(FOREIGN_SECRET,))
    caplog.set_level(logging.DEBUG)
    forged = requests.post(
        f"http://{config['WEB_SERVER_ADDRESS']}/api/v1/webhooks/vnpost",
        data=body,
        headers={**headers, "X-Request-Id": "req-forged"},
        timeout=10,
    )
    assert forged.status_code == 401, forged.text
    assert traced(caplog.records) == []
    (line,) = lines_about(caplog.records, "req-forged")
    assert line.levelno == logging.INFO and " 401 " in line.getMessage()
