"""A generated month of dossiers, folded by the projection, against an independent oracle.

Plain Python: the event streams of simulated dossiers are folded with ``projection.fold``, tallied
and grouped like the report, and every figure is compared with the oracle's recomputation from the
ground truth (tests/support/metrics_oracle.py). The same comparison through the databases and the
SQL report is in tests/integration/test_metrics_projection_db.py.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.metrics.projection import GROUPINGS, DossierFacts, StreamEvent, Tally, fold
from services.metrics.report import SlaReport, assemble
from shared.units import UnitRegistry
from shared.vocabulary import RATINGS
from tests.support.metrics_oracle import assert_same_figures, oracle_report
from tests.support.metrics_streams import simulate_period

VN = ZoneInfo("Asia/Ho_Chi_Minh")
REGISTRY = UnitRegistry.default()
PROVINCE = "79"
COMMUNES = [unit.code for unit in REGISTRY.children(PROVINCE)[:6]]
UNITS = [PROVINCE, *COMMUNES]
GROUP_VALUE = {
    "unit": lambda f: f.receiving_unit,
    "level": lambda f: f.receiving_unit,
    "procedure": lambda f: f.procedure_code,
    "field": lambda f: f.procedure_field,
    "month": lambda f: f.received_on,
}


def project(truths) -> list[DossierFacts]:
    facts = []
    for truth in truths:
        folded = fold(None, [StreamEvent(e.name, e.sequence, e.time, e.data) for e in truth.events], VN)
        if folded is not None:
            facts.append(folded)
    return facts


def plain_report(facts, ratings, unit, first, last, group_by, now) -> SlaReport:
    subtree = REGISTRY.descendants(unit)
    rows = []
    for item in facts:
        if item.is_received and item.receiving_unit in subtree and first <= item.received_on <= last:
            tally = Tally()
            tally.count(item, now, ratings.get(item.code))
            rows.append((GROUP_VALUE[group_by](item), tally))
    return assemble(rows, unit=unit, first=first, last=last, group_by=group_by, as_of=now, registry=REGISTRY)


def figures_by_key(report: SlaReport) -> dict[str, dict]:
    answer = report.as_dict()
    return {"total": answer["total"], **{group["key"]: group for group in answer["groups"]}}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_figure_of_a_generated_month_matches_the_oracle(seed):
    now = datetime.now(UTC).replace(microsecond=0)
    first = (now - timedelta(days=30)).astimezone(VN).date()
    # A month, plus dossiers from the fortnight before it that the period must leave out.
    truths = simulate_period(
        seed, REGISTRY, UNITS, first - timedelta(days=14), 44, 1500, now, interlinked_to="79"
    )
    rng = random.Random(seed)
    ratings = {t.code: rng.choice(RATINGS) for t in truths if t.returned_at and rng.random() < 0.5}
    facts = project(truths)
    last = now.astimezone(VN).date()
    for unit in (PROVINCE, COMMUNES[0]):
        for group_by in GROUPINGS:
            expected = oracle_report(truths, ratings, REGISTRY, unit, first, last, group_by, now)
            actual = figures_by_key(plain_report(facts, ratings, unit, first, last, group_by, now))
            assert_same_figures(actual, expected)
    # The generated month exercises every bucket, or the comparison proves little.
    total = oracle_report(truths, ratings, REGISTRY, PROVINCE, first, last, "unit", now)["total"]
    for name in ("decided_early", "decided_on_time", "decided_late", "withdrawn", "in_process_overdue"):
        assert total[name] > 0, name
    assert total["in_process_within_deadline"] > 0 and total["rated_not_satisfied"] > 0
    # ... and apologies both ways: decided by the original due date yet late, and in process past the
    # original appointment (overdue, whatever the apology's new one says).
    apologised = [t for t in truths if t.apologies and t.first_received_at.astimezone(VN).date() >= first]
    original_day = {t.code: t.original_due_at.astimezone(VN).date() for t in apologised}
    assert any(
        t.resolved_at and t.resolved_at.astimezone(VN).date() <= original_day[t.code] for t in apologised
    )
    assert any(t.resolved_at is None and t.status != 7 and t.original_due_at < now for t in apologised)


def test_the_oracle_would_notice_a_wrong_figure():
    now = datetime.now(UTC)
    first = (now - timedelta(days=30)).astimezone(VN).date()
    truths = simulate_period(7, REGISTRY, UNITS, first, 30, 200, now)
    last = now.astimezone(VN).date()
    actual = figures_by_key(plain_report(project(truths), {}, PROVINCE, first, last, "field", now))
    expected = oracle_report(truths, {}, REGISTRY, PROVINCE, first, last, "field", now)
    actual["total"]["decided_late"] += 1
    with pytest.raises(AssertionError):
        assert_same_figures(actual, expected)
