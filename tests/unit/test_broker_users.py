"""The per-service broker grants (shared/broker_users.py) and their Kubernetes declaration agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.broker_users import TOPOLOGY_HEADER, grant_for, topology_resources
from shared.events import SOURCES

USERS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "broker" / "users.yaml"


def test_the_kubernetes_users_are_the_grants_of_every_service():
    text = USERS_FILE.read_text()
    assert text.startswith(TOPOLOGY_HEADER)
    assert list(yaml.safe_load_all(text)) == topology_resources(
        list(("dossier", "postal", "esign", "metrics", "outbound", "notifier", "payment"))
    )
    users = {doc["metadata"]["name"] for doc in yaml.safe_load_all(text) if doc["kind"] == "User"}
    assert users == {f"motcua-{source}" for source in SOURCES}
    assert all("importCredentialsSecret" not in doc["spec"] for doc in yaml.safe_load_all(text))


@pytest.mark.parametrize("service", SOURCES)
def test_a_service_may_publish_only_its_own_routing_keys(service):
    write, _read = grant_for(service).topics["egov.events"]
    assert re.match(write, f"{service}.received.79.26740")
    for other in set(SOURCES) - {service}:
        assert not re.match(write, f"{other}.resolved.79.26740")
    assert not re.match(write, f"{service}x.resolved.79")


@pytest.mark.parametrize("service", SOURCES)
def test_a_service_reaches_only_its_own_queues(service):
    grant = grant_for(service)
    for regex in (grant.configure, grant.write, grant.read):
        assert re.match(regex, f"{service}.dossier-events") and re.match(regex, "egov.events")
        for other in set(SOURCES) - {service}:
            assert not re.match(regex, f"{other}.dossier-events")


def test_every_deployment_in_production_connects_as_its_own_broker_user():
    """Each service's Deployment reads its own operator-generated credentials, never another's."""
    production = USERS_FILE.parents[1] / "overlays" / "production"
    kustomization = yaml.safe_load((production / "kustomization.yaml").read_text())
    patched = {}
    for entry in kustomization.get("patches", []):
        path = entry.get("path", "")
        if path.startswith("broker-user-"):
            doc = yaml.safe_load((production / path).read_text())
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
            patched[doc["metadata"]["name"]] = refs
    services = sorted(
        p.name for p in (USERS_FILE.parents[1] / "base").iterdir() if (p / "deployment.yaml").is_file()
    )
    assert sorted(patched) == [f"motcua-{service}" for service in services]
    for deployment, refs in patched.items():
        assert refs == {
            "AMQP_USERNAME": f"{deployment}-user-credentials",
            "AMQP_PASSWORD": f"{deployment}-user-credentials",
        }
