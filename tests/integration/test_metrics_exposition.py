"""The cardinality budget (docs/contracts.md §4): a province with all its communes and every procedure field
stays under 20,000 series — counted from a real /metrics render of the worst case, on both databases.

The worst case: every unit of the largest province of the default map (and its own desk) with
dossiers in every field of the catalogue, through every channel, decided early, on time and late,
returned at the counter and by post, supplemented, rated every way, and overdue now.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY as PROMETHEUS_REGISTRY
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.dossier.catalogue_files import load_catalogue
from services.metrics import repository
from services.metrics.exposition import SlaCollector, UnitLabels, render
from services.metrics.models import dossier_facts
from services.metrics.projection import DossierFacts
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import RATINGS

pytestmark = pytest.mark.integration

BUDGET = 20_000
REGISTRY = UnitRegistry.default()


def largest_province() -> str:
    provinces = REGISTRY.units_at_level("province")
    return max(provinces, key=lambda p: len(REGISTRY.descendants(p.code))).code


def dossier(number: int, unit: str, field: str, channel: int, now: datetime, **values) -> DossierFacts:
    return DossierFacts(
        code=f"{unit}-{number:07d}",
        receiving_unit=unit,
        handling_unit=unit,
        procedure_code="1.000001",
        procedure_field=field,
        channel=channel,
        return_method=0,
        status=values.pop("status", 10),
        received_at=now - timedelta(days=10),
        received_on=date.today(),
        due_at=now - timedelta(days=1),
        original_due_at=now - timedelta(days=1),
        last_sequence=1,
        **values,
    )


def worst_case(province: str, fields: list[str], now: datetime) -> list[DossierFacts]:
    facts: list[DossierFacts] = []
    for unit, field in itertools.product(sorted(REGISTRY.descendants(province)), fields):
        for channel in (1, 2, 3):
            early = {"resolved_at": now - timedelta(days=2), "timeliness": "early", "working_days": 0.5}
            returned = {"returned_at": now - timedelta(days=1), "returned_by": "postal", "supplements": 1}
            facts.append(dossier(len(facts), unit, field, channel, now, **early, **returned))
        for timeliness, days in (("on_time", 4.0), ("late", 25.0)):
            decided = {"resolved_at": now, "timeliness": timeliness, "working_days": days}
            facts.append(
                dossier(len(facts), unit, field, 1, now, **decided, returned_at=now, returned_by="counter")
            )
        facts.append(dossier(len(facts), unit, field, 1, now, status=4))  # in process, overdue now
    return facts


def _sample(line: str) -> bool:
    return bool(line) and not line.startswith("#")


def one_metrics_process_pipeline_series() -> list[str]:
    """The pipeline series a freshly started metrics service process exports before any event."""
    script = (
        "import services.metrics.service; from prometheus_client import REGISTRY, generate_latest; "
        "print(generate_latest(REGISTRY).decode())"
    )
    page = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return [line for line in page.splitlines() if _sample(line)]


def test_a_whole_province_with_every_field_stays_under_the_series_budget(database_url):
    upgrade("metrics", database_url)
    engine = create_engine(database_url)
    province = largest_province()
    fields = sorted(load_catalogue().fields())
    now = datetime.now(UTC)
    with engine.begin() as connection:
        repository.bulk_insert_facts(connection, worst_case(province, fields, now))
    with sa.orm.Session(engine) as session, session.begin():
        for unit in REGISTRY.descendants(province):
            codes = session.execute(
                sa.select(dossier_facts.c.code).where(dossier_facts.c.receiving_unit == unit).limit(3)
            ).scalars()
            for code, rating in zip(codes, RATINGS, strict=True):
                facts = repository.load_facts(session, code)
                assert repository.add_rating(session, facts, rating, now, "tablet")

    eight_hours = timedelta(hours=8)
    # The page starts with this process's pipeline metrics, which earlier tests in the same pytest process
    # fill with their own services and queues: count those of one service process (a fresh interpreter).
    pipeline = [line for line in generate_latest(PROMETHEUS_REGISTRY).decode().splitlines() if _sample(line)]
    page = render(SlaCollector(engine, UnitLabels(REGISTRY, 2), timedelta(hours=24), eight_hours)).decode()
    engine.dispose()

    sla_series = [line for line in page.splitlines() if _sample(line)][len(pipeline) :]
    series = sla_series + one_metrics_process_pipeline_series()
    sla = [s for f in text_string_to_metric_families(page) for s in f.samples if "unit" in s.labels]
    units = {s.labels["unit"] for s in sla}
    pairs = {(s.labels["unit"], s.labels["procedure_field"]) for s in sla if "procedure_field" in s.labels}
    # The render really is the worst case: every unit, every field, every label value.
    assert units == set(REGISTRY.descendants(province))
    assert pairs == set(itertools.product(units, fields))
    assert all(s.value > 0 for s in sla if s.name.endswith(("_total", "_count", "_overdue")))
    print(f"{province}: {len(units)} units x {len(fields)} fields -> {len(series)} series")
    assert len(series) < BUDGET
    # docs/contracts.md §4: promtool reports nothing, for the worst case too (test_metrics_service requires
    # promtool on CI; here it is checked where installed).
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=page,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout
