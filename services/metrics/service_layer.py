"""The metrics service layer: the use cases behind its entrypoints, as plain functions
``(command, uow, context)`` (shared/usecase.py).

``rate``: the desk tablet's one satisfaction rating per returned dossier, within the window.
``sla_report``: the SLA figures of a unit's subtree for a period (services/metrics/report.py).
``project``: a batch of consumed dossier events folded into the projection (the inbox, the event log
and the fold of services/metrics/projection.py, in the caller's transaction).
Errors are the domain's (shared/domain.py); the entrypoints (service.py) only parse and respond.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Protocol

from sqlalchemy.orm import Session

from services.metrics import repository
from services.metrics.projection import DossierFacts, Period, Tally
from services.metrics.report import SlaReport, assemble
from shared.auth import Principal
from shared.domain import Conflict, NotFound
from shared.events import Event
from shared.usecase import Context


class Projection(Protocol):
    """What the use cases need of the projection (services/metrics/repository.py, or the test fake)."""

    def facts(self, code: str) -> DossierFacts | None: ...

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool: ...

    def report_tallies(
        self, units: Iterable[str], period: Period, now: datetime, group_by: str
    ) -> list[tuple[Any, Tally]]: ...


@dataclass(frozen=True)
class SqlProjection:
    """:class:`Projection` in the service's database, inside the caller's transaction."""

    session: Session

    def facts(self, code: str) -> DossierFacts | None:
        return repository.load_facts(self.session, code)

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool:
        return repository.add_rating(self.session, facts, rating, rated_at, rated_by)

    def report_tallies(
        self, units: Iterable[str], period: Period, now: datetime, group_by: str
    ) -> list[tuple[Any, Tally]]:
        return repository.report_tallies(self.session, units, period, now, group_by)


def _sql_projection(tx: Any) -> Projection:
    return SqlProjection(tx.session)


@dataclass(frozen=True, kw_only=True)
class Desk(Context):
    """The metrics service's use-case context (shared/usecase.py): besides the unit map, the calendar
    and the clock, the rating window and the projection of a transaction."""

    window: timedelta
    projection: Callable[[Any], Projection] = _sql_projection


@dataclass(frozen=True)
class Rate:
    principal: Principal
    dossier_code: str
    rating: str


def rate(cmd: Rate, tx: Any, desk: Desk) -> dict[str, Any]:
    """Record the rating; 404 for a dossier not received, 403 outside the jurisdiction, 409 before the
    result is returned, after the window, or for a second rating."""
    code, now = cmd.dossier_code, desk.clock()
    ratings = desk.projection(tx)
    facts = ratings.facts(code)
    if facts is None or not facts.is_received:
        raise NotFound(f"no dossier {code}")
    cmd.principal.require_jurisdiction(desk.units, facts.receiving_unit)
    if facts.returned_at is None:
        raise Conflict(f"dossier {code} has no result returned yet; rate it when the result is handed over")
    closed = facts.returned_at + desk.window
    if now > closed:
        raise Conflict(
            f"the rating window of dossier {code} closed on {closed:%Y-%m-%d %H:%M} UTC, "
            f"{desk.window.days} days after its result was returned"
        )
    if not ratings.add(facts, cmd.rating, now, cmd.principal.sub):
        raise Conflict(f"dossier {code} has already been rated; a dossier is rated once")
    return {"dossier_code": code, "rating": cmd.rating, "unit": facts.receiving_unit, "rated_at": now}


@dataclass(frozen=True)
class MakeReport:
    """A report request, validated by ReportQuerySchema: the unit, the period (None: this month so
    far), the grouping."""

    principal: Principal
    unit: str
    period_from: date | None
    period_to: date | None
    group_by: str


def sla_report(cmd: MakeReport, tx: Any, desk: Desk) -> SlaReport:
    """The SLA figures of the unit's subtree for the period; 422 for an unknown unit, 403 for one
    outside the jurisdiction (a report is an action on a unit, whose existence is public)."""
    cmd.principal.require_jurisdiction(desk.units, cmd.unit, field="unit")
    now = desk.clock()
    zone = desk.calendar.timezone
    today = now.astimezone(zone).date()
    period = Period(cmd.period_from or today.replace(day=1), cmd.period_to or today, zone)
    rows = desk.projection(tx).report_tallies(desk.units.descendants(cmd.unit), period, now, cmd.group_by)
    return assemble(
        rows,
        unit=cmd.unit,
        first=period.first,
        last=period.last,
        group_by=cmd.group_by,
        as_of=now,
        registry=desk.units,
    )


def project(session: Session, events: list[Event], timezone: tzinfo, consumer: str) -> list[bool]:
    """Fold a batch of dossier events, each once (inbox), in sequence order (event log); one answer
    per event: False for a redelivery, which changes nothing."""
    return repository.project_batch(session, events, timezone, consumer)
