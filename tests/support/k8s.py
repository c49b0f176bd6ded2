"""Offline Kubernetes checks: the pinned kubectl renders the kustomizations; the vendored CRDs give the
schemas of the operators' custom resources.

kubectl comes from ``scripts/kubectl.py`` (``make test`` installs it under ``.venv/tools``). Without it a
test skips on a developer's machine, but fails under CI (``CI`` set), so CI never passes by skipping.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy" / "crds"
INSTALLED = ROOT / ".venv" / "tools" / "kubectl"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def kubectl() -> str:
    """The kubectl to render with: $KUBECTL, the one ``make test`` unpacked, or one on the PATH."""
    for candidate in (os.environ.get("KUBECTL"), str(INSTALLED), shutil.which("kubectl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = "kubectl not installed: `make test` unpacks the pinned one (python -m scripts.kubectl)"
    if os.environ.get("CI"):
        pytest.fail(message + "; under CI the manifest checks must run, not skip")
    pytest.skip(message)


@cache
def render(folder: Path) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize folder``: every object the kustomization produces."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {folder.relative_to(ROOT)} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=Loader) if doc)


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the JSON Schema of that served version, from every CRD under deploy/crds."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.rglob("*.yaml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    key = (f"{group}/{version['name']}", kind)
                    assert key not in schemas, f"{path.relative_to(ROOT)}: a second CRD for {key}"
                    schemas[key] = structural_to_json_schema(version["schema"]["openAPIV3Schema"])
    return schemas


def structural_to_json_schema(
    schema: dict[str, Any], *, root: bool = True, closed: bool = True
) -> dict[str, Any]:
    """A CRD's OpenAPI v3 structural schema as a JSON Schema that refuses what the API server would not
    keep: ``nullable`` and ``x-kubernetes-int-or-string`` become types, and an object with declared
    properties (unless ``x-kubernetes-preserve-unknown-fields``) takes no others, since the server
    prunes unknown fields silently and a misspelt one would be lost without a word."""
    out = copy.copy(schema)
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: structural_to_json_schema(sub, root=False) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = structural_to_json_schema(out[key], root=False)
    # A branch of allOf/anyOf/oneOf/not only adds conditions on fields the structure declares.
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [structural_to_json_schema(sub, root=False, closed=False) for sub in out[key]]
    if isinstance(out.get("not"), dict):
        out["not"] = structural_to_json_schema(out["not"], root=False, closed=False)
    if closed and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if root:  # metadata is the API server's ObjectMeta, which the CRD leaves open
        out.setdefault("properties", {})["metadata"] = {"type": "object"}
    return out
