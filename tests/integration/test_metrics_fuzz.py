"""Schema-driven fuzzing of the running metrics service: no request may produce a 5xx (issue 7).

tests/support/fuzz.py (schemathesis) sends valid and invalid requests to every operation of the served
/api/v1/openapi.json: once with a token holding every role over a whole province, with a few dossiers
folded into the projection so that reports and ratings meet real rows, and once with a token naming a
unit that is not in the map.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.service import MetricsService
from shared.auth import DEV_SECRET, ROLES, mint
from tests.integration.test_metrics_service import COMMUNE_A, Client, Dossier, metrics_config, publish  # noqa: F401

pytest.importorskip("schemathesis")
from tests.support.fuzz import nonconforming  # noqa: E402

pytestmark = pytest.mark.integration


def test_no_request_makes_the_metrics_service_fail(metrics_config, container_factory):  # noqa: F811
    container = container_factory(MetricsService, metrics_config)
    container.start()
    client = Client(metrics_config)
    now = datetime.now(UTC)
    returned = Dossier(COMMUNE_A, received_at=now - timedelta(days=2), due_at=now + timedelta(days=1))
    pending = Dossier(COMMUNE_A, received_at=now - timedelta(days=3), due_at=now - timedelta(days=1))
    publish(
        client.amqp_uri,
        returned.event("received", 2, now - timedelta(days=2)),
        returned.resolved(now - timedelta(days=1)),
        returned.returned(now - timedelta(hours=2)),
        pending.event("received", 2, now - timedelta(days=3)),
    )
    assert client.wait_for("motcua_dossiers_returned_total", 1, unit=COMMUNE_A) == 1
    calls = 0
    failures: list[str] = []
    for units in (["79"], ["99999"]):
        token = {"Authorization": f"Bearer {mint(DEV_SECRET, sub='fuzzer', roles=ROLES, units=units)}"}
        sent, failed = nonconforming(client.base, token, examples=25)
        calls, failures = calls + sent, failures + failed
    assert calls > 100, f"the fuzzer sent only {calls} requests"
    assert not failures, "\n".join(failures)
