"""The repository explains itself: every document a file refers to is in the repository.

The domain rules and the integration contracts are stated in docs/domain.md and docs/contracts.md. A
reference to a brief kept outside the repository, or to a docs/ path or section that does not exist,
leaves the reader of the code (or of a published OpenAPI/AsyncAPI document) with nothing to follow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What .gitignore leaves out, and the virtualenv: not the project's text.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "data",
    ".bench",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "node_modules",
}
BINARY = {".ttf", ".pdf", ".png", ".jpg", ".p12", ".der", ".sqlite3", ".db", ".pyc"}

# The briefs the project was started from live outside it (this file, which names them, is not scanned).
OUTSIDE = re.compile(
    r"\b(?:CONTRACTS|DOMAIN|STYLE)\.md\b"  # the files by name
    r"|\b(?:CONTRACTS|DOMAIN|STYLE)\s+(?:§|section\s+\d)"  # "CONTRACTS §3", "DOMAIN section 2"
    r"|\.\./shared\b|/work[/]shared\b"  # the folder they sit in
)
# A docs/ path as the code cites it: up to a placeholder (<type>, {name}), a glob, an anchor or a space;
# not inside a regular expression (docs/runbook\.md).
DOCS_PATH = re.compile(r"(?:^|(?<=[\s(\[`'\"=])|(?<=blob/main/))(docs/[\w./-]*+)(?!\\)")
# Other projects' files kept as they are (upstream CRDs): their docs/ is theirs.
VENDORED = ROOT / "deploy" / "crds"
SECTION = re.compile(r"\b(docs/(?:contracts|domain)\.md),?\s+§(\d+)")


def text_files() -> Iterator[tuple[Path, str]]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
            # any virtualenv, whatever its name (CI makes one per Python: .venv-py3.13)
            and not (Path(folder) / d / "pyvenv.cfg").exists()
        ]
        for name in files:
            path = Path(folder) / name
            if path.suffix in BINARY or path == Path(__file__):
                continue
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


def test_no_file_refers_to_a_document_outside_the_repository():
    found = [
        f"{_where(path, text, match.start())}: {match.group(0)!r}"
        for path, text in text_files()
        for match in OUTSIDE.finditer(text)
    ]
    assert not found, "point these at docs/domain.md or docs/contracts.md:\n" + "\n".join(found)


def test_every_docs_path_cited_exists():
    missing = [
        f"{_where(path, text, match.start())}: {cited}"
        for path, text in text_files()
        if not path.is_relative_to(VENDORED)
        for match in DOCS_PATH.finditer(text)
        if not (ROOT / (cited := match.group(1).rstrip("."))).exists()
    ]
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_every_section_cited_exists():
    headings = {
        doc: set(re.findall(r"^## §(\d+) ", (ROOT / doc).read_text(encoding="utf-8"), re.MULTILINE))
        for doc in ("docs/contracts.md", "docs/domain.md")
    }
    missing = [
        f"{_where(path, text, match.start())}: {match.group(0)}"
        for path, text in text_files()
        for match in SECTION.finditer(text)
        if match.group(2) not in headings[match.group(1)]
    ]
    assert not missing, "no such section:\n" + "\n".join(missing)


def test_the_checks_see_what_they_look_for():
    # The patterns above, on the shapes of reference the repository used to carry.
    # Spelt in pieces, so that this file is not itself a reference to the documents it forbids.
    md, up = ".md", ".."
    for stale in (
        "(CONTRACTS §1)",
        f"CONTRACTS{md} port",
        f'DOMAIN{md} "Time"',
        f"STYLE{md}",
        f"{up}/shared/x",
    ):
        assert OUTSIDE.search(stale), stale
    assert not OUTSIDE.search("docs/contracts.md §1 and docs/domain.md §7")
    cited = [m.group(1) for m in DOCS_PATH.finditer("see docs/schemas/<type>.json, `docs/runbook.md#x`.")]
    assert cited == ["docs/schemas/", "docs/runbook.md"]
    assert not DOCS_PATH.search("https://example.org/docs/api")
    assert not DOCS_PATH.search(r"re.compile(r'docs/runbook\.md#')")
