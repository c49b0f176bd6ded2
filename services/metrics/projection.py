"""SLA facts of a dossier, folded from its events, and the figures offices are judged by.

Plain Python on purpose (no nameko, no SQL): the consumer, the rebuild command, the report and the
tests all fold events and count with these functions, so they cannot disagree.

The vocabulary (docs/domain.md §10 Figures that offices are judged by):

* A dossier is *received* (được tiếp nhận) at its first receipt; it counts in the period of that
  day (Vietnam time) and in its **receiving unit** (the desk the citizen deals with) for good, even
  when a completed supplement later resets its filing time or another agency handles it. One unit
  per dossier is what makes a province's figures exactly the sum of its units'.
* *Timeliness* of a decided dossier (đã giải quyết) is judged against ``original_due_at`` by the
  one rule of :mod:`shared.timeliness`. The dossier service sends it on ``dossier.resolved``; the
  same function is the fallback for events without it.
* A dossier *in process* (received, not decided, withdrawn or refused) is *overdue* once its
  original appointment (``original_due_at``; a Form 04 apology's new one does not count) has
  passed: by the passing of time, no event needed. While its clock is stopped
  (supplement, payment, stop) it is judged at the moment the clock stopped: a dossier stopped
  before its deadline cannot fall behind while the citizen holds the next move; one stopped after
  it stays overdue.
* Decision 766/QĐ-TTg progress score, as this module reads it::

      20 × (in process within deadline + decided early or on time + withdrawn) ÷ received

  over the dossiers received in the period, as they stand when the figure is computed. The
  formula's "returned" term is read as dossiers *given back without a result* at the applicant's
  request (withdrawn, status 7): a result handed over (status 10) is already counted among the
  decided ones, so counting it again could push the score past 20. Each received dossier falls in
  exactly one of: decided early / on time / late, withdrawn, in process within deadline / overdue.
* Satisfaction rate = (decided − rated "not satisfied") ÷ decided. Complaints are not modelled
  (nothing reports them yet), so the formula's "or complained about" term is zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from shared.timeliness import is_overdue, judge_timeliness
from shared.vocabulary import (
    CLOCK_STOPPED,
    IN_PROCESS,
    RATINGS,
    Channel,
    OnlineLevel,
    Rating,
    ReturnMethod,
    Status,
    Timeliness,
)

GROUPINGS = ("unit", "level", "procedure", "field", "month")

# Upper bounds (working days) of the resolution-time histogram. Counts are kept per bound in the
# totals table, so changing them takes a migration and a rebuild. Six buckets is what the
# cardinality budget allows per (unit, field) pair: see services/metrics/exposition.py.
RESOLUTION_BUCKETS = (1.0, 3.0, 5.0, 10.0, 20.0)
MICRO = 1_000_000
# The counts of dossier components an event may carry (docs/dossier-events.md, received / registered).
INTAKE_COUNTS = ("components_digitised", "components_reused", "components_national")
# The Decision 766 flags of a dossier's facts (DossierFacts).
FACT_FLAGS = ("vneid_verified", "paid", "paid_online", "result_digital")


class OutOfOrder(ValueError):
    """An event was folded onto facts that do not end just before its sequence."""


@dataclass(frozen=True)
class StreamEvent:
    """One dossier event as the projection needs it: from an envelope or from the event log."""

    name: str
    sequence: int
    time: datetime
    data: Mapping[str, Any]


@dataclass
class DossierFacts:
    """One dossier's SLA facts: who, what, when, and how it stands.

    ``receiving_unit``, ``procedure_field`` and ``channel`` are frozen at the first event: they
    key the counters, and a counter series must never lose what it counted.
    """

    code: str
    receiving_unit: str
    handling_unit: str
    procedure_code: str
    procedure_field: str
    channel: int
    return_method: int
    status: int
    online_level: str | None = None
    received_at: datetime | None = None
    received_on: date | None = None
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    clock_stopped_at: datetime | None = None
    resolved_at: datetime | None = None
    decision: str | None = None
    timeliness: str | None = None
    working_days: float | None = None
    returned_at: datetime | None = None
    returned_by: str | None = None
    withdrawn_at: datetime | None = None
    supplements: int = 0
    clock_stops: int = 0
    apologies: int = 0
    # What Decision 766's digitisation and online groups count (services/metrics/scorecard.py): the
    # dossier's components digitised at the desk, reused from the store of digitised papers, or taken
    # from a national database; an account verified with VNeID; fees paid (online or not); the result
    # issued digitally (sealed through the e-signature service).
    components_digitised: int = 0
    components_reused: int = 0
    components_national: int = 0
    vneid_verified: bool = False
    paid: bool = False
    paid_online: bool = False
    result_digital: bool = False
    last_sequence: int = 0

    @property
    def is_received(self) -> bool:
        return self.received_at is not None

    @property
    def filed_online_level(self) -> str | None:
        """The dossier's online level as filed: its procedure's level (toàn trình / một phần) when it
        came through the online channel, None when it came to the counter or by post."""
        return self.online_level if self.channel == Channel.ONLINE else None

    @property
    def digitised(self) -> bool:
        """At least one component digitised at the desk, reused, or taken from a national database."""
        return self.components_digitised + self.components_reused + self.components_national > 0

    @property
    def reused_data(self) -> bool:
        """At least one component reused from the store or taken from a national database."""
        return self.components_reused + self.components_national > 0

    @property
    def uncollected(self) -> bool:
        """Decided, its result ready at the desk, and not handed over (yet)."""
        return self.resolved_at is not None and self.returned_at is None

    @property
    def in_process(self) -> bool:
        return self.is_received and self.status in IN_PROCESS

    def is_overdue(self, now: datetime) -> bool:
        """Past its original appointment now, or already past it when its clock stopped.

        An apology's new appointment (``due_at``) does not count: the dossier stays overdue.
        """
        return self.in_process and is_overdue(self.original_due_at, now, self.clock_stopped_at)

    def standing(self, now: datetime) -> str | None:
        """Where a received dossier stands for the report: one bucket each, None if not received."""
        if not self.is_received:
            return None
        if self.resolved_at is not None:
            return self.timeliness or Timeliness.ON_TIME
        if self.status == Status.WITHDRAWN:
            return "withdrawn"
        if self.is_overdue(now):
            return "overdue"
        return "within_deadline"

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)  # exactly the fields: a plain dataclass, no slots, nothing else set

    def _with(self, changes: Mapping[str, Any]) -> DossierFacts:
        """``dataclasses.replace`` without re-running ``__init__``: a copy with ``changes`` (all fields)."""
        copy = object.__new__(DossierFacts)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


def _instant(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def apply(facts: DossierFacts | None, event: StreamEvent, timezone: tzinfo) -> DossierFacts:
    """The facts after ``event``; ``facts`` must end at ``event.sequence - 1`` (None before 1)."""
    expected = (facts.last_sequence if facts else 0) + 1
    if event.sequence != expected:
        raise OutOfOrder(f"event {event.sequence} of {event.data.get('code')} folded onto {expected - 1}")
    data = event.data
    at = _instant(data.get("occurred_at")) or event.time
    if facts is None:
        facts = DossierFacts(
            code=str(data["code"]),
            receiving_unit=str(data["receiving_unit"]),
            handling_unit=str(data.get("handling_unit") or data["receiving_unit"]),
            procedure_code=str(data["procedure_code"]),
            procedure_field=str(data["procedure_field"]),
            channel=int(data["channel"]),
            return_method=int(data.get("return_method", 0)),
            status=Status.REGISTERED,
        )
    status = int(data.get("status", facts.status))
    due_at = _instant(data["due_at"]) if "due_at" in data else facts.due_at
    changes: dict[str, Any] = {
        "status": status,
        "last_sequence": event.sequence,
        "handling_unit": str(data.get("handling_unit") or facts.handling_unit),
        "return_method": int(data.get("return_method", facts.return_method)),
        "online_level": data.get("online_level", facts.online_level),
        "due_at": due_at,
        # Events sent before original_due_at existed judge against the current appointment.
        "original_due_at": _instant(data.get("original_due_at")) or due_at or facts.original_due_at,
    }
    received_at = _instant(data.get("received_at"))
    if (
        facts.received_at is None
        and received_at is not None
        and status not in (Status.REGISTERED, Status.REFUSED)
    ):
        changes["received_at"] = received_at
        changes["received_on"] = received_at.astimezone(timezone).date()
    if status in CLOCK_STOPPED:
        if facts.status not in CLOCK_STOPPED:
            changes["clock_stops"] = facts.clock_stops + 1
            changes["clock_stopped_at"] = at
    else:
        changes["clock_stopped_at"] = None
    for name in INTAKE_COUNTS:
        # Cumulative counts the dossier service sends at filing (docs/dossier-events.md); never down.
        if name in data:
            changes[name] = max(int(data[name] or 0), getattr(facts, name))
    if data.get("vneid_verified"):
        changes["vneid_verified"] = True
    if event.name == "supplement_requested":
        changes["supplements"] = facts.supplements + 1
    elif event.name == "paid":
        # paid_online: added by the online payment (event contract 3.2); a missing flag is a desk payment.
        changes["paid"] = True
        changes["paid_online"] = facts.paid_online or bool(data.get("paid_online", False))
    elif event.name == "stamped":
        changes["result_digital"] = facts.result_digital or bool(data.get("digital", False))
    elif event.name == "apologized":
        changes["apologies"] = facts.apologies + 1
    elif event.name == "resolved" and facts.resolved_at is None:
        resolved_at = _instant(data.get("resolved_at")) or at
        working_days = data.get("working_days")
        changes.update(
            resolved_at=resolved_at,
            decision=data.get("decision"),
            timeliness=data.get("timeliness") or _fallback_timeliness(resolved_at, facts, changes, timezone),
            working_days=None if working_days is None else float(working_days),
        )
    elif event.name == "returned" and facts.returned_at is None:
        changes["returned_at"] = _instant(data.get("returned_at")) or at
        changes["returned_by"] = data.get("method") or ReturnMethod(changes["return_method"]).label
    elif event.name == "withdrawn" and facts.withdrawn_at is None:
        changes["withdrawn_at"] = at
    return facts._with(changes)


def _fallback_timeliness(
    resolved_at: datetime, facts: DossierFacts, changes: Mapping[str, Any], timezone: tzinfo
) -> str:
    """For ``resolved`` events that do not carry the dossier service's judgement: the same rule.

    An apology admits the delay: late whatever the date (docs/domain.md §6). Events do not name the
    duration unit, so the fallback judges by dates (shared/timeliness.py).
    """
    if facts.apologies:
        return Timeliness.LATE
    due = changes["original_due_at"]
    return Timeliness.ON_TIME if due is None else judge_timeliness(resolved_at, due, None, timezone)


def fold(facts: DossierFacts | None, events: Iterable[StreamEvent], timezone: tzinfo) -> DossierFacts | None:
    for event in events:
        facts = apply(facts, event, timezone)
    return facts


# -- counters: what each dossier adds to the totals behind the Prometheus counters -----------------

COUNTER_COLUMNS = (
    "received",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "resolution_count",
    "resolution_microdays",
    *(f"resolution_le_{int(bound)}" for bound in RESOLUTION_BUCKETS),
    "returned_counter",
    "returned_postal",
    "supplements",
)
RATING_COLUMNS = tuple(f"rated_{rating}" for rating in RATINGS)
TOTAL_COLUMNS = (*COUNTER_COLUMNS, *RATING_COLUMNS)
# A totals row as /metrics reads it: its key, then every total.
TOTALS_ROW = ("unit", "procedure_field", "channel", *TOTAL_COLUMNS)


def counter_key(facts: DossierFacts) -> tuple[str, str, int]:
    """The totals row a dossier counts in: receiving unit, procedure field, channel."""
    return facts.receiving_unit, facts.procedure_field, facts.channel


def contribution(facts: DossierFacts | None) -> dict[str, int]:
    """What one dossier adds to its totals row; the totals are the sum of these plus the ratings."""
    counts = dict.fromkeys(COUNTER_COLUMNS, 0)
    if facts is None or not facts.is_received:
        return counts
    counts["received"] = 1
    counts["supplements"] = facts.supplements
    if facts.resolved_at is not None:
        counts[f"resolved_{facts.timeliness or 'on_time'}"] = 1
        if facts.working_days is not None:
            counts["resolution_count"] = 1
            # Millionths of a working day: integer sums do not depend on the order of addition,
            # so a rebuild gives the very same totals.
            counts["resolution_microdays"] = round(facts.working_days * MICRO)
            for bound in RESOLUTION_BUCKETS:
                if facts.working_days <= bound:
                    counts[f"resolution_le_{int(bound)}"] = 1
    if facts.returned_at is not None:
        counts[
            "returned_postal" if facts.returned_by == ReturnMethod.POSTAL.label else "returned_counter"
        ] = 1
    return counts


def counter_delta(before: DossierFacts | None, after: DossierFacts) -> dict[str, int]:
    """The non-zero changes of the totals when ``before`` becomes ``after`` (same key by design)."""
    old, new = contribution(before), contribution(after)
    return {column: new[column] - old[column] for column in COUNTER_COLUMNS if new[column] != old[column]}


# -- the report: one tally per group, figures derived from summed tallies ---------------------------


@dataclass
class Tally:
    """Counts of received dossiers by where they stand; additive, so groups sum to their total."""

    received: int = 0
    decided_early: int = 0
    decided_on_time: int = 0
    decided_late: int = 0
    withdrawn: int = 0
    in_process_within_deadline: int = 0
    in_process_overdue: int = 0
    supplemented: int = 0
    received_online: int = 0
    received_postal: int = 0
    returned: int = 0
    returned_postal: int = 0
    rated: int = 0
    rated_not_satisfied: int = 0
    received_fully_online: int = 0
    received_partly_online: int = 0
    vneid_verified: int = 0
    digitised: int = 0
    reused_data: int = 0
    paid: int = 0
    paid_online: int = 0
    result_digital: int = 0
    uncollected: int = 0

    STANDING_COLUMNS: ClassVar[dict[str, str]] = {
        Timeliness.EARLY: "decided_early",
        Timeliness.ON_TIME: "decided_on_time",
        Timeliness.LATE: "decided_late",
        "withdrawn": "withdrawn",
        "within_deadline": "in_process_within_deadline",
        "overdue": "in_process_overdue",
    }

    def count(self, facts: DossierFacts, now: datetime, rating: str | None = None) -> None:
        """Add one dossier as it stands at ``now`` (the plain-Python twin of the report query)."""
        standing = facts.standing(now)
        if standing is None:
            return
        self.received += 1
        column = self.STANDING_COLUMNS[standing]
        setattr(self, column, getattr(self, column) + 1)
        self.supplemented += facts.supplements > 0
        self.received_online += facts.channel == Channel.ONLINE
        self.received_postal += facts.channel == Channel.POSTAL
        self.returned += facts.returned_at is not None
        self.returned_postal += (
            facts.returned_at is not None and facts.returned_by == ReturnMethod.POSTAL.label
        )
        self.rated += rating is not None
        self.rated_not_satisfied += rating == Rating.NOT_SATISFIED
        self.received_fully_online += facts.filed_online_level == OnlineLevel.FULL
        self.received_partly_online += facts.filed_online_level == OnlineLevel.PARTIAL
        self.vneid_verified += facts.vneid_verified
        self.digitised += facts.digitised
        self.reused_data += facts.reused_data
        self.paid += facts.paid
        self.paid_online += facts.paid and facts.paid_online
        self.result_digital += facts.resolved_at is not None and facts.result_digital
        self.uncollected += facts.uncollected

    def __add__(self, other: Tally) -> Tally:
        return Tally(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def decided(self) -> int:
        return self.decided_early + self.decided_on_time + self.decided_late

    def figures(self) -> dict[str, int | float | None]:
        """Counts and the rates of the report; a rate over nothing is None, not 0."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "decided": self.decided,
            "on_time_rate": _ratio(self.decided_early + self.decided_on_time, self.decided),
            "online_share": _ratio(self.received_online, self.received),
            "postal_share": _ratio(self.returned_postal, self.received),
            "postal_receipt_share": _ratio(self.received_postal, self.received),
            "supplement_rate": _ratio(self.supplemented, self.received),
            "satisfaction_rate": _ratio(self.decided - self.rated_not_satisfied, self.decided),
            "progress_score": progress_score(self),
            "fully_online_share": _ratio(self.received_fully_online, self.received),
            "partly_online_share": _ratio(self.received_partly_online, self.received),
            "vneid_share": _ratio(self.vneid_verified, self.received_online),
            "digitised_share": _ratio(self.digitised, self.received),
            "reuse_share": _ratio(self.reused_data, self.received),
            "online_payment_share": _ratio(self.paid_online, self.paid),
            "digital_result_share": _ratio(self.result_digital, self.decided),
        }


def progress_score(tally: Tally) -> float | None:
    """Decision 766 "progress of handling" (20 points): see the module docstring for the reading."""
    good = tally.in_process_within_deadline + tally.decided_early + tally.decided_on_time + tally.withdrawn
    ratio = _ratio(good, tally.received)
    return None if ratio is None else 20 * ratio


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


FIGURES = tuple(Tally().figures())


@dataclass(frozen=True)
class Period:
    """Receipt days ``first`` to ``last`` inclusive, in Vietnam local dates."""

    first: date
    last: date
    timezone: tzinfo = field(compare=False)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), self.timezone)

    @property
    def end(self) -> datetime:
        """Exclusive: the start of the day after ``last``."""
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), self.timezone)


def month_of(day: date) -> str:
    return day.strftime("%Y-%m")
