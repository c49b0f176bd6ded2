"""The SLA report (``GET /api/v1/reports/sla``): groups, totals and the CSV, as plain Python.

Figures describe the dossiers *received* in the period by the unit's subtree (receiving unit), as
they stand when the report is made; see :mod:`services.metrics.projection` for each figure. The total
is the sum of the groups' tallies, and every rate is derived from summed counts, never averaged.
With ``group_by=unit`` the groups are the unit's direct children (plus the unit itself for dossiers
received at its own desk), so a province's figures are exactly the sum of its units'; ``group_by=level``
groups the receiving units by administrative level (a district's own desk apart from its communes).
Every group and the total carry Decision 766's scorecard (services/metrics/scorecard.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.metrics.projection import FIGURES, Tally, month_of
from services.metrics.scorecard import Definitions, definitions
from shared.units import UnitRegistry

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, quoted so it shows as text; numbers unchanged."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


@dataclass(frozen=True)
class Group:
    key: str
    name: str
    tally: Tally


@dataclass(frozen=True)
class SlaReport:
    unit: str
    unit_name: str
    first: date
    last: date
    group_by: str
    as_of: datetime
    groups: tuple[Group, ...]

    @property
    def scorecard(self) -> Definitions:
        """Decision 766's scorecard (services/metrics/scorecard.py), computed per group and for the total."""
        return definitions()

    @property
    def total(self) -> Tally:
        return sum((group.tally for group in self.groups), Tally())

    def as_dict(self) -> dict[str, Any]:
        card = self.scorecard
        return {
            "unit": self.unit,
            "unit_name": self.unit_name,
            "from": self.first,
            "to": self.last,
            "group_by": self.group_by,
            "as_of": self.as_of,
            "total": {**self.total.figures(), "scorecard": card.score(self.total)},
            "groups": [
                {"key": g.key, "name": g.name, **g.tally.figures(), "scorecard": card.score(g.tally)}
                for g in self.groups
            ],
        }

    def to_csv(self) -> str:
        """One row per group and a last row ``total``; empty cells where a rate has no denominator."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        scores = list(self.scorecard.flat(Tally()))
        writer.writerow([self.group_by, "name", *FIGURES, *scores])
        rows = [(g.key, g.name, g.tally) for g in self.groups] + [("total", self.unit_name, self.total)]
        for key, name, tally in rows:
            figures = {**tally.figures(), **self.scorecard.flat(tally)}
            cells = [key, name, *("" if figures[f] is None else figures[f] for f in (*FIGURES, *scores))]
            writer.writerow([neutralise(cell) for cell in cells])
        return out.getvalue()

    @property
    def filename(self) -> str:
        return f"sla-{self.unit}-{self.first}-{self.last}-by-{self.group_by}.csv"


def group_of(group_by: str, value: Any, unit: str, registry: UnitRegistry) -> tuple[str, str]:
    """The group (key, name) a value of the grouping column belongs to."""
    if group_by == "unit":
        path = registry.path(value)
        depth = len(registry.path(unit))
        key = path[depth] if len(path) > depth else unit
        return key, registry.get(key).name
    if group_by == "level":
        level = registry.get(value).level if value in registry else "unknown"
        return level, level
    if group_by == "month":
        month = month_of(value if isinstance(value, date) else date.fromisoformat(str(value)))
        return month, month
    return str(value), str(value)


def assemble(
    rows: Iterable[tuple[Any, Tally]],
    *,
    unit: str,
    first: date,
    last: date,
    group_by: str,
    as_of: datetime,
    registry: UnitRegistry,
) -> SlaReport:
    merged: dict[str, tuple[str, Tally]] = {}
    for value, tally in rows:
        key, name = group_of(group_by, value, unit, registry)
        _, so_far = merged.get(key, (name, Tally()))
        merged[key] = (name, so_far + tally)
    groups = tuple(Group(key, name, tally) for key, (name, tally) in sorted(merged.items()))
    return SlaReport(unit, registry.get(unit).name, first, last, group_by, as_of, groups)
