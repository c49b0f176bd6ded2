"""An independent recomputation of the SLA report from simulated ground truth.

Deliberately shares nothing with services/metrics beyond the unit map: it reads the plain
:class:`~tests.support.metrics_streams.Truth` records and applies docs/domain.md's definitions directly,
so a mistake in the projection, the SQL or the report assembly shows up as a difference.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from shared.units import UnitRegistry
from tests.support.metrics_streams import VIETNAM, Truth, local_timeliness

IN_PROCESS = {2, 4, 5, 6, 8}


def _key(truth: Truth, unit: str, group_by: str, registry: UnitRegistry) -> str:
    if group_by == "unit":
        path, depth = registry.path(truth.receiving_unit), len(registry.path(unit))
        return path[depth] if len(path) > depth else unit
    if group_by == "level":
        return registry.get(truth.receiving_unit).level
    if group_by == "procedure":
        return truth.procedure_code
    if group_by == "field":
        return truth.procedure_field
    return truth.first_received_at.astimezone(VIETNAM).strftime("%Y-%m")


def oracle_report(
    truths: list[Truth],
    ratings: dict[str, str],
    registry: UnitRegistry,
    unit: str,
    first: date,
    last: date,
    group_by: str,
    now: datetime,
) -> dict[str, dict[str, float | int | None]]:
    """Figures per group key, plus the key ``"total"``."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for truth in truths:
        if truth.first_received_at is None:
            continue
        if not first <= truth.first_received_at.astimezone(VIETNAM).date() <= last:
            continue
        if not registry.is_within(truth.receiving_unit, unit):
            continue
        for key in (_key(truth, unit, group_by, registry), "total"):
            c = counts[key]
            c["received"] += 1
            if truth.resolved_at is not None:
                # docs/domain.md §6: after a Form 04 apology "the dossier still counts as late"
                late = truth.apologies > 0
                c[
                    "decided_"
                    + ("late" if late else local_timeliness(truth.resolved_at, truth.original_due_at))
                ] += 1
            elif truth.status == 7:
                c["withdrawn"] += 1
            else:
                assert truth.status in IN_PROCESS, truth
                # against the first appointment: an apology's new one never makes it timely
                late = truth.original_due_at < (truth.clock_stopped_at or now)
                c["in_process_overdue" if late else "in_process_within_deadline"] += 1
            c["supplemented"] += truth.supplements > 0
            c["received_online"] += truth.channel == 2
            c["received_postal"] += truth.channel == 3
            c["returned"] += truth.returned_at is not None
            c["returned_postal"] += truth.returned_by == "postal"
            c["rated"] += truth.code in ratings
            c["rated_not_satisfied"] += ratings.get(truth.code) == "not_satisfied"
    return {key: _figures(c) for key, c in counts.items()}


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _figures(c: dict[str, int]) -> dict[str, float | int | None]:
    early, on_time, late = c["decided_early"], c["decided_on_time"], c["decided_late"]
    decided = early + on_time + late
    received = c["received"]
    names = (
        "received",
        "decided_early",
        "decided_on_time",
        "decided_late",
        "withdrawn",
        "in_process_within_deadline",
        "in_process_overdue",
        "supplemented",
        "received_online",
        "received_postal",
        "returned",
        "returned_postal",
        "rated",
        "rated_not_satisfied",
    )
    figures: dict[str, float | int | None] = {name: c[name] for name in names}
    figures.update(
        decided=decided,
        on_time_rate=_share(early + on_time, decided),
        online_share=_share(c["received_online"], received),
        postal_share=_share(c["returned_postal"], received),
        postal_receipt_share=_share(c["received_postal"], received),
        supplement_rate=_share(c["supplemented"], received),
        satisfaction_rate=_share(decided - c["rated_not_satisfied"], decided),
        progress_score=None
        if received == 0
        else 20 * (c["in_process_within_deadline"] + early + on_time + c["withdrawn"]) / received,
    )
    return figures


def assert_same_figures(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    """Every figure of every group equal (rates to 1e-12); the groups themselves equal."""
    assert sorted(actual) == sorted(expected)
    for key, figures in expected.items():
        got = actual[key]
        for name, value in figures.items():
            if isinstance(value, float):
                assert got[name] is not None and abs(got[name] - value) < 1e-12, (key, name, got[name], value)
            else:
                assert got[name] == value, (key, name, got[name], value)
