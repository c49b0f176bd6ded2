"""``make docs``: write the OpenAPI documents and the AsyncAPI catalogue under docs/ from the code."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import yaml

from shared import asyncapi, problems

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def rendered() -> dict[Path, str]:
    """Every generated document, by path, as text."""
    files: dict[Path, str] = {}
    for folder in sorted((ROOT / "services").iterdir()):
        if (folder / "openapi.py").is_file():
            module = importlib.import_module(f"services.{folder.name}.openapi")
            files[DOCS / "openapi" / f"{folder.name}.json"] = (
                json.dumps(module.document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
            )
    # Every service's own problem types register on import (shared/problems.py TYPES).
    for folder in sorted((ROOT / "services").iterdir()):
        if (folder / "service.py").is_file():
            importlib.import_module(f"services.{folder.name}.service")
    files[DOCS / "problems.md"] = problems.catalogue_markdown()
    files[DOCS / "asyncapi.yaml"] = yaml.safe_dump(asyncapi.build(), allow_unicode=True, sort_keys=False)
    for entry in asyncapi.load_catalogue().values():
        files[DOCS / "schemas" / f"{entry.type}.json"] = (
            json.dumps(asyncapi.envelope_schema(entry), indent=2, ensure_ascii=False) + "\n"
        )
    return files


def main() -> int:
    files = rendered()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    stale = [p for p in (DOCS / "schemas").glob("*.json") if p not in files]
    for path in stale:
        path.unlink()
    print(f"wrote {len(files)} documents under {DOCS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
