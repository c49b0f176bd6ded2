"""In-memory twins of the unit of work and the dossier repository, for service-layer tests.

They keep the contract of the real ones (shared/uow.py, services/dossier/repository.py) that the
service layer relies on: what a transaction changes is kept only if it finishes without an error;
at commit the events of every dossier the transaction loaded or added go to ``published``, built by
the same :func:`services.dossier.events.envelopes` as in production; an Idempotency-Key's answer is
stored with the change. No database, no broker: a service-layer test runs in milliseconds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.dossier.domain.model import Dossier
from services.dossier.events import envelopes
from services.dossier.repository import AuditEntry, Search
from services.metrics.projection import DossierFacts
from shared.events import Event
from shared.units import UnitRegistry
from shared.uow import StoredResponse, Transaction
from shared.vocabulary import CLOCK_RUNNING, Channel, ReturnMethod
from shared.workcalendar import WorkingCalendar


@dataclass
class Committed:
    """What the fake database holds: the state every committed transaction left."""

    dossiers: dict[str, Dossier]
    counters: dict[tuple[str, str], int]
    audit: dict[str, list[AuditEntry]]
    handovers: dict[str, list[dict[str, Any]]]
    responses: dict[tuple[str, str], StoredResponse]
    delivered: set[tuple[str, str]] = field(default_factory=set)  # the inbox: (consumer, event id)


class FakeTransaction(Transaction):
    """A :class:`shared.uow.Transaction` over a copy of the committed state."""

    def __init__(self, state: Committed) -> None:
        super().__init__(session=None, tables=None)  # type: ignore[arg-type]
        self.state = state

    def recall(self, principal: str, key: str) -> StoredResponse | None:
        return self.state.responses.get((principal, key))

    def remember(self, principal: str, key: str, response: StoredResponse) -> None:
        self.state.responses[principal, key] = response

    def first_delivery(self, event: Event, consumer: str) -> bool:
        if (consumer, event.id) in self.state.delivered:
            return False
        self.state.delivered.add((consumer, event.id))
        return True


class FakeUnitOfWork:
    """:class:`shared.uow.UnitOfWorkFactory` in memory; ``published`` is the outbox."""

    def __init__(self) -> None:
        self.state = Committed({}, {}, {}, {}, {})
        self.published: list[Event] = []
        self.commits = 0

    @contextmanager
    def transaction(self) -> Iterator[FakeTransaction]:
        tx = FakeTransaction(copy.deepcopy(self.state))
        yield tx  # an exception here leaves state and published as they were: a rollback
        self.published.extend(tx.collect_events())
        self.state = tx.state
        self.commits += 1

    def published_names(self) -> list[str]:
        return [event.name for event in self.published]


class FakeDossiers:
    """:class:`services.dossier.repository.Dossiers` in memory."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry, *, actor: str | None) -> None:
        self.state = tx.state
        self.units = units
        self.actor = actor
        self.reason_code: str | None = None
        self.seen: dict[str, Dossier] = {}
        tx.collect_from(self._collect)

    def get(self, code: str, *, for_update: bool = False) -> Dossier | None:
        dossier = self.seen.get(code) or self.state.dossiers.get(code)
        if dossier is not None:
            self.seen[code] = dossier
        return dossier

    def read(self, code: str) -> Dossier | None:
        return self.state.dossiers.get(code)

    def add(self, dossier: Dossier, *, identifier: str, day: date) -> None:
        self.units.routing_path(dossier.receiving_unit)  # an unknown unit fails here, as in SQL
        stamp = day.strftime("%y%m%d")  # a daily sequence per identifier, as in SQL
        number = self.state.counters.get((identifier, stamp), 0) + 1
        self.state.counters[identifier, stamp] = number
        dossier.number(f"{identifier}-{stamp}-{number:04d}")
        self.state.dossiers[dossier.code] = dossier
        self.seen[dossier.code] = dossier

    def audit(self, code: str, entry: AuditEntry) -> None:
        self.state.audit.setdefault(code, []).append(entry)

    def audit_trail(self, code: str) -> list[AuditEntry]:
        return list(self.state.audit.get(code, []))

    def handovers(self, code: str) -> list[Any]:
        return [_Row(row) for row in self.state.handovers.get(code, [])]

    def search(self, query: Search, *, now: datetime, offset: int, limit: int) -> tuple[int, list[Dossier]]:
        raise NotImplementedError("search is SQL: tests/integration/test_dossier_api.py covers it")

    def due_for_watch(self, now: datetime, limit: int) -> list[str]:
        due = [
            d
            for d in self.state.dossiers.values()
            if d.status in CLOCK_RUNNING and d.watch_at is not None and d.watch_at <= now
        ]
        return [d.code for d in sorted(due, key=lambda d: d.watch_at)][:limit]

    def postpone_watch(self, code: str, at: datetime) -> None:
        self.state.dossiers[code].watch_at = at

    def _collect(self) -> list[Event]:
        published: list[Event] = []
        for dossier in self.seen.values():
            published.extend(envelopes(dossier, self.units, reason_code=self.reason_code))
            pending, dossier.handovers = list(dossier.handovers), []
            rows = self.state.handovers.setdefault(dossier.code, [])
            rows.extend({**vars(handover), "actor": self.actor} for handover in pending)
        return published


class _Row:
    """A stored hand-over row, read by attribute as SQLAlchemy rows are."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# --- example data ------------------------------------------------------------------------------

UNITS = UnitRegistry.default()
CALENDAR = WorkingCalendar.from_settings(None)
MONDAY = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Vietnam
UNIT = "26740"  # a commune of Hồ Chí Minh City (79)


@dataclass(frozen=True)
class Step:
    code: str
    name: str
    agency: str
    allotment: str


@dataclass(frozen=True)
class Procedure:
    """A procedure's terms as the lifecycle reads them (the catalogue's Procedure has more)."""

    code: str = "1.001193"
    version: int = 1
    field: str = "civil_status"
    duration: str = "3 working_days"
    online_level: str | None = None
    steps: tuple[Step, ...] = (
        Step("receive", "Tiếp nhận", "receiving_unit", "same_day"),
        Step("appraise", "Thẩm định", "commune", "3 working_days"),
    )


def received_at_counter(code: str, now: datetime = MONDAY) -> Dossier:
    return Dossier.receive_at_counter(
        code=code,
        procedure=Procedure(),
        receiving_unit=UNIT,
        channel=Channel.COUNTER,
        return_method=ReturnMethod.COUNTER,
        applicant={"full_name": "Trần Thị Bình", "id_number": "079203001234"},
        now=now,
        calendar=CALENDAR,
    )


class FakeRatings:
    """:class:`services.metrics.service_layer.Ratings` in memory: facts by code, one rating each."""

    def __init__(self, *facts: DossierFacts) -> None:
        self.by_code = {f.code: f for f in facts}
        self.ratings: dict[str, tuple[str, datetime, str]] = {}

    def facts(self, code: str) -> DossierFacts | None:
        return self.by_code.get(code)

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool:
        if facts.code in self.ratings:
            return False
        self.ratings[facts.code] = (rating, rated_at, rated_by)
        return True
