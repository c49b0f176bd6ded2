"""The published OpenAPI documents pass Spectral's ``spectral:oas`` ruleset (``.spectral.yaml``) with no
error, as an integrator who lints them with Stoplight's Spectral would find.

Spectral is a Node.js program: ``make test`` installs the version pinned in tools/spectral/package-lock.json
(integrity hashes, ``npm ci``) under ``.venv/tools/spectral``. Without it the test skips on a developer's
machine and fails under CI (``CI`` set), so CI never passes by skipping. Warnings (operations without a
description or a declared tag, no contact in ``info``) are style, reported in the output, not failures.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted((ROOT / "docs" / "openapi").glob("*.json"))
INSTALLED = ROOT / ".venv" / "tools" / "spectral" / "node_modules" / ".bin" / "spectral"
ERROR = 0  # Spectral's severities: 0 error, 1 warning, 2 information, 3 hint


def spectral() -> str:
    for candidate in (os.environ.get("SPECTRAL"), str(INSTALLED)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = "Spectral not installed: `make test` installs it where npm is (tools/spectral, npm ci)"
    if os.environ.get("CI"):
        pytest.fail(message + "; under CI the OpenAPI lint must run, not skip")
    pytest.skip(message)


def lint(paths: list[Path]) -> list[dict]:
    result = subprocess.run(
        [spectral(), "lint", "--ruleset", str(ROOT / ".spectral.yaml"), "--format", "json", "--quiet",
         "--fail-severity", "error", *map(str, paths)],
        capture_output=True, text=True, timeout=180, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.stdout.strip().startswith("["), f"no report from spectral:\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def test_every_document_passes_spectral_oas_without_errors(tmp_path: Path):
    # A document with an error spectral:oas catches (a path parameter the operation never declares),
    # linted in the same run: the tool and the ruleset are really at work.
    broken = json.loads(DOCUMENTS[0].read_text(encoding="utf-8"))
    broken["paths"]["/api/v1/broken/{undeclared}"] = {
        "get": {"operationId": "broken", "responses": {"200": {"description": "ok"}}}
    }
    canary = tmp_path / "broken.json"
    canary.write_text(json.dumps(broken), encoding="utf-8")

    results = lint([*DOCUMENTS, canary])
    errors = [r for r in results if r["severity"] == ERROR]
    ours = [f"{Path(r['source']).name}: {r['code']} at {'.'.join(map(str, r['path']))}: {r['message']}"
            for r in errors if Path(r["source"]) != canary]  # fmt: skip
    assert not ours, "spectral:oas errors:\n" + "\n".join(ours)
    assert any(r["code"] == "path-params" and Path(r["source"]) == canary for r in errors), errors
