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


WALL_CLOCK = {"now", "utcnow", "today", "time", "time_ns", "localtime", "gmtime"}
# What must stay on the real clock, and why; every other read of the time of day is shared.clock.now().
REAL_CLOCK = {
    ("shared/clock.py", "datetime.now"): "the clock itself",
    ("shared/auth.py", "datetime.now"): "a token's iat/exp, which PyJWT checks against the real clock",
    ("shared/auth.py", "time.time"): "a cached token's expiry, on PyJWT's real clock",
    ("shared/uow.py", "datetime.now"): "inbox and outbox bookkeeping, and how long the database was down",
    ("shared/outbox.py", "datetime.now"): "the relay's publishing times and the outbox's age",
    ("shared/ops.py", "datetime.now"): "queue ages for operators",
    ("shared/consumer.py", "datetime.now"): "when a message was dead-lettered",
    ("shared/operations.py", "datetime.now"): "retention of pipeline rows, whose times are real",
    ("services/metrics/repository.py", "datetime.now"): "the event log's logged_at, pruned by retention",
    ("shared/workcalendar.py", "date.today"): "checks a country code on one year's holidays; any year does",
    ("simulators/postal_operator.py", "datetime.now"): "webhook-timestamp, checked ±5 min on the real clock",
    ("simulators/postal_operator.py", "time.time"): "the delays between reports, in real seconds",
}


def wall_clock_reads(path: Path) -> set[str]:
    """``datetime.now``, ``date.today``, ``time.time`` ... named (called or passed) in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in WALL_CLOCK:
            base = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
            if base in ("datetime", "date") and node.attr in ("now", "utcnow", "today"):
                found.add(f"{base}.{node.attr}")
            elif base == "time" and node.attr not in ("now", "utcnow", "today"):
                found.add(f"time.{node.attr}")
    return found


def test_the_time_of_day_comes_from_shared_clock():
    """A test moves every process's clock (shared/clock.py); a direct read would not move with it."""
    reads = {
        (str(path.relative_to(ROOT)), read)
        for folder in ("services", "shared", "simulators")
        for path in (ROOT / folder).rglob("*.py")
        for read in wall_clock_reads(path)
    }
    assert reads - REAL_CLOCK.keys() == set(), "read shared.clock.now() instead"
    assert REAL_CLOCK.keys() - reads == set(), "no longer read there: take it off REAL_CLOCK"
