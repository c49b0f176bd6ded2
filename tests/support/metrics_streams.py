"""Simulated dossiers for the metrics tests and benchmarks: event streams plus the ground truth.

A small stand-in for the dossier service: each simulated dossier walks a random path through the
lifecycle of docs/dossier-events.md and emits the events that service would publish (status facts
on every event, sequence 1, 2, 3 …). What really happened is kept beside the events as a
:class:`Truth`, in plain fields, so an oracle can recompute every figure without the projection.
Seeded: the same seed gives the same dossiers and the same event ids.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope
from shared.events import Event
from shared.units import UnitRegistry
from shared.vocabulary import Channel, OnlineLevel, ReturnMethod, Status, StatusFacts, Timeliness

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
FIELDS = {
    "civil_status": ("1.001193", "1.000894"),
    "certification": ("2.000815",),
    "land": ("1.004227", "2.000889"),
    "business_registration": ("2.000720",),
    "residence": ("1.004194",),
}
DURATION_DAYS = (1, 3, 5, 10, 15)
# Events never fall this close to "now", so a report made a few seconds later sees the same thing.
MARGIN = timedelta(minutes=30)
EVENT_CLASSES = {event.name: event for event in EVENTS}


@dataclass
class Truth:
    """What happened to one dossier, as the dossier service knows it."""

    code: str
    receiving_unit: str
    handling_unit: str
    procedure_code: str
    procedure_field: str
    channel: int
    return_method: int
    status: int = 1
    first_received_at: datetime | None = None
    filed_at: datetime | None = None
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    clock_stopped_at: datetime | None = None
    resolved_at: datetime | None = None
    working_days: float | None = None
    returned_at: datetime | None = None
    returned_by: str | None = None
    supplements: int = 0
    apologies: int = 0
    events: list[Event] = field(default_factory=list)


class Simulator:
    """Walks dossiers through their lives and records the events, up to ``now``."""

    def __init__(self, seed: int, registry: UnitRegistry, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.registry = registry
        self.now = now
        self.counter = 0

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _due(self, start: datetime, days: int) -> datetime:
        due = start + timedelta(days=days * 1.4, hours=self.rng.uniform(0, 6))
        if abs(due - self.now) < MARGIN:
            due += 2 * MARGIN
        return due

    def _emit(
        self,
        truth: Truth,
        name: str,
        at: datetime,
        status: int | None = None,
        *,
        reason_code: str | None = None,
        **extra: Any,
    ) -> bool:
        """Record an event at ``at`` if that moment has come; False (and nothing) otherwise."""
        if at > self.now - MARGIN:
            return False
        if status is not None:
            truth.status = status
        facts = StatusFacts(
            code=truth.code,
            status=Status(truth.status),
            procedure_code=truth.procedure_code,
            procedure_version=1,
            procedure_field=truth.procedure_field,
            receiving_unit=truth.receiving_unit,
            handling_unit=truth.handling_unit,
            channel=Channel(truth.channel),
            return_method=ReturnMethod(truth.return_method),
            online_level=OnlineLevel.FULL.value if truth.channel == Channel.ONLINE else None,
            received_at=truth.filed_at,
            due_at=truth.due_at,
            original_due_at=truth.original_due_at,
            occurred_at=at,
        )
        # The dossier service's own event classes and envelope: its payload is what we fold.
        truth.events.append(
            envelope(
                EVENT_CLASSES[name](facts=facts, **extra),
                self.registry.routing_path(truth.receiving_unit),
                self.registry.routing_path(truth.handling_unit),
                len(truth.events) + 1,
                reason_code=reason_code,
                id=self._id(),
                time=at,
            )
        )
        return True

    def dossier(self, unit: str, received_at: datetime, *, handling_unit: str | None = None) -> Truth:
        rng = self.rng
        self.counter += 1
        procedure_field = rng.choice(sorted(FIELDS))
        channel = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        truth = Truth(
            code=f"{unit}-{received_at.astimezone(VIETNAM):%y%m%d}-{self.counter:05d}",
            receiving_unit=unit,
            handling_unit=unit,
            procedure_code=rng.choice(FIELDS[procedure_field]),
            procedure_field=procedure_field,
            channel=channel,
            return_method=1 if channel == 3 or rng.random() < 0.3 else 0,
        )
        if channel != 1 and rng.random() < 0.2:
            self._emit(truth, "registered", received_at - timedelta(hours=rng.uniform(1, 30)), 1)
            if rng.random() < 0.3:
                self._emit(
                    truth, "refused", received_at, 3, reason="hồ sơ giả", reason_code="incomplete_dossier"
                )
                return truth
        days = rng.choice(DURATION_DAYS)
        truth.filed_at = received_at
        truth.due_at = truth.original_due_at = self._due(received_at, days)
        if not self._emit(truth, "received", received_at, 2):
            truth.filed_at = truth.due_at = truth.original_due_at = None
            return truth
        truth.first_received_at = received_at
        self._life(truth, received_at, days, handling_unit)
        return truth

    def _stop_clock(
        self, truth: Truth, name: str, resumed: str, status: int, at: datetime, **extra
    ) -> datetime:
        """A clock stop and, if it has ended by now, its resumption: due dates move by the pause."""
        if not self._emit(truth, name, at, status, **extra):
            return at
        truth.clock_stopped_at = at
        back = at + timedelta(hours=self.rng.uniform(2, 120))
        pause = back - at
        moved_due, moved_original = truth.due_at + pause, truth.original_due_at + pause
        if abs(moved_due - self.now) < MARGIN or abs(moved_original - self.now) < MARGIN:
            return self.now  # resuming would put a due time next to "now": leave the clock stopped
        saved = truth.due_at, truth.original_due_at
        truth.due_at, truth.original_due_at, truth.clock_stopped_at = moved_due, moved_original, None
        if not self._emit(truth, resumed, back, 4):
            truth.due_at, truth.original_due_at = saved
            truth.clock_stopped_at = at
        return back

    def _life(self, truth: Truth, at: datetime, days: int, handling_unit: str | None) -> None:
        rng = self.rng
        step = timedelta(hours=days * rng.uniform(1.5, 7))

        def later() -> datetime:
            return at + step * rng.uniform(0.5, 1.5)

        at = later()
        if not self._emit(truth, "processing_started", at, 4, step="appraise"):
            return
        if rng.random() < 0.2:
            requested = later()
            if not self._emit(
                truth,
                "supplement_requested",
                requested,
                5,
                items=["a copy"],
                reason="missing",
                reason_code="incomplete_dossier",
            ):
                return
            truth.supplements += 1
            truth.clock_stopped_at = requested
            at = requested + timedelta(hours=rng.uniform(4, 200))
            due = self._due(at, days)
            saved = truth.filed_at, truth.due_at, truth.original_due_at
            truth.filed_at, truth.due_at, truth.original_due_at, truth.clock_stopped_at = at, due, due, None
            if not self._emit(truth, "supplemented", at, 4):
                truth.filed_at, truth.due_at, truth.original_due_at = saved
                truth.clock_stopped_at = requested
                return
        if rng.random() < 0.1:
            at = self._stop_clock(truth, "payment_requested", "paid", 6, later(), amount_vnd=50000)
            if truth.clock_stopped_at is not None:
                return
        if rng.random() < 0.05:
            at = self._stop_clock(
                truth,
                "stopped",
                "resumed",
                8,
                later(),
                reason="verification",
                reason_code="verification_needed",
            )
            if truth.clock_stopped_at is not None:
                return
        if rng.random() < 0.06:
            self._emit(
                truth, "withdrawn", later(), 7, reason="applicant request", reason_code="applicant_request"
            )
            return
        if rng.random() < 0.1:
            new_due = truth.due_at + timedelta(days=3)
            if abs(new_due - self.now) >= MARGIN:
                previous, truth.due_at = truth.due_at, new_due
                if not self._emit(
                    truth,
                    "apologized",
                    later(),
                    None,
                    reason="backlog",
                    reason_code="workload",
                    new_due_at=new_due,
                ):
                    truth.due_at = previous
                    return
                truth.apologies += 1
                if rng.random() < 0.3:
                    return  # still in process under the new appointment
        at = later()
        if not self._emit(truth, "appraised", at, 4, step="appraise", step_timeliness="on_time"):
            return
        if handling_unit is not None:
            previous = truth.handling_unit
            truth.handling_unit = handling_unit
            if not self._emit(
                truth,
                "transferred",
                later(),
                4,
                from_unit=previous,
                to_unit=handling_unit,
                step="approve",
                step_due_at=None,
                step_timeliness=None,
                finished_step="appraise",
            ):
                truth.handling_unit = previous
                return
        # Resolution anywhere from well before to well after the appointment.
        span = truth.original_due_at - truth.filed_at
        resolved_at = truth.filed_at + span * rng.uniform(0.2, 1.35)
        if not self._emit(truth, "decided", min(later(), resolved_at), 4, decision="approved", reason=None):
            return
        if not self._emit(truth, "signed", min(later(), resolved_at), 4, signer_role="leader"):
            return
        if not self._emit(truth, "stamped", min(later(), resolved_at), 4):
            return
        working_days = round((resolved_at - truth.filed_at) / timedelta(days=1) * 0.7, 2)
        extra: dict[str, Any] = {
            "decision": "approved",
            "resolved_at": resolved_at,
            "working_days": working_days,
        }
        rng.random()  # (once: whether to leave timeliness out; the dossier service always sends it)
        # what the dossier service sends: late once an apology was issued, whatever the date
        extra["timeliness"] = (
            Timeliness.LATE if truth.apologies else local_timeliness(resolved_at, truth.original_due_at)
        )
        if not self._emit(truth, "resolved", resolved_at, 9, **extra):
            return
        truth.resolved_at, truth.working_days = resolved_at, working_days
        if rng.random() < 0.85:
            method = "postal" if truth.return_method == 1 else "counter"
            returned_at = resolved_at + timedelta(hours=rng.uniform(1, 100))
            if self._emit(truth, "returned", returned_at, 10, method=method, returned_at=returned_at):
                truth.returned_at, truth.returned_by = returned_at, method


def local_timeliness(resolved_at: datetime, due_at: datetime) -> str:
    decided, due = resolved_at.astimezone(VIETNAM).date(), due_at.astimezone(VIETNAM).date()
    return "early" if decided < due else "on_time" if decided == due else "late"


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), VIETNAM)


def simulate_period(
    seed: int,
    registry: UnitRegistry,
    units: list[str],
    first: date,
    days: int,
    count: int,
    now: datetime,
    *,
    interlinked_to: str | None = None,
) -> list[Truth]:
    """``count`` dossiers received at ``units`` over ``days`` days from ``first`` (Vietnam dates)."""
    simulator = Simulator(seed, registry, now)
    start = local_midnight(first)
    truths = []
    for _ in range(count):
        received_at = start + timedelta(seconds=simulator.rng.uniform(0, days * 86400))
        handling = interlinked_to if interlinked_to and simulator.rng.random() < 0.1 else None
        truths.append(simulator.dossier(simulator.rng.choice(units), received_at, handling_unit=handling))
    return truths
