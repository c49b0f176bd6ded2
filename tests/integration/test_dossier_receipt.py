"""The first slice end to end inside one process: HTTP receipt → database → outbox → RabbitMQ."""

from __future__ import annotations

import pytest
import requests

from services.dossier.catalogue_files import load_catalogue
from services.dossier.service import DossierService
from shared.units import EXAMPLE_3LEVEL_FILE
from tests.conftest import bearer
from tests.support.broker import Subscriber

pytestmark = pytest.mark.integration

CATALOGUE = load_catalogue()
COMMUNE_PROCEDURE = next(p.code for p in CATALOGUE if "commune" in p.levels and "counter" in p.channels)
APPLICANT = {
    "full_name": "Nguyễn Văn An",
    "id_number": "079203001234",
    "phone": "0901234567",
    "address": "12 Lê Lợi, Phường Sài Gòn",
}


@pytest.fixture
def three_level(service_config, container_factory):
    service_config["UNITS_FILE"] = str(EXAMPLE_3LEVEL_FILE)
    container = container_factory(DossierService, service_config)
    container.start()
    return f"http://{service_config['WEB_SERVER_ADDRESS']}"


def receive(base: str, unit: str, **extra):
    body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": unit, "applicant": APPLICANT, **extra}
    return requests.post(
        f"{base}/api/v1/dossiers", json=body, headers=bearer("desk_officer", unit), timeout=10
    )


def test_each_jurisdiction_receives_exactly_its_events(three_level, rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    commune = Subscriber(uri, "dossier.*.89.883.30280")
    district = Subscriber(uri, "dossier.*.89.883.#")
    province = Subscriber(uri, "dossier.*.89.#")
    elsewhere = Subscriber(uri, "dossier.*.79.#")
    try:
        codes = {}
        for unit in ("30280", "30283", "30316"):
            response = receive(three_level, unit)
            assert response.status_code == 201, response.text
            codes[unit] = response.json()["code"]
        province.drain(expect=3)
        commune.drain(expect=1)
        district.drain(expect=2)
        elsewhere.drain(timeout=1.0)
    finally:
        for subscriber in (commune, district, province, elsewhere):
            subscriber.close()
    assert [e["subject"] for e in commune.envelopes] == [codes["30280"]]
    assert sorted(e["subject"] for e in district.envelopes) == sorted([codes["30280"], codes["30283"]])
    assert sorted(e["subject"] for e in province.envelopes) == sorted(codes.values())
    assert elsewhere.envelopes == []
    envelope = commune.envelopes[0]
    assert commune.messages[0].delivery_info["routing_key"] == "dossier.received.89.883.30280"
    assert envelope["unitpath"] == "89.883.30280"
    assert envelope["source"] == "/motcua/dossier"
    assert envelope["sequence"] == "0000000001"
    assert envelope["data"]["status"] == 2
    # Minimal data: nothing personal leaves the service on an event.
    flat = str(envelope)
    assert APPLICANT["id_number"] not in flat and APPLICANT["phone"] not in flat
    assert APPLICANT["full_name"] not in flat


def test_receipt_allocates_codes_and_an_appointment(three_level):
    first = receive(three_level, "30280").json()
    second = receive(three_level, "30280").json()
    assert first["code"].rsplit("-", 1)[0] == second["code"].rsplit("-", 1)[0]
    assert int(second["code"][-4:]) == int(first["code"][-4:]) + 1
    assert first["due_at"] > first["received_at"]
    fetched = requests.get(
        f"{three_level}/api/v1/dossiers/{first['code']}", headers=bearer("auditor", "883"), timeout=10
    )
    assert fetched.status_code == 200 and fetched.json()["code"] == first["code"]
