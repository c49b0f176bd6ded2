"""The SLA metrics of docs/contracts.md §4 Prometheus metrics, rendered from the projection at scrape time.

Counters are the totals kept in the database, so they survive restarts and rebuilds unchanged;
gauges are counted from the facts at the moment of the scrape, so "overdue" follows the clock and is
right from the first scrape after a restart. Every series is labelled by the receiving unit taken at
``METRICS_UNIT_DEPTH`` (``UnitRegistry.at_depth``).

Resolution time is exposed in the base unit Prometheus asks for, seconds of office (working) time:
the projection keeps it in working days, as the dossier events carry it, and one working day is the
calendar's ``day_length`` (8 h = 28,800 s by default). The bucket bounds are the projection's
``RESOLUTION_BUCKETS`` (1, 3, 5, 10, 20 working days) in those seconds.

Cardinality budget (a province with all its communes and all procedure fields under 20,000 series).
Every family below is zero-filled over the units and (unit, field) pairs that have any dossier, so the
worst case is every pair present. For Hồ Chí Minh City (168 communes + the province's own desk = 169
units) and the catalogue's 8 fields that is 1,352 pairs, and each (unit, field) series costs 1,352:

* per pair: resolved by timeliness 3, overdue 1, supplement requests 1, resolution histogram 8
  (6 buckets + sum + count) = 13  ->  17,576
* per unit: received by channel 3, returned by method 2, in process 1, due soon 1, ratings 3 = 10
  ->  1,690

plus, per unit at ``METRICS_SCORECARD_DEPTH`` (default 1, the province: 1 unit), Decision 766's
scorecard: points of 5 groups and the total, ratios of 7 measured indicators = 13 -> 13;
about 19,300 with the pipeline metrics. The labels docs/contracts.md §4 allows but no dashboard or alert
reads are what was left out to fit: ``procedure_field`` on received and in-process, ``channel`` on
resolved (each would add 1,352 × 3, 1,352 and 1,352 × 6 series). ``test_metrics_exposition`` renders
that worst case and counts.

Replicas: every series here is the database's, the same whichever replica reads it, so one replica
only exports them: the one holding the ``motcua-sla-exporter`` advisory lock (shared/leadership.py),
as ``motcua_metrics_sla_exporter`` 1 shows. The others serve the API and their own process metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prometheus_client import REGISTRY, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from services.metrics import repository
from services.metrics.projection import MICRO, RESOLUTION_BUCKETS, TOTALS_ROW, Period, Tally
from services.metrics.scorecard import definitions
from shared import clock as shared_clock
from shared.units import UnitRegistry
from shared.vocabulary import RATINGS, RETURN_METHODS, TIMELINESS, Channel

SERVICE = "metrics"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
# The scorecard gauges' unit depth unless METRICS_SCORECARD_DEPTH says otherwise: the province.
SCORECARD_DEPTH = 1


def _channel_label(code: int) -> str:
    """The ``channel`` label value; a code the vocabulary does not know shows as itself."""
    try:
        return Channel(code).label
    except ValueError:
        return str(code)


def bucket_bounds(day_length: timedelta) -> tuple[str, ...]:
    """The ``le`` labels of the resolution histogram: ``RESOLUTION_BUCKETS`` working days in seconds."""
    day_seconds = day_length.total_seconds()
    return tuple(floatToGoString(bound * day_seconds) for bound in RESOLUTION_BUCKETS)


class UnitLabels:
    """Receiving unit code -> the ``unit`` label at the configured depth (codes unknown to the map
    keep their own code, so nothing is silently merged)."""

    def __init__(self, registry: UnitRegistry, depth: int) -> None:
        self.registry = registry
        self.depth = depth
        self._cache: dict[str, str] = {}

    def __call__(self, code: str) -> str:
        label = self._cache.get(code)
        if label is None:
            label = self.registry.at_depth(code, self.depth) if code in self.registry else code
            self._cache[code] = label
        return label


@dataclass(frozen=True)
class Family:
    """One metric family: its name, type, help and labels, and where its values come from."""

    name: str
    type: str
    documentation: str
    labels: tuple[str, ...]

    @property
    def exposed_name(self) -> str:
        return f"{self.name}_total" if self.type == "counter" else self.name


RECEIVED = Family(
    "motcua_dossiers_received",
    "counter",
    "Dossiers received (first receipt), by receiving unit and channel.",
    ("unit", "channel"),
)
RESOLVED = Family(
    "motcua_dossiers_resolved",
    "counter",
    "Dossiers decided, by receiving unit, procedure field and timeliness against the due date.",
    ("unit", "procedure_field", "timeliness"),
)
RETURNED = Family(
    "motcua_dossiers_returned",
    "counter",
    "Results handed over to the applicant, by receiving unit and method (counter or post).",
    ("unit", "method"),
)
SUPPLEMENTS = Family(
    "motcua_supplement_requests",
    "counter",
    "Requests to supplement a dossier, by receiving unit and procedure field.",
    ("unit", "procedure_field"),
)
RATED = Family(
    "motcua_satisfaction_ratings",
    "counter",
    "Satisfaction ratings taken at the desk, by receiving unit and rating.",
    ("unit", "rating"),
)
RESOLUTION = Family(
    "motcua_dossier_resolution_working_seconds",
    "histogram",
    "Office (working) time from filing to decision in seconds, clock stops excluded; one working day "
    "is the calendar's day length (28800 s by default). By receiving unit and field.",
    ("unit", "procedure_field"),
)
IN_PROCESS = Family(
    "motcua_dossiers_in_process",
    "gauge",
    "Dossiers received and not yet decided, withdrawn or refused, by receiving unit.",
    ("unit",),
)
OVERDUE = Family(
    "motcua_dossiers_overdue",
    "gauge",
    "Dossiers in process past their due time now (or when their clock stopped).",
    ("unit", "procedure_field"),
)
DUE_SOON = Family(
    "motcua_dossiers_due_soon",
    "gauge",
    "Dossiers in process, clock running, due within METRICS_DUE_SOON_HOURS.",
    ("unit",),
)
WAITING = Family(
    "motcua_events_waiting",
    "gauge",
    "Consumed events held back until an earlier event of the same dossier arrives.",
    ("service",),
)
SCORE = Family(
    "motcua_decision766_points",
    "gauge",
    "Decision 766/QĐ-TTg scorecard points this month so far (dossiers received since the 1st, Vietnam "
    "time), by unit at METRICS_SCORECARD_DEPTH and group (transparency, progress, online, digitisation, "
    "satisfaction; total). Weights: services/metrics/indicators_766.yml.",
    ("unit", "group"),
)
INDICATOR = Family(
    "motcua_decision766_indicator_ratio",
    "gauge",
    "Decision 766/QĐ-TTg indicator ratios this month so far, by unit at METRICS_SCORECARD_DEPTH and "
    "indicator; absent while an indicator has nothing to divide by.",
    ("unit", "indicator"),
)
SIMPLE = (RECEIVED, RESOLVED, RETURNED, SUPPLEMENTS, RATED)
GAUGES = (IN_PROCESS, OVERDUE, DUE_SOON, WAITING, SCORE, INDICATOR)


@dataclass
class Snapshot:
    """Every SLA series of one scrape: label values -> value, per family (histograms apart)."""

    values: dict[Family, dict[tuple[str, ...], float]] = field(default_factory=dict)
    # (unit, field) -> cumulative counts per bucket bound, then the count and the sum (seconds).
    resolution: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # The ``le`` label of each bucket bound, in seconds.
    bounds: tuple[str, ...] = ()


def snapshot(
    totals: Iterable[tuple],
    backlog: Iterable[Any],
    waiting: int,
    unit_of: Callable[[str], str],
    day_length: timedelta,
) -> Snapshot:
    """Sum totals rows (``TOTALS_ROW`` tuples) and backlog rows to the series of the configured unit
    depth; resolution times turn from working days into seconds of ``day_length`` each. Positional
    and list-based on purpose: it runs over thousands of rows per scrape."""
    at = {name: index for index, name in enumerate(TOTALS_ROW)}
    resolved_at = [at[f"resolved_{timeliness}"] for timeliness in TIMELINESS]
    rated_at = [at[f"rated_{rating}"] for rating in RATINGS]
    histogram_at = [at[f"resolution_le_{int(bound)}"] for bound in RESOLUTION_BUCKETS]
    histogram_at += [at["resolution_count"], at["resolution_microdays"]]
    received_at, supplements_at = at["received"], at["supplements"]
    counter_at, postal_at = at["returned_counter"], at["returned_postal"]

    received: dict[tuple[str, ...], float] = defaultdict(float)
    per_unit: dict[str, list[float]] = {}  # returned at the counter, by post, then one per rating
    per_pair: dict[tuple[str, str], list[float]] = {}  # supplements, one per timeliness, the histogram
    width = 1 + len(resolved_at) + len(histogram_at)
    for row in totals:
        unit, procedure_field = unit_of(row[0]), row[1]
        received[unit, _channel_label(row[2])] += row[received_at]
        counts = per_unit.get(unit)
        if counts is None:
            counts = per_unit[unit] = [0.0] * (2 + len(rated_at))
        counts[0] += row[counter_at]
        counts[1] += row[postal_at]
        for offset, index in enumerate(rated_at, 2):
            counts[offset] += row[index]
        pair = per_pair.get((unit, procedure_field))
        if pair is None:
            pair = per_pair[unit, procedure_field] = [0.0] * width
        pair[0] += row[supplements_at]
        for offset, index in enumerate(resolved_at + histogram_at, 1):
            pair[offset] += row[index]

    units, pairs = sorted(per_unit), sorted(per_pair)
    in_process = {(unit,): 0.0 for unit in units}
    due_soon = {(unit,): 0.0 for unit in units}
    overdue = dict.fromkeys(pairs, 0.0)
    for row in backlog:
        unit = unit_of(row.receiving_unit)
        in_process[unit,] = in_process.get((unit,), 0.0) + row.in_process
        due_soon[unit,] = due_soon.get((unit,), 0.0) + row.due_soon
        key = (unit, row.procedure_field)
        overdue[key] = overdue.get(key, 0.0) + row.overdue
    first = 1 + len(TIMELINESS)
    day_seconds = day_length.total_seconds()
    resolution = {}
    for pair in pairs:
        observed = per_pair[pair][first:]
        observed[-1] = observed[-1] * day_seconds / MICRO  # millionths of a working day -> seconds
        resolution[pair] = observed
    return Snapshot(
        values={
            RECEIVED: dict(sorted(received.items())),
            RESOLVED: {
                (*pair, timeliness): per_pair[pair][offset]
                for pair in pairs
                for offset, timeliness in enumerate(TIMELINESS, 1)
            },
            RETURNED: {
                (unit, method): per_unit[unit][offset]
                for unit in units
                for offset, method in enumerate(RETURN_METHODS)
            },
            SUPPLEMENTS: {pair: per_pair[pair][0] for pair in pairs},
            RATED: {
                (unit, rating): per_unit[unit][offset]
                for unit in units
                for offset, rating in enumerate(RATINGS, 2)
            },
            IN_PROCESS: dict(sorted(in_process.items())),
            OVERDUE: dict(sorted(overdue.items())),
            DUE_SOON: dict(sorted(due_soon.items())),
            WAITING: {(SERVICE,): float(waiting)},
            SCORE: {},
            INDICATOR: {},
        },
        resolution=resolution,
        bounds=bucket_bounds(day_length),
    )


def families(shot: Snapshot) -> Iterator[Metric]:
    """The snapshot as prometheus_client metric families (what :class:`SlaCollector` yields)."""
    for family in (*SIMPLE, RESOLUTION, *GAUGES):
        metric = Metric(family.name, family.documentation, family.type)
        if family is RESOLUTION:
            for pair, observed in shot.resolution.items():
                labels = dict(zip(family.labels, pair, strict=True))
                for bound, count in zip((*shot.bounds, "+Inf"), (*observed[:-2], observed[-2]), strict=True):
                    metric.samples.append(Sample(f"{family.name}_bucket", {**labels, "le": bound}, count))
                metric.samples.append(Sample(f"{family.name}_count", labels, observed[-2]))
                metric.samples.append(Sample(f"{family.name}_sum", labels, observed[-1]))
        else:
            for key, value in shot.values[family].items():
                metric.samples.append(
                    Sample(family.exposed_name, dict(zip(family.labels, key, strict=True)), value)
                )
        yield metric


def text(shot: Snapshot) -> str:
    """The snapshot in the text exposition format, exactly as ``generate_latest`` would write it.

    Written out because generate_latest validates and escapes every label name of every sample (and
    families need a dict per sample): for the ~19,000 series of a province that alone would take most
    of the render budget. Labels come out sorted by name, values escaped; a test holds the two equal.
    """
    lines: list[str] = []
    for family in (*SIMPLE, RESOLUTION, *GAUGES):
        name = family.exposed_name
        lines.append(f"# HELP {name} {_escape_help(family.documentation)}\n# TYPE {name} {family.type}\n")
        order = sorted(range(len(family.labels)), key=lambda i: family.labels[i])
        names = [family.labels[i] for i in order]
        if family is RESOLUTION:
            for pair, observed in shot.resolution.items():
                labels = ",".join(f'{n}="{_escape(pair[i])}"' for n, i in zip(names, order, strict=True))
                for bound, count in zip((*shot.bounds, "+Inf"), (*observed[:-2], observed[-2]), strict=True):
                    lines.append(f'{name}_bucket{{le="{bound}",{labels}}} {floatToGoString(count)}\n')
                lines.append(f"{name}_count{{{labels}}} {floatToGoString(observed[-2])}\n")
                lines.append(f"{name}_sum{{{labels}}} {floatToGoString(observed[-1])}\n")
            continue
        for key, value in shot.values[family].items():
            labels = ",".join(f'{n}="{_escape(key[i])}"' for n, i in zip(names, order, strict=True))
            lines.append(f"{name}{{{labels}}} {floatToGoString(value)}\n")
    return "".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(documentation: str) -> str:
    return documentation.replace("\\", r"\\").replace("\n", r"\n")


def scorecard(
    tallies: Iterable[tuple[Any, Tally]], unit_of: Callable[[str], str]
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """Decision 766's points per (unit, group) and ratios per (unit, indicator): each receiving unit's
    tally summed to its label first, so a label's scorecard is computed from summed counts."""
    summed: dict[str, Tally] = defaultdict(Tally)
    for unit, tally in tallies:
        summed[unit_of(unit)] += tally
    card = definitions()
    points, ratios = {}, {}
    for unit in sorted(summed):
        score = card.score(summed[unit])
        for group in score["groups"]:
            points[unit, group["key"]] = group["points"]
            for indicator in group["indicators"]:
                if indicator["value"] is not None:
                    ratios[unit, indicator["key"]] = indicator["value"]
        points[unit, "total"] = score["points"]
    return points, ratios


class SlaCollector(Collector):
    """Reads the projection at each scrape: the totals, the dossiers in process, and this month's
    dossiers for the Decision 766 scorecard (at ``scorecard_labels``' depth: default the province)."""

    def __init__(
        self,
        engine: sa.Engine,
        unit_labels: UnitLabels,
        due_soon: timedelta,
        day_length: timedelta,
        clock: Callable[[], datetime] = shared_clock.now,
        *,
        scorecard_labels: UnitLabels | None = None,
        timezone: tzinfo = VIETNAM,
    ) -> None:
        self.engine = engine
        self.unit_labels = unit_labels
        self.scorecard_labels = scorecard_labels or UnitLabels(unit_labels.registry, SCORECARD_DEPTH)
        self.due_soon = due_soon
        self.day_length = day_length
        self.clock = clock
        self.timezone = timezone

    def snapshot(self) -> Snapshot:
        now = self.clock()
        today = now.astimezone(self.timezone).date()
        month = Period(today.replace(day=1), today, self.timezone)
        with self.engine.connect() as connection:
            totals = repository.totals_rows(connection)
            backlog = repository.backlog_rows(connection, now, self.due_soon)
            waiting = repository.waiting_count(connection)
            tallies = repository.report_tallies(connection, None, month, now, "unit")
        shot = snapshot(totals, backlog, waiting, self.unit_labels, self.day_length)
        shot.values[SCORE], shot.values[INDICATOR] = scorecard(tallies, self.scorecard_labels)
        return shot

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshot())


SLA_EXPORTER = Gauge(
    "motcua_metrics_sla_exporter",
    "1 on the metrics replica elected to export the SLA families (the database's totals, once), "
    "0 on the others, which serve the API and their own process metrics.",
)


def render(collector: SlaCollector, *, exporting: bool = True) -> bytes:
    """The whole /metrics page: the process-wide pipeline metrics, then, on the elected exporter
    only, the SLA metrics (every replica reads the same database: two would count everything twice)."""
    SLA_EXPORTER.set(1 if exporting else 0)
    page = generate_latest(REGISTRY)
    return page + text(collector.snapshot()).encode() if exporting else page
