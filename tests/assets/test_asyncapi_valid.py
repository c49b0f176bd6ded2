"""The event catalogue (docs/asyncapi.yaml), checked as integrators check it: by AsyncAPI's own parser.

``@asyncapi/parser`` (what ``asyncapi validate`` runs; pinned in scripts/asyncapi-validator, installed by
``make test`` from its lock) validates the document against the JSON Schema of its AsyncAPI version,
resolves every ``$ref`` (the payloads are the published JSON Schemas under docs/schemas/) and applies the
AsyncAPI 3 rules (an operation's messages belong to its channel, …). Every error fails the test; so does a
warning, since a document integrators' tools warn about is not one we publish.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
VALIDATOR = ROOT / "scripts" / "asyncapi-validator"
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"


def diagnostics(document: Path) -> list[dict]:
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("AsyncAPI's parser is missing: `make test-assets` installs it")
    done = subprocess.run(
        [node, str(VALIDATOR / "validate.mjs"), str(document)], capture_output=True, text=True, timeout=120
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode in (0, 1) and (done.returncode == 0) == all(
        d["severity"] != "error" for d in lines
    ), done.stderr
    return lines


def test_the_event_catalogue_is_a_valid_asyncapi_3_document():
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.0.")
    found = [d for d in diagnostics(DOCUMENT) if d["severity"] in ("error", "warning")]
    assert not found, found


def test_the_parser_refuses_what_asyncapi_3_forbids(tmp_path):
    """The check can fail: an operation naming another channel's message, an unknown action and a payload
    whose schema file is missing are each an error."""
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    (first, operation), (second, _) = list(document["operations"].items())[:2]
    operation["action"] = "publish"  # AsyncAPI 2's word
    second_channel = document["operations"][second]["channel"]["$ref"].rsplit("/", 1)[-1]
    document["operations"][second]["messages"] = [
        {"$ref": f"#/channels/{second_channel}/messages/no_such_message"}
    ]
    message = next(iter(document["components"]["messages"].values()))
    message["payload"]["schema"]["$ref"] = "schemas/no-such-type.json"
    shutil.copytree(ROOT / "docs" / "schemas", tmp_path / "schemas")
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")

    errors = {(d["path"], d["code"]) for d in diagnostics(broken) if d["severity"] == "error"}
    paths = {path for path, _ in errors}
    assert f"operations.{first}.action" in paths, errors
    assert any(path.startswith(f"operations.{second}.messages") for path in paths), errors
    assert any(code == "invalid-ref" for _, code in errors), errors
