"""The invariants of ARCHITECTURE.md, checked on the source: a test fails when one stops being true."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import inspect
from pathlib import Path

import yaml

from shared.asyncapi import load_catalogue
from shared.domain import DomainEvent

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = {"nameko", "sqlalchemy", "marshmallow", "werkzeug", "kombu", "amqp", "eventlet", "alembic"}
# The plain-Python foundations the domain may use.
PURE_SHARED = {"shared.vocabulary", "shared.domain", "shared.timeliness", "shared.workcalendar"}
SERVICES = sorted(path.parent.name for path in ROOT.glob("services/*/service.py"))
# What a use case may not import: the HTTP layer and its errors, the service framework.
HTTP_AND_FRAMEWORK = {"nameko", "werkzeug", "shared.http", "shared.problems", "shared.operations"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def writes_the_outbox(path: Path) -> bool:
    """Imports what inserts outbox rows: the outbox's ``record``, or its ``insert`` and ``rows`` (the
    unit of work's deferred write, shared/deferred.py)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "shared.outbox"
        and {"record", "insert", "rows"} & {a.name for a in node.names}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


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


def use_case_modules(service: str) -> list[Path]:
    """The service layer, and the dossier's intakes of other services' events (use cases too)."""
    folder = ROOT / "services" / service
    return [folder / "service_layer.py", *sorted(folder.glob("*_intake.py"))]


def test_every_service_is_checked():
    assert {"dossier", "metrics", "postal", "esign"} <= set(SERVICES)


def test_no_use_case_imports_http_or_the_framework():
    """Use cases raise the domain's errors; shared/http.py problem_for answers them (one place)."""
    for service in SERVICES:

        def check(service: str = service) -> None:
            modules = use_case_modules(service)
            assert modules[0].is_file(), f"services/{service} has no service_layer.py"
            for path in modules:
                for module in imports(path):
                    banned = module.split(".")[0] in HTTP_AND_FRAMEWORK or module in HTTP_AND_FRAMEWORK
                    assert not banned, f"{path.relative_to(ROOT)} imports {module}"

        check()


def test_no_service_emits_by_hand():
    """Events reach the outbox only from the aggregates a TrackingRepository has seen (shared/uow.py):
    no service calls ``emit``, writes the outbox itself, registers its own collector or builds an
    envelope outside its ``events.py``."""
    for service in SERVICES:

        def check(service: str = service) -> None:
            for path in (ROOT / "services" / service).rglob("*.py"):
                text, where = path.read_text(encoding="utf-8"), path.relative_to(ROOT)
                assert ".emit(" not in text, where
                assert "collect_from(" not in text, where
                assert not writes_the_outbox(path), where
                if path.name != "events.py":  # services/<name>/events.py: where its envelopes are made
                    assert "build_event(" not in text, where

        check()
    # Within shared/, only the unit of work writes the outbox.
    writers = [path.relative_to(ROOT) for path in (ROOT / "shared").glob("*.py") if writes_the_outbox(path)]
    assert writers == [Path("shared/uow.py")]


def test_every_service_that_publishes_has_a_tracking_repository():
    from shared.uow import TrackingRepository

    catalogue = load_catalogue()
    for service in sorted({entry.source for entry in catalogue.values()}):

        def check(service: str = service) -> None:
            module = importlib.import_module(f"services.{service}.repository")
            tracking = [
                cls
                for cls in vars(module).values()
                if inspect.isclass(cls)
                and issubclass(cls, TrackingRepository)
                and cls is not TrackingRepository
            ]
            assert tracking, f"services/{service}/repository.py has no TrackingRepository"

        check()


def typed_events() -> dict[str, type[DomainEvent]]:
    """Every typed event of every service's domain, by its catalogue type."""
    found: dict[str, type[DomainEvent]] = {}
    for path in sorted(ROOT.glob("services/*/domain/*.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, DomainEvent) and "name" in vars(cls):
                found[f"vn.motcua.{cls.source}.{cls.name}"] = cls
    return found


def test_every_event_type_has_a_typed_event_a_schema_and_an_asyncapi_entry():
    """Each published event is a DomainEvent dataclass of its service's domain, with its schema in the
    catalogue (validated by build_event) and its message and JSON schema in the generated documents."""
    catalogue = load_catalogue()
    typed = typed_events()
    assert set(typed) <= set(catalogue), set(typed) - set(catalogue)
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
    messages = {message["name"] for message in asyncapi["components"]["messages"].values()}
    for entry in catalogue.values():
        assert entry.type in messages, f"{entry.type} is not in docs/asyncapi.yaml"
        assert (ROOT / "docs" / "schemas" / f"{entry.type}.json").is_file(), entry.type
    for service in sorted({entry.source for entry in catalogue.values()}):

        def check(service: str = service) -> None:
            for entry in catalogue.values():
                if entry.source == service:
                    assert entry.type in typed, f"{entry.type} has no DomainEvent dataclass"

        check()


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
    ("services/outbound/webhooks.py", "datetime.now"): "webhook-timestamp, checked ±5 min on the real clock",
    ("shared/neighbours.py", "datetime.now"): "a circuit's cool-down, an HTTP-date Retry-After",
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


# What only the one path of a change to a dossier does (services/dossier/service_layer.py follow, apply):
# open the transaction, claim the inbox, load and lock the dossier, re-plan its watch, write the audit line.
THE_ONE_PATH = {"transaction", "first_delivery", "dossiers", "schedule_watch", "audit", "AuditEntry"}


def test_the_dossier_intakes_only_map_events_to_changes():
    """Another service's event reaches a dossier the way a person's action does: its intake maps it to a
    ``Change`` and hands it to ``service_layer.follow``; it does none of the steps of the path itself."""
    intakes = sorted((ROOT / "services" / "dossier").glob("*_intake.py"))
    assert {path.name for path in intakes} >= {"postal_intake.py", "esign_intake.py"}
    for path in intakes:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        named |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        named |= {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        where = path.relative_to(ROOT)
        assert not named & THE_ONE_PATH, f"{where} does {sorted(named & THE_ONE_PATH)} itself"
        assert "follow" in named, f"{where} does not hand its changes to service_layer.follow"


def test_every_source_file_is_in_the_code_map():
    """ARCHITECTURE.md names every source file (or a pattern such as bench_*.py that covers it)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    words = (word.strip("`,.():") for word in text.split())
    patterns = {word for word in words if "*" in word and word.endswith(".py")}
    missing = [
        str(path.relative_to(ROOT))
        for folder in ("shared", "services", "simulators", "scripts", "benchmarks", "chaos")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "__init__.py"
        and "migrations" not in path.parts
        and path.name not in text
        and not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert not missing, f"not in ARCHITECTURE.md's code map: {missing}"
