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


def test_ingress_is_the_api_port_from_the_ingress_controller_and_prometheus_only():
    allowed = []
    for spec in policies().values():
        assert spec["podSelector"]["matchLabels"].items() >= MOTCUA.items()
        for rule in spec.get("ingress", []):
            assert rule["from"] and rule["ports"] == [{"port": "http", "protocol": "TCP"}]
            allowed += [
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                if "namespaceSelector" in peer
                else "component:" + peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                for peer in rule["from"]
            ]
    # Besides the ingress controller and Prometheus: the payment service calls the dossier service's API.
    assert sorted(allowed) == ["component:payment", "ingress-nginx", "monitoring"]


def test_egress_is_dns_broker_database_the_identity_provider_and_the_dossier_api():
    ports = sorted(
        (port["port"], port["protocol"])
        for spec in policies().values()
        for rule in spec.get("egress", [])
        for port in rule["ports"]
    )
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (5432, "TCP"), (5672, "TCP"), (8000, "TCP")]
    to_dossier = policies()["motcua-payment-to-dossier"]
    assert to_dossier["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "payment"


def test_the_base_deploys_the_policies():
    kustomization = yaml.safe_load((POLICIES.parent / "kustomization.yaml").read_text())
    assert "networkpolicies.yaml" in kustomization["resources"]
