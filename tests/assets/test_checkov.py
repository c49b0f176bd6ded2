"""checkov, the Kubernetes scanner security reviewers run, over the manifests as they are applied: every
overlay rendered by the pinned kubectl. Every finding is fixed, or kept in deploy/checkov-skips.yaml
with its reason; an entry that matches nothing any more fails too, so the list stays exactly what is
knowingly left.

checkov lives in a virtualenv of its own (``make test`` installs requirements-checkov.lock under
``.venv/tools/checkov``: it needs packaging<24, which the runtime set cannot share). Without it the test
skips on a developer's machine and fails under CI.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.k8s import kubectl

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
SKIPS = ROOT / "deploy" / "checkov-skips.yaml"
INSTALLED = ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov"


def checkov() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(INSTALLED)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = (
        "checkov not installed: `make test` installs requirements-checkov.lock under .venv/tools/checkov"
    )
    if os.environ.get("CI"):
        pytest.fail(message + "; under CI the manifest scan must run, not skip")
    pytest.skip(message)


def scan(folder: Path) -> list[dict]:
    result = subprocess.run(
        [checkov(), "--directory", str(folder), "--framework", "kubernetes", "--output", "json", "--quiet",
         "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert all(r.get("summary", {}).get("parsing_errors", 0) == 0 for r in reports), result.stdout[-2000:]
    assert sum(r["summary"]["resource_count"] for r in reports) > 0, "checkov scanned nothing"
    return [failed for r in reports for failed in r["results"]["failed_checks"]]


def kind_and_name(resource: str) -> str:
    """``Deployment.default.motcua-dossier`` -> ``Deployment.motcua-dossier`` (the namespace is checkov's)."""
    kind, _, rest = resource.partition(".")
    return f"{kind}.{rest.partition('.')[2].split('.')[0]}"


def test_checkov_finds_nothing_but_what_is_explained(tmp_path: Path):
    overlays = sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())
    for overlay in overlays:
        rendered = subprocess.run(
            [kubectl(), "kustomize", str(OVERLAYS / overlay)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        (tmp_path / f"{overlay}.yaml").write_text(rendered, encoding="utf-8")
    skips = yaml.safe_load(SKIPS.read_text(encoding="utf-8"))
    assert all(s.get("reason", "").strip() for s in skips), "every skip says why"

    used: set[int] = set()
    unexplained = []
    for finding in scan(tmp_path):
        overlay = Path(finding["file_path"]).stem
        resource = kind_and_name(finding["resource"])
        matches = [
            i
            for i, s in enumerate(skips)
            if s["check"] == finding["check_id"]
            and fnmatch.fnmatch(overlay, s["overlay"])
            and fnmatch.fnmatch(resource, s["resource"])
        ]
        used.update(matches)
        if not matches:
            unexplained.append(f"{overlay}: {finding['check_id']} {finding['check_name']} on {resource}")
    assert not unexplained, "fix these, or explain them in deploy/checkov-skips.yaml:\n" + "\n".join(
        unexplained
    )
    stale = [f"{s['check']} {s['overlay']} {s['resource']}" for i, s in enumerate(skips) if i not in used]
    assert not stale, f"skips that match no finding any more (remove them): {stale}"
