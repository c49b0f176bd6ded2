"""What every service's domain shares: the aggregate, the domain event it records, and the one error
vocabulary (not found, forbidden, conflict, invalid). Plain Python, no framework (the domain imports
nothing else); shared/http.py ``problem_for`` is the one place these become HTTP answers, and
shared/uow.py ``TrackingRepository`` the one place recorded events leave an aggregate."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """A fact an aggregate recorded. Subclasses are dataclasses whose fields are the event's data;
    ``name`` is the event name of docs/contracts.md §1 (``received``), ``source`` the service (``dossier``).

    The aggregate records it (:meth:`Aggregate.record`); the unit of work takes it from there at
    commit and writes it to the outbox, so no code path can forget one.
    """

    source: ClassVar[str]
    name: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        """The event's ``data`` members, in field order."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


class Aggregate:
    """The base of every aggregate: what it changes, it records as :class:`DomainEvent`\\ s.

    A subclass (usually a dataclass) says which dossier its events are about (:attr:`subject`) and
    which units they are routed to (:attr:`routing_units`); the repository of the unit of work that
    loaded or added it takes its pending events at commit (shared/uow.py ``TrackingRepository``).
    ``event_sequence`` counts what it ever recorded: a repository that stores it numbers the events
    with it; one that keeps a per-dossier counter table ignores it.
    """

    events: list[DomainEvent]
    event_sequence: int = 0

    @property
    def subject(self) -> str:
        """The dossier code the events are about (the envelope's ``subject``)."""
        raise NotImplementedError

    @property
    def routing_units(self) -> tuple[str, str | None]:
        """The unit codes the events are routed to: the dossier's unit, and its handling unit if any."""
        raise NotImplementedError

    def record(self, event: DomainEvent) -> None:
        """Record a domain event, to be published when the unit of work that saw this commits."""
        self.event_sequence += 1
        if getattr(self, "events", None) is None:
            self.events = []  # built without __init__ (a mapper, a copy): no pending events yet
        self.events.append(event)

    def take_events(self) -> list[DomainEvent]:
        """The pending events, oldest first; none are pending afterwards (called at commit only)."""
        pending, self.events = list(getattr(self, "events", None) or []), []
        return pending


class DomainError(Exception):
    """A rule of the domain forbids what was asked; nothing changed. ``facts`` become members of the
    problem (shared/http.py ``problem_for`` maps every domain error, in one place). A subclass says
    which kind: :class:`NotFound`, :class:`Forbidden`, :class:`Conflict` (the default), :class:`Invalid`."""

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class NotFound(DomainError):
    """The thing asked about does not exist, or the caller may not know it does (HTTP 404)."""


class Forbidden(DomainError):
    """The caller may not do this: their role, or a unit outside their jurisdiction (HTTP 403)."""


class Conflict(DomainError):
    """The current state forbids it: a rule of the domain, a second time (HTTP 409)."""


class Invalid(DomainError):
    """A value given breaks a rule of the domain; ``field`` names it (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


InvalidArgument = Invalid  # the name the domain used before the vocabulary was one
