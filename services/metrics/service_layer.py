"""The metrics service layer: the use cases behind its entrypoints, as plain functions.

``rate``: the desk tablet's one satisfaction rating per returned dossier, within the window.
``project``: a batch of consumed dossier events folded into the projection (the inbox, the event log
and the fold of services/metrics/projection.py, in the caller's transaction).
Errors are raised as problems; the entrypoints (service.py) only parse and respond.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from sqlalchemy.orm import Session

from services.metrics import repository
from services.metrics.projection import DossierFacts
from shared import clock as shared_clock
from shared.auth import Principal
from shared.events import Event
from shared.problems import Conflict, Forbidden, NotFound
from shared.units import UnitRegistry


class Ratings(Protocol):
    """What rating needs of the projection (services/metrics/repository.py, or the test fake)."""

    def facts(self, code: str) -> DossierFacts | None: ...

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool: ...


@dataclass(frozen=True)
class SqlRatings:
    """:class:`Ratings` in the service's database, inside the caller's transaction."""

    session: Session

    def facts(self, code: str) -> DossierFacts | None:
        return repository.load_facts(self.session, code)

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool:
        return repository.add_rating(self.session, facts, rating, rated_at, rated_by)


@dataclass(frozen=True)
class Rate:
    principal: Principal
    dossier_code: str
    rating: str


@dataclass(frozen=True)
class RatingDesk:
    """What rating works with besides the projection: the unit map, the window, the clock."""

    units: UnitRegistry
    window: timedelta
    clock: Callable[[], datetime] = field(default=shared_clock.now)


def rate(cmd: Rate, ratings: Ratings, desk: RatingDesk) -> dict[str, Any]:
    """Record the rating; 404 for a dossier not received, 403 outside the jurisdiction, 409 before the
    result is returned, after the window, or for a second rating."""
    code, now = cmd.dossier_code, desk.clock()
    facts = ratings.facts(code)
    if facts is None or not facts.is_received:
        raise NotFound(f"no dossier {code}")
    if facts.receiving_unit not in desk.units or not cmd.principal.covers(desk.units, facts.receiving_unit):
        raise Forbidden(
            f"dossier {code} was received by unit {facts.receiving_unit}, outside your jurisdiction"
        )
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


def project(session: Session, events: list[Event], timezone: tzinfo, consumer: str) -> list[bool]:
    """Fold a batch of dossier events, each once (inbox), in sequence order (event log); one answer
    per event: False for a redelivery, which changes nothing."""
    return repository.project_batch(session, events, timezone, consumer)
