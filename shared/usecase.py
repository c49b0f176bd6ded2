"""What a use case is, in every service: a plain function ``(command, uow, context) -> result``.

* ``command``: a frozen dataclass of what was asked, already parsed (and who asks: a ``Principal``);
* ``uow``: the unit of work — a :class:`shared.uow.Transaction` the entrypoint opened (so that an
  Idempotency-Key's answer commits with the change), or the factory when the use case opens its own
  transactions (a consumer, a timer);
* ``context``: a :class:`Context`, or the service's subclass of it, with what the use case works with
  besides: the unit map, the working calendar, the clock, the service's adapters and settings.

A use case raises the domain's errors (shared/domain.py: ``NotFound``, ``Forbidden``, ``Conflict``,
``Invalid``); shared/http.py ``problem_for`` turns them into HTTP answers. It imports no HTTP, no nameko.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared import clock as shared_clock
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar


class UnitOfWork(Protocol):
    """What a use case that opens its own transactions needs (shared.uow.UnitOfWorkFactory or the fake)."""

    def transaction(self) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Context:
    """The one context type of the use cases; a service subclasses it with its own adapters."""

    units: UnitRegistry
    calendar: WorkingCalendar
    clock: Callable[[], datetime] = field(default=shared_clock.now)  # shared/clock.py: the one "now"
