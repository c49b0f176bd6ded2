"""The published OpenAPI documents, checked as integrators check them: openapi-spec-validator, and the
conventions a client relies on (Retry-After on 503, Idempotent-Replayed, the signed webhook's headers,
servers and licence)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parent.parent.parent
DOCUMENTS = sorted((ROOT / "docs" / "openapi").glob("*.json"))
METHODS = ("get", "put", "post", "patch", "delete")
# Answered from memory alone: neither the database nor the broker can make them fail.
NO_DEPENDENCY = {"/health/live", "/metrics", "/api/v1/openapi.json", "/problems/{slug}"}
# The writes whose handlers run through shared.http.idempotent (a replay says so in a header).
REPLAYABLE = {
    ("dossier", "receive"),
    ("dossier", "register"),
    ("dossier", "withdraw_notification_consent"),
    ("esign", "open_request"),
    ("esign", "sign"),
    ("esign", "seal"),
    ("esign", "refuse"),
    ("metrics", "rate"),
    ("outbound", "create_subscription"),
    ("outbound", "update_subscription"),
    ("outbound", "redeliver"),
    ("postal", "request_pickup"),
    ("postal", "draw_up_record"),
    ("postal", "sign_record"),
}


def operations(path: Path):
    document = json.loads(path.read_text(encoding="utf-8"))
    for route, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield route, item[method]


def test_there_is_a_document_per_service():
    assert {p.stem for p in DOCUMENTS} == {
        "dossier",
        "esign",
        "metrics",
        "notifier",
        "outbound",
        "payment",
        "postal",
    }


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_the_document_passes_openapi_spec_validator(path: Path):
    validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_servers_and_licence_are_set(path: Path):
    document = json.loads(path.read_text(encoding="utf-8"))
    with (ROOT / "pyproject.toml").open("rb") as file:
        declared = tomllib.load(file)["project"]["license"]
    assert document["servers"] and all(server["url"] for server in document["servers"])
    assert document["info"]["license"]["name"] == declared["text"] == "Apache-2.0"
    assert document["info"]["license"]["url"] == "https://www.apache.org/licenses/LICENSE-2.0"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_every_route_that_touches_a_dependency_documents_503_with_retry_after(path: Path):
    missing = []
    for route, operation in operations(path):
        unavailable = operation["responses"].get("503")
        if route in NO_DEPENDENCY:
            assert unavailable is None, route
        elif unavailable is None or "Retry-After" not in unavailable.get("headers", {}):
            missing.append(f"{operation['operationId']} {route}")
    assert not missing


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_idempotency_key_and_replayed_are_documented_on_the_writes_that_replay(path: Path):
    replaying, keyed = set(), set()
    for _route, operation in operations(path):
        if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation["parameters"]):
            keyed.add(operation["operationId"])
        for status, response in operation["responses"].items():
            if "Idempotent-Replayed" in response.get("headers", {}):
                assert status.startswith("2"), operation["operationId"]
                replaying.add(operation["operationId"])
    expected = {op for service, op in REPLAYABLE if service == path.stem}
    if path.stem == "dossier":
        expected |= {op["operationId"] for _, op in operations(path) if op["operationId"].startswith("act_")}
    assert replaying == expected
    # Idempotency-Key is offered only where a replay is honoured; elsewhere it would be ignored.
    assert keyed == expected


def test_the_postal_webhook_documents_its_signature_headers():
    document = json.loads((ROOT / "docs" / "openapi" / "postal.json").read_text(encoding="utf-8"))
    webhook = document["paths"]["/api/v1/webhooks/{operator}"]["post"]
    headers = {p["name"]: p for p in webhook["parameters"] if p["in"] == "header"}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert headers[name]["required"] is True, name
