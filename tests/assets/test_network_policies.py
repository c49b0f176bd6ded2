"""NetworkPolicies (issue 11 §4): motcua's pods deny by default and allow only what they need."""

from __future__ import annotations

import ipaddress
import re
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
        if name in (
            "motcua-dossier-from-its-callers",
            "motcua-callers-to-dossier",
            "motcua-outbound-to-the-internet",
        ):
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
        if name not in ("motcua-callers-to-dossier", "motcua-outbound-to-the-internet")
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


def _selects(selector: dict, labels: dict) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions In/Exists) selects ``labels``."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] == "Exists" and value is None:
            return False
    return True


def _deployments() -> dict[str, dict]:
    """Each motcua deployment's pod labels, named ports and environment, by component."""
    found = {}
    for path in sorted(POLICIES.parent.glob("*/deployment.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                pod = doc["spec"]["template"]
                container = pod["spec"]["containers"][0]
                found[pod["metadata"]["labels"]["app.kubernetes.io/component"]] = {
                    "labels": pod["metadata"]["labels"],
                    "ports": {p["name"]: p["containerPort"] for p in container.get("ports", [])},
                    "env": {e["name"]: e.get("value") for e in container.get("env", [])},
                }
    return found


def test_every_call_between_services_is_allowed_out_of_the_caller_and_into_the_callee():
    """Read from the deployments: each ``http://motcua-<service>:<port>`` setting is a call, which the
    policies must let out of the caller's pods and into the callee's."""
    deployments, specs = _deployments(), list(policies().values())
    calls = [
        (caller, match.group(1), int(match.group(2)))
        for caller, deployment in deployments.items()
        for value in deployment["env"].values()
        if value and (match := re.fullmatch(r"https?://motcua-([a-z]+):(\d+)/?", value))
    ]
    assert ("outbound", "dossier", 8000) in calls  # the portal-record read
    for caller, callee, port in calls:
        source, target = deployments[caller], deployments[callee]
        out = any(
            _selects(spec["podSelector"], source["labels"])
            and any(
                peer.get("podSelector") and _selects(peer["podSelector"], target["labels"])
                for peer in rule["to"]
            )
            and {"port": port, "protocol": "TCP"} in rule["ports"]
            for spec in specs
            for rule in spec.get("egress", [])
            if rule.get("to")
        )
        into = any(
            _selects(spec["podSelector"], target["labels"])
            and any(
                peer.get("podSelector") and _selects(peer["podSelector"], source["labels"])
                for peer in rule["from"]
            )
            and any(target["ports"].get(p["port"], p["port"]) == port for p in rule["ports"])
            for spec in specs
            for rule in spec.get("ingress", [])
        )
        assert out and into, (
            f"{caller} -> {callee}:{port} is blocked (out allowed: {out}, in allowed: {into})"
        )


def test_the_outbound_service_reaches_public_addresses_only():
    outbound = _deployments()["outbound"]["labels"]
    rules = [
        rule
        for spec in policies().values()
        if _selects(spec["podSelector"], outbound) and spec["podSelector"] != {"matchLabels": MOTCUA}
        for rule in spec.get("egress", [])
        if any("ipBlock" in peer for peer in rule["to"])
    ]
    assert len(rules) == 1
    block = rules[0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    excluded = [ipaddress.ip_network(n) for n in block["except"]]
    # What the address guard refuses is refused here too: private, link-local (metadata), loopback.
    for address in ("10.2.3.4", "172.20.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1"):
        assert any(ipaddress.ip_address(address) in network for network in excluded), address
    assert sorted(p["port"] for p in rules[0]["ports"]) == [80, 443]


def test_the_base_deploys_the_policies():
    kustomization = yaml.safe_load((POLICIES.parent / "kustomization.yaml").read_text())
    assert "networkpolicies.yaml" in kustomization["resources"]
