"""NetworkPolicies (issue 11 §4): motcua's pods deny by default and allow only what they need."""

from __future__ import annotations

from pathlib import Path

import yaml

POLICIES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "networkpolicies.yaml"
MOTCUA = {"app.kubernetes.io/name": "motcua"}


def policies() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc["spec"] for doc in yaml.safe_load_all(POLICIES.read_text())}


def test_every_motcua_pod_denies_by_default_both_ways():
    deny = policies()["motcua-default-deny"]
    assert deny["podSelector"] == {"matchLabels": MOTCUA}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


CALLERS = {
    "key": "app.kubernetes.io/component",
    "operator": "In",
    "values": ["postal", "outbound", "notifier", "payment"],
}


def test_ingress_is_the_api_port_from_the_ingress_controller_and_prometheus_only():
    allowed = []
    for name, spec in policies().items():
        if name in ("motcua-dossier-from-its-callers", "motcua-callers-to-dossier"):
            continue
        assert spec["podSelector"] == {"matchLabels": MOTCUA}
        for rule in spec.get("ingress", []):
            assert rule["from"] and rule["ports"] == [{"port": "http", "protocol": "TCP"}]
            allowed += [
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                for peer in rule["from"]
            ]
    assert sorted(allowed) == ["ingress-nginx", "monitoring"]


def test_egress_is_dns_broker_database_and_the_identity_provider():
    ports = sorted(
        (port["port"], port["protocol"])
        for name, spec in policies().items()
        if name != "motcua-callers-to-dossier"
        for rule in spec.get("egress", [])
        for port in rule["ports"]
    )
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (5432, "TCP"), (5672, "TCP")]


def test_the_dossier_api_is_open_to_the_services_that_call_it_only():
    """The postal service, the outbound service, the notifier and the payment service call the dossier
    service's API (their settings' DOSSIER_URL): that port, between those pods, and nothing more."""
    inbound = policies()["motcua-dossier-from-its-callers"]
    assert inbound["podSelector"]["matchLabels"] == {**MOTCUA, "app.kubernetes.io/component": "dossier"}
    assert inbound["ingress"] == [
        {
            "from": [{"podSelector": {"matchExpressions": [CALLERS]}}],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    ]
    outbound = policies()["motcua-callers-to-dossier"]
    assert CALLERS in outbound["podSelector"]["matchExpressions"]
    assert outbound["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {**MOTCUA, "app.kubernetes.io/component": "dossier"}}}],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        }
    ]


def test_the_base_deploys_the_policies():
    kustomization = yaml.safe_load((POLICIES.parent / "kustomization.yaml").read_text())
    assert "networkpolicies.yaml" in kustomization["resources"]
