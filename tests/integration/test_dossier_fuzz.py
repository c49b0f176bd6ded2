"""Schema-driven fuzzing of the running dossier service: no request may produce a 5xx.

schemathesis (pinned 4.32.5 in the dev environment) reads the served /api/v1/openapi.json and sends
valid and invalid requests to every operation, with a bearer token holding every role over a whole
province, half of them about a real dossier so that lifecycle actions run against real state.
Bounded: a few examples per operation and mode.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from services.dossier.service import DossierService
from shared.auth import DEV_SECRET, ROLES, mint
from shared.units import EXAMPLE_3LEVEL_FILE

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.generation.modes import GenerationMode  # noqa: E402

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
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", timeout=10)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in ({"code": seed.json()["code"]}, None):
                if path_parameters and "{code}" not in operation.path:
                    continue
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def send(case) -> None:
                    nonlocal calls
                    response = case.call(base_url=base, headers=token, timeout=10)
                    calls += 1
                    if response.status_code >= 500:
                        failures.append(
                            f"{response.status_code} {case.method} {case.formatted_path}: {response.text}"
                        )

                try:
                    send()
                except Unsatisfiable:
                    continue  # nothing to negate (an operation without parameters or body)
    assert calls > 100, f"the fuzzer sent only {calls} requests"
    assert not failures, "\n".join(failures[:10])
