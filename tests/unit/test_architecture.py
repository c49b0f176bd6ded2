"""The invariants of ARCHITECTURE.md, checked on the source: a test fails when one stops being true."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = {"nameko", "sqlalchemy", "marshmallow", "werkzeug", "kombu", "amqp", "eventlet", "alembic"}
# The plain-Python foundations the domain may use.
PURE_SHARED = {"shared.vocabulary", "shared.domain", "shared.timeliness", "shared.workcalendar"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def domain_modules() -> list[Path]:
    return [
        *ROOT.glob("services/*/domain/*.py"),
        *(ROOT / f"{module.replace('.', '/')}.py" for module in PURE_SHARED),
    ]


def test_the_domain_imports_no_framework():
    assert domain_modules()
    for path in domain_modules():
        for module in imports(path):
            top = module.split(".")[0]
            assert top not in FRAMEWORKS, f"{path.relative_to(ROOT)} imports {module}"
            if top == "shared":
                assert module in PURE_SHARED, f"{path.relative_to(ROOT)} imports {module}"
            if top == "services":
                service = path.relative_to(ROOT).parts[1]
                assert module.startswith(f"services.{service}.domain"), f"{path.relative_to(ROOT)}: {module}"


def test_no_service_imports_another_service():
    """No service reads another's tables, or calls its code: they share events and HTTP."""
    for path in ROOT.glob("services/*/**/*.py"):
        service = path.relative_to(ROOT).parts[1]
        for module in imports(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1:
                assert parts[1] == service, f"{path.relative_to(ROOT)} imports {module}"


def test_only_the_broker_module_publishes():
    publishing = [
        path.relative_to(ROOT)
        for folder in ("services", "shared")
        for path in (ROOT / folder).rglob("*.py")
        if "basic_publish" in path.read_text(encoding="utf-8")
    ]
    assert publishing == [Path("shared/broker.py")]


def test_the_dossier_service_emits_nothing_by_hand():
    """Its events reach the outbox from the aggregates the unit of work has seen (shared/uow.py)."""
    for path in (ROOT / "services" / "dossier").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert ".emit(" not in text, path.relative_to(ROOT)
        if path.name != "events.py":  # services/dossier/events.py: the one place envelopes are made
            assert "build_event(" not in text, path.relative_to(ROOT)
