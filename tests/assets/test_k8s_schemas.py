"""Every object every kustomization renders is one the API server would accept, checked offline.

Rendered with the pinned kubectl (kustomize v5.6.0, tests/support/k8s.py). Core objects are checked
with kubernetes-validate against the schemas of Kubernetes KUBERNETES_VERSION, strictly (no field the
API does not define); custom resources against the CRD of the operator that owns them, vendored with
its version in deploy/crds. An object of neither kind fails: nothing reaches a cluster unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.k8s import CRDS, ROOT, crd_schemas, render, structural_to_json_schema

# What the manifests are written for: the kubectl that renders them is v1.33.9 (scripts/kubectl.py).
KUBERNETES_VERSION = "1.33.0"
K8S = ROOT / "deploy" / "k8s"


def roots() -> list[Path]:
    """Every kustomization under deploy/k8s (a Component is checked through whatever uses it)."""
    found = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text(encoding="utf-8")).get("kind") != "Component":
            found.append(path.parent)
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc['apiVersion']} {doc['kind']}/{doc['metadata']['name']}"


def problems_of(doc: dict[str, Any]) -> list[str]:
    """Why the API server would refuse ``doc`` (empty if it would not)."""
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"neither Kubernetes {KUBERNETES_VERSION} nor a CRD in {rel(CRDS)} defines it"]
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path)) or '(root)'}: {error.message}"]
    return []


def test_there_are_kustomizations_and_crds() -> None:
    assert {rel(path) for path in roots()} >= {
        "deploy/k8s/base",
        "deploy/k8s/overlays/local",
        "deploy/k8s/overlays/production",
        "deploy/k8s/monitoring",
    }
    kinds = {kind for _, kind in crd_schemas()}
    assert {"RabbitmqCluster", "Cluster", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert {"User", "Permission", "TopicPermission", "Policy"} <= kinds


@pytest.mark.parametrize("folder", roots(), ids=rel)
def test_every_rendered_object_validates(folder: Path) -> None:
    docs = render(folder)
    assert docs, f"{rel(folder)} renders nothing"
    problems = {name_of(doc): found for doc in docs if (found := problems_of(doc))}
    assert not problems, f"{rel(folder)}:\n" + "\n".join(
        f"  {name}:\n    " + "\n    ".join(found) for name, found in problems.items()
    )


# -- the checker itself can fail ---------------------------------------------------------------------


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "x"}]},
            },
        },
    }


def test_a_core_object_with_a_misspelt_or_mistyped_field_is_refused() -> None:
    assert problems_of(deployment()) == []
    misspelt = deployment()
    misspelt["spec"]["replica"] = 2
    assert problems_of(misspelt), "an unknown field must be refused (strict)"
    mistyped = deployment()
    mistyped["spec"]["replicas"] = "two"
    assert problems_of(mistyped)
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}}
    assert "defines it" in problems_of(unknown)[0]


def scaled_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "cpu", "metadata": {}}], **spec},
    }


def test_a_custom_resource_is_checked_against_its_crd() -> None:
    assert problems_of(scaled_object()) == []
    assert problems_of(scaled_object(maxReplicaCount=3)) == []
    assert problems_of(scaled_object(maxReplicaCount="three")), "a string where the CRD wants an integer"
    assert problems_of(scaled_object(maxReplicas=3)), "ScaledObject calls it maxReplicaCount"
    without_target = scaled_object()
    del without_target["spec"]["scaleTargetRef"]
    assert problems_of(without_target), "scaleTargetRef is required"


def test_structural_schema_conversion() -> None:
    schema = structural_to_json_schema(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                "either": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [
                        {"required": ["a"]},
                        {"properties": {"b": {"minLength": 1}}, "required": ["b"]},
                    ],
                },
            },
        }
    )
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"port": 8000, "note": None, "free": {"anything": 1}, "either": {"b": "x"}})
    assert validator.is_valid({"port": "http", "metadata": {"name": "x", "labels": {}}})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"other": 1}), "an undeclared field is refused"
    assert not validator.is_valid({"either": {"a": "x", "b": "y"}}), "oneOf still applies"
    assert not validator.is_valid({"either": {"c": "x"}})
