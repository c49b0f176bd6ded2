"""Schema-driven fuzzing of the running dossier service: no request may produce a 5xx.

tests/support/fuzz.py (schemathesis, pinned in the dev environment) sends valid and invalid requests
to every operation of the served /api/v1/openapi.json, with a bearer token holding every role over a whole
province, half of them about a real dossier so that lifecycle actions run against real state.
Bounded: a few examples per operation and mode.
"""

from __future__ import annotations

import pytest
import requests

from services.dossier.service import DossierService
from shared.auth import DEV_SECRET, ROLES, mint
from shared.units import EXAMPLE_3LEVEL_FILE

pytest.importorskip("schemathesis")
from tests.support.fuzz import nonconforming  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = 6


def test_no_request_makes_the_service_fail(service_config, container_factory):
    service_config["UNITS_FILE"] = str(EXAMPLE_3LEVEL_FILE)
    container = container_factory(DossierService, service_config)
    container.start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    token = {"Authorization": f"Bearer {mint(DEV_SECRET, sub='fuzzer', roles=ROLES, units=['89'])}"}
    seed = requests.post(
        f"{base}/api/v1/dossiers",
        json={
            "procedure_code": "1.012797",
            "receiving_unit": "30280",
            "applicant": {"full_name": "Phạm Văn Cường", "id_number": "089190001111"},
        },
        headers=token,
        timeout=10,
    )
    assert seed.status_code == 201, seed.text
    calls, failures = nonconforming(
        base, token, path_values=({"code": seed.json()["code"]}, None), examples=EXAMPLES
    )
    assert calls > 100, f"the fuzzer sent only {calls} requests"
    assert not failures, "\n".join(failures)
