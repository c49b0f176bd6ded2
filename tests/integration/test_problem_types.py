"""Every error is a problem its published schema admits, whose ``type`` resolves to a page explaining it.

RFC 9457: extension members are allowed (a 409 carries ``current_status``, ``allowed_actions`` …), and
``type`` is a URI that names documentation. RFC 9110 §15.5.6: a 405 says in ``Allow`` what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import requests

from services.dossier.catalogue_files import load_catalogue
from services.dossier.service import DossierService
from tests.conftest import bearer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COMMUNE_PROCEDURE = next(
    p.code for p in load_catalogue() if "commune" in p.levels and "counter" in p.channels
)
DESK = bearer("desk_officer", "26740")
APPLICANT = {"full_name": "Lê Thị Hoa", "id_number": "079190001234"}


def published_problem_schema() -> dict:
    document = json.loads((ROOT / "docs" / "openapi" / "dossier.json").read_text(encoding="utf-8"))
    return {"$ref": "#/components/schemas/Problem", "components": document["components"]}


def test_a_409_with_its_facts_is_what_the_published_schema_admits_and_its_type_explains_it(
    service_config, container_factory
):
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    created = requests.post(
        f"{base}/api/v1/dossiers",
        json={"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": "26740", "applicant": APPLICANT},
        headers=DESK,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    refused = requests.post(
        f"{base}/api/v1/dossiers/{created.json()['code']}/actions/return", json={}, headers=DESK, timeout=10
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert {"current_status", "current_status_name", "allowed_actions"} <= problem.keys()
    jsonschema.validate(problem, published_problem_schema())

    # An absolute URI at the service itself (no PUBLIC_BASE_URL in this configuration).
    assert problem["type"] == f"{base}/problems/conflict"
    page = requests.get(problem["type"], timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "allowed_actions" in page.text and problem["title"] in page.text
    assert requests.get(f"{base}/problems/no-such-type", timeout=10).status_code == 404


def test_problem_types_start_with_the_public_base_url_when_a_deployment_sets_it(
    service_config, container_factory
):
    service_config["PUBLIC_BASE_URL"] = "https://api.example.gov.vn/"
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    invalid = requests.post(f"{base}/api/v1/dossiers", json={"procedure_code": 7}, headers=DESK, timeout=10)
    assert invalid.status_code == 422
    assert invalid.json()["type"] == "https://api.example.gov.vn/problems/validation-error"
    jsonschema.validate(invalid.json(), published_problem_schema())


def test_a_405_names_the_allowed_methods(service_config, container_factory):
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    answer = requests.delete(f"{base}/api/v1/dossiers", headers=DESK, timeout=10)
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert answer.json()["type"] == f"{base}/problems/method-not-allowed"
