"""Decision 766/QĐ-TTg's scorecard: five groups of indicators, 100 points, computed from a report tally.

Plain Python. The weights, the targets and which indicator measures what are data
(``indicators_766.yml`` beside this module, the one place a later decision changes); this module only
knows each *measure*: a ratio of two counts of :class:`~services.metrics.projection.Tally`, so a
unit's scorecard is computed from summed counts and a province's is never an average of its units'.

An indicator earns ``points × min(1, ratio / target)``; an indicator whose ratio has no denominator
(nothing received, nothing decided, no fee paid) or that motcua does not measure (``measure: null``)
earns nothing and is reported as ``null``. The scorecard says how many of the 100 points motcua could
measure at all (``measured_points``), so a reader knows what the total is out of.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from services.metrics.projection import Tally

DEFINITIONS = Path(__file__).with_name("indicators_766.yml")
TOTAL_POINTS = 100


def _progress(tally: Tally) -> tuple[int, int]:
    good = tally.in_process_within_deadline + tally.decided_early + tally.decided_on_time + tally.withdrawn
    return good, tally.received


# What each ``measure`` of the definitions counts: (numerator, denominator) of a tally.
MEASURES: dict[str, Callable[[Tally], tuple[int, int]]] = {
    "progress": _progress,
    "online_dossiers": lambda t: (t.received_fully_online + t.received_partly_online, t.received),
    "online_payment": lambda t: (t.paid_online, t.paid),
    "digital_results": lambda t: (t.result_digital, t.decided),
    "dossiers_digitised": lambda t: (t.digitised, t.received),
    "data_reused": lambda t: (t.reused_data, t.received),
    "satisfaction": lambda t: (t.decided - t.rated_not_satisfied, t.decided),
}


class DefinitionError(ValueError):
    """The definitions file is not a scorecard motcua can compute: which entry, and why."""


@dataclass(frozen=True)
class Indicator:
    key: str
    name: str
    points: float
    measure: str | None
    target: float
    source: str


@dataclass(frozen=True)
class Group:
    key: str
    name: str
    points: float
    source: str
    indicators: tuple[Indicator, ...]


@dataclass(frozen=True)
class Definitions:
    decision: str
    groups: tuple[Group, ...]

    @property
    def indicators(self) -> tuple[Indicator, ...]:
        return tuple(indicator for group in self.groups for indicator in group.indicators)

    @property
    def measured_points(self) -> float:
        return sum(i.points for i in self.indicators if i.measure is not None)

    def score(self, tally: Tally) -> dict[str, Any]:
        """The scorecard of one tally: every indicator's ratio and points, each group's and the total."""
        groups, total = [], 0.0
        for group in self.groups:
            indicators, earned = [], 0.0
            for indicator in group.indicators:
                ratio = _ratio(*MEASURES[indicator.measure](tally)) if indicator.measure else None
                points = None if ratio is None else indicator.points * min(1.0, ratio / indicator.target)
                earned += points or 0.0
                indicators.append(
                    {
                        "key": indicator.key,
                        "measured": indicator.measure is not None,
                        "value": ratio,
                        "points": points,
                        "max_points": indicator.points,
                    }
                )
            total += earned
            groups.append(
                {"key": group.key, "points": earned, "max_points": group.points, "indicators": indicators}
            )
        return {
            "decision": self.decision,
            "points": total,
            "max_points": TOTAL_POINTS,
            "measured_points": self.measured_points,
            "groups": groups,
        }

    def flat(self, tally: Tally) -> dict[str, float | None]:
        """The scorecard as flat columns (the CSV): points per group and indicator, and the total."""
        card = self.score(tally)
        columns: dict[str, float | None] = {"points_766": card["points"]}
        for group in card["groups"]:
            columns[f"points_766_{group['key']}"] = group["points"]
            for indicator in group["indicators"]:
                if indicator["measured"]:
                    columns[f"points_766_{indicator['key']}"] = indicator["points"]
        return columns


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def parse(document: Mapping[str, Any]) -> Definitions:
    """Check a definitions document: known measures, positive points and targets, and groups whose
    indicators add up to the group and groups that add up to 100."""
    groups = []
    for g in document.get("groups") or ():
        indicators = []
        for i in g.get("indicators") or ():
            where = f"{g.get('key')}.{i.get('key')}"
            measure = i.get("measure")
            if measure is not None and measure not in MEASURES:
                raise DefinitionError(f"{where}: unknown measure {measure!r} (one of {', '.join(MEASURES)})")
            target = float(i.get("target", 1.0))
            if not 0 < target <= 1 or float(i["points"]) < 0:
                raise DefinitionError(f"{where}: points must be >= 0 and target in (0, 1]")
            indicators.append(
                Indicator(i["key"], i["name"], float(i["points"]), measure, target, str(i.get("source", "")))
            )
        group = Group(g["key"], g["name"], float(g["points"]), str(g.get("source", "")), tuple(indicators))
        if abs(sum(i.points for i in group.indicators) - group.points) > 1e-9:
            raise DefinitionError(f"{group.key}: its indicators' points do not add up to {group.points:g}")
        groups.append(group)
    if abs(sum(g.points for g in groups) - TOTAL_POINTS) > 1e-9:
        raise DefinitionError(f"the groups' points do not add up to {TOTAL_POINTS}")
    keys = [i.key for g in groups for i in g.indicators] + [g.key for g in groups]
    if len(set(keys)) != len(keys):
        raise DefinitionError("group and indicator keys must be unique")
    return Definitions(str(document.get("decision", "")), tuple(groups))


@cache
def definitions(path: Path = DEFINITIONS) -> Definitions:
    """The scorecard's definitions, read and checked once per process."""
    return parse(yaml.safe_load(path.read_text(encoding="utf-8")))
