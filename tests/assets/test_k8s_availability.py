"""Production keeps serving through node drains and node losses, and is sized as the capacity table says.

* Every service that runs two replicas or more (its ScaledObject's ``minReplicaCount``, or ``replicas``)
  has a PodDisruptionBudget that selects exactly its pods and keeps one available, and topology spread
  constraints over nodes (and zones) on its pod template.
* The e-signature service's autoscaling agrees with docs/benchmarks-and-capacity.md: the table's
  "esign" row for a province (``6 × 1 vCPU``) is its ``maxReplicaCount`` and its container's CPU request
  and limit, and its CPU trigger targets the 60 % the table is sized for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.k8s import render

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
CAPACITY = ROOT / "docs" / "benchmarks-and-capacity.md"


def by_kind(docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def replicas(docs, name: str) -> int:
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in by_kind(docs, "ScaledObject").values()}
    if name in scaled:
        return scaled[name]["spec"].get("minReplicaCount", 0)
    return by_kind(docs, "Deployment")[name]["spec"].get("replicas", 1)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_every_replicated_service_has_a_disruption_budget_and_spreads_its_pods():
    checked = 0
    for overlay in sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file()):
        docs = render(overlay)
        deployments = by_kind(docs, "Deployment")
        budgets = by_kind(docs, "PodDisruptionBudget").values()
        for name, deployment in deployments.items():
            if replicas(docs, name) < 2:
                continue
            checked += 1
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            mine = [b for b in budgets if selects(b["spec"]["selector"], labels)]
            assert len(mine) == 1, f"{overlay.name}: {name} runs ≥ 2 replicas and has {len(mine)} PDBs"
            budget = mine[0]["spec"]
            assert budget.get("minAvailable") == 1 or budget.get("maxUnavailable") == 1, (name, budget)
            for other, pod in deployments.items():  # a budget counts only its own service's pods
                if other != name:
                    assert not selects(
                        mine[0]["spec"]["selector"], pod["spec"]["template"]["metadata"]["labels"]
                    )
            spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
            keys = {c["topologyKey"] for c in spread if selects(c["labelSelector"], labels)}
            assert "kubernetes.io/hostname" in keys, f"{overlay.name}: {name} is not spread over nodes"
    assert checked >= 5, "the production overlay runs every service with two replicas or more"


def capacity_row(component: str) -> list[str]:
    for line in CAPACITY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == component and len(cells) == 3 and "vCPU" in cells[1]:
            return cells
    raise AssertionError(f"no sizing row for {component} in {CAPACITY.name}")


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_esign_scales_to_the_capacity_tables_replicas_of_one_vcpu():
    _, province, _ = capacity_row("esign")
    match = re.match(r"(\d+) (?:replicas )?× (\d+(?:\.\d+)?) vCPU", province)
    assert match, province
    count, vcpu = int(match.group(1)), float(match.group(2))
    assert "60 % CPU at" in CAPACITY.read_text(encoding="utf-8")  # what the table is sized for

    docs = render(OVERLAYS / "production")
    scaled = by_kind(docs, "ScaledObject")["motcua-esign"]["spec"]
    assert scaled["maxReplicaCount"] == count
    assert 2 <= scaled["minReplicaCount"] <= count
    (trigger,) = [t for t in scaled["triggers"] if t["type"] == "cpu"]
    assert trigger["metadata"]["value"] == "60"
    (container,) = [
        c
        for c in by_kind(docs, "Deployment")["motcua-esign"]["spec"]["template"]["spec"]["containers"]
        if c["name"] == "esign"
    ]
    assert cpu(container["resources"]["requests"]["cpu"]) == vcpu
    assert cpu(container["resources"]["limits"]["cpu"]) == vcpu
