"""Storing and loading dossiers, their hand-overs and audit trail, inside a unit of work.

:class:`Dossiers` is the repository the service layer sees, a :class:`shared.uow.TrackingRepository`: it
loads and adds dossiers, and at commit stores them with their pending hand-overs while the base hands
their domain events to the outbox. ``tests/support/fakes.py`` has its in-memory twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.dossier.domain.events import DossierEvent
from services.dossier.domain.model import Dossier
from services.dossier.events import departed_from
from services.dossier.events import envelope as build_envelope
from services.dossier.models import (
    dossier_audit,
    dossier_code_counters,
    dossier_handovers,
    dossiers,
    start_mappers,
)
from shared import deferred
from shared.events import Event
from shared.units import UnitRegistry
from shared.uow import TrackingRepository, Transaction
from shared.vocabulary import CLOCK_RUNNING, OVERDUE_CANDIDATES

# Plain SQL, valid on SQLite (3.35+) and PostgreSQL: the dialect upsert constructs are not cacheable,
# so SQLAlchemy would compile them again for every dossier.
_NEXT_NUMBER = sa.text(
    f"INSERT INTO {dossier_code_counters.name} (unit, day, last) VALUES (:unit, :day, 1) "
    f"ON CONFLICT (unit, day) DO UPDATE SET last = {dossier_code_counters.name}.last + 1 RETURNING last"
)


def next_dossier_code(session: Session, *, unit: str, identifier: str, day: date) -> str:
    """Mã hồ sơ ``{agency identifier}-{YYMMDD}-{NNNN}``: a daily sequence per identifier.

    The counter is keyed by the identifier that goes into the code (the ``unit`` column holds it),
    not by ``unit``, so two units with one identifier could still never share a code (the unit map
    refuses that anyway). One atomic upsert per dossier: concurrent filings serialise on the
    counter row. After the 9,999th dossier of a day the number simply grows a digit
    (``…-10000``): codes stay unique, but no longer fit the portal's four-digit format.
    """
    stamp = day.strftime("%y%m%d")
    number = session.execute(_NEXT_NUMBER, {"unit": identifier, "day": stamp}).scalar_one()
    return f"{identifier}-{stamp}-{number:04d}"


# The write path is SQLAlchemy Core, on statements built once (so no cache key is computed per call):
# a dossier is loaded from its row and written back as an UPDATE of the columns that changed, compared
# with the row as loaded; no ORM identity map or unit of work on the way. Searches use the ORM.
_COLUMNS = tuple(column.name for column in dossiers.c)
_FIELDS = frozenset(f.name for f in fields(Dossier))
_SELECT = sa.select(dossiers).where(dossiers.c.code == sa.bindparam("code"))
# Later events of one dossier must enter the outbox after earlier ones commit: changes lock the row.
_SELECT_FOR_UPDATE = _SELECT.with_for_update()
_INSERT = dossiers.insert()
_UPDATE = dossiers.update().where(dossiers.c.code == sa.bindparam("stored_code"))
_INSERT_HANDOVERS = dossier_handovers.insert()
_INSERT_AUDIT = dossier_audit.insert()

Stored = dict[str, Any]  # a dossier's row as it is in the database now (column name -> value)


def load(session: Session, code: str, *, for_update: bool = False) -> tuple[Dossier, Stored] | None:
    """The dossier and its row as stored (to tell what changed at commit)."""
    row = session.execute(_SELECT_FOR_UPDATE if for_update else _SELECT, {"code": code}).first()
    if row is None:
        return None
    stored = dict(row._mapping)
    dossier = Dossier(**{name: value for name, value in stored.items() if name in _FIELDS})
    dossier.receiving_path, dossier.handling_path = stored["receiving_path"], stored["handling_path"]
    return dossier, stored


def insert(session: Session, dossier: Dossier, units: UnitRegistry, *, actor: str | None) -> Stored:
    """Insert a new dossier and write its pending hand-overs; returns its row as stored."""
    _set_paths(dossier, units)
    stored = {name: getattr(dossier, name) for name in _COLUMNS}
    deferred.write(session, _INSERT, [stored])
    _write_handovers(session, dossier, actor)
    return stored


def save(
    session: Session, dossier: Dossier, stored: Stored, units: UnitRegistry, *, actor: str | None
) -> None:
    """Write the columns that changed since ``stored`` (an UPDATE, none when nothing did) and the
    dossier's pending hand-overs. Columns are replaced, never mutated in place (models.py), so a
    comparison with the stored values sees every change."""
    _set_paths(dossier, units)
    changed = {name: value for name in _COLUMNS if (value := getattr(dossier, name)) != stored[name]}
    if changed:
        deferred.write(session, _UPDATE, [{"stored_code": stored["code"], **changed}])
        stored.update(changed)
    _write_handovers(session, dossier, actor)


def _set_paths(dossier: Dossier, units: UnitRegistry) -> None:
    dossier.receiving_path = units.routing_path(dossier.receiving_unit)
    dossier.handling_path = units.routing_path(dossier.handling_unit)


def _write_handovers(session: Session, dossier: Dossier, actor: str | None) -> None:
    pending, dossier.handovers = list(dossier.handovers), []
    if pending:
        deferred.write(
            session,
            _INSERT_HANDOVERS,
            [
                {
                    "dossier_code": dossier.code,
                    "at": handover.at,
                    "action": handover.action,
                    "from_unit": handover.from_unit,
                    "to_unit": handover.to_unit,
                    "stage": handover.stage,
                    "step": handover.step,
                    "step_name": handover.step_name,
                    "step_due_at": handover.step_due_at,
                    "timeliness": handover.timeliness,
                    "actor": actor,
                }
                for handover in pending
            ],
        )


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    roles: list[str]
    action: str
    reason: str | None
    status_before: int | None
    status_after: int
    request_id: str
    details: Mapping[str, Any]


def audit(session: Session, code: str, entry: AuditEntry) -> None:
    """Append one line to the dossier's audit trail (the table refuses updates and deletes)."""
    deferred.write(
        session,
        _INSERT_AUDIT,
        [
            {
                "dossier_code": code,
                "at": entry.at,
                "actor": entry.actor,
                "roles": sorted(entry.roles),
                "action": entry.action,
                "reason": entry.reason,
                "status_before": entry.status_before,
                "status_after": entry.status_after,
                "request_id": entry.request_id,
                "details": dict(entry.details),
            }
        ],
    )


def audit_trail(session: Session, code: str) -> list[AuditEntry]:
    t = dossier_audit
    rows = session.execute(
        sa.select(
            t.c.at,
            t.c.actor,
            t.c.roles,
            t.c.action,
            t.c.reason,
            t.c.status_before,
            t.c.status_after,
            t.c.request_id,
            t.c.details,
        )
        .where(t.c.dossier_code == code)
        .order_by(t.c.id)
    ).all()
    return [AuditEntry(**row._mapping) for row in rows]


def handovers(session: Session, code: str) -> list[sa.Row]:
    t = dossier_handovers
    return session.execute(sa.select(t).where(t.c.dossier_code == code).order_by(t.c.id)).all()


@dataclass(frozen=True)
class Search:
    """A list request, already checked: the service decides what the caller may see."""

    submitted_by: str | None = None  # the portal sees only what it filed
    jurisdiction: tuple[str, ...] = ()  # unit paths whose subtrees the caller covers
    unit_path: str | None = None
    statuses: tuple[int, ...] = ()
    overdue: bool | None = None
    procedure: str | None = None
    field: str | None = None
    channel: int | None = None
    received_from: datetime | None = None
    received_before: datetime | None = None


def _within(column: sa.Column, path: str) -> sa.ColumnElement[bool]:
    # A prefix match on the dotted path: the unit itself or anything under it.
    return sa.or_(column == path, column.startswith(f"{path}.", autoescape=True))


def _overdue(now: datetime) -> sa.ColumnElement[bool]:
    """SQL twin of :meth:`Dossier.is_overdue`."""
    return sa.and_(
        dossiers.c.status.in_([int(s) for s in OVERDUE_CANDIDATES]),
        dossiers.c.original_due_at < sa.func.coalesce(dossiers.c.clock_stopped_at, now),
    )


def _conditions(search: Search, now: datetime) -> list[sa.ColumnElement[bool]]:
    c = dossiers.c
    conditions: list[sa.ColumnElement[bool]] = []
    if search.submitted_by is not None:
        conditions.append(c.submitted_by == search.submitted_by)
    elif search.unit_path is None:
        # With a unit filter the service has already checked the unit lies in the caller's
        # jurisdiction, so the (index-defeating) jurisdiction disjunction would add nothing.
        conditions.append(
            sa.or_(
                sa.false(),
                *(_within(c.receiving_path, p) for p in search.jurisdiction),
                *(_within(c.handling_path, p) for p in search.jurisdiction),
            )
        )
    if search.unit_path is not None:
        conditions.append(
            sa.or_(_within(c.receiving_path, search.unit_path), _within(c.handling_path, search.unit_path))
        )
    if search.statuses:
        conditions.append(c.status.in_(search.statuses))
    if search.overdue is not None:
        conditions.append(_overdue(now) if search.overdue else sa.not_(_overdue(now)))
    if search.procedure is not None:
        conditions.append(c.procedure_code == search.procedure)
    if search.field is not None:
        conditions.append(c.procedure_field == search.field)
    if search.channel is not None:
        conditions.append(c.channel == search.channel)
    if search.received_from is not None:
        conditions.append(c.received_at >= search.received_from)
    if search.received_before is not None:
        conditions.append(c.received_at < search.received_before)
    return conditions


def search(
    session: Session, query: Search, *, now: datetime, offset: int, limit: int
) -> tuple[int, list[Dossier]]:
    """One page of the dossiers matching ``query``, newest first, and how many match in all."""
    conditions = _conditions(query, now)
    count = session.execute(sa.select(sa.func.count()).select_from(dossiers).where(*conditions)).scalar_one()
    if offset >= count:
        return count, []
    page = session.execute(
        sa.select(Dossier)
        .where(*conditions)
        .order_by(dossiers.c.created_at.desc(), dossiers.c.code.desc())
        .offset(offset)
        .limit(limit)
    )
    return count, list(page.scalars())


def postpone_watch(session: Session, code: str, at: datetime) -> None:
    """Move a dossier the watch could not process to the back of the queue, until ``at``."""
    session.execute(dossiers.update().where(dossiers.c.code == code).values(watch_at=at))


def due_for_watch(session: Session, now: datetime, limit: int) -> list[str]:
    """Codes of dossiers the overdue watch must look at now, most urgent first."""
    c = dossiers.c
    return list(
        session.execute(
            sa.select(c.code)
            .where(c.status.in_([int(s) for s in CLOCK_RUNNING]), c.watch_at <= now)
            .order_by(c.watch_at)
            .limit(limit)
        ).scalars()
    )


class Dossiers(TrackingRepository[Dossier]):
    """The dossier repository of one unit of work: every dossier it loads or adds is *seen*, and at
    commit each seen dossier is stored with its hand-overs and its domain events go to the outbox."""

    def __init__(self, tx: Transaction, units: UnitRegistry, *, actor: str | None) -> None:
        start_mappers()
        super().__init__(tx, units)
        self.actor = actor  # who the hand-over rows name; None for the overdue watch
        # The code the officer gave with this transaction's reason: events carry it, not the text.
        self.reason_code: str | None = None
        self._stored: dict[str, Stored] = {}

    def get(self, code: str, *, for_update: bool = False) -> Dossier | None:
        found = load(self.session, code, for_update=for_update)
        if found is None:
            return None
        if code in self.seen:  # one object per dossier in a unit of work, as the ORM's identity map
            return self.seen[code]
        dossier, self._stored[code] = found
        return self.track(dossier)

    def read(self, code: str) -> Dossier | None:
        """A dossier to look at, not to change: not seen, so nothing of it is stored at commit."""
        found = load(self.session, code)
        return None if found is None else found[0]

    def add(self, dossier: Dossier, *, identifier: str, day: date) -> None:
        """A new dossier: numbered from the daily counter of ``identifier`` — whose row stays locked
        until the commit, so this is the filing's last step — and inserted at once, so that its
        audit line can refer to it."""
        code = next_dossier_code(self.session, unit=dossier.receiving_unit, identifier=identifier, day=day)
        dossier.number(code)
        self._stored[code] = insert(self.session, dossier, self.units, actor=self.actor)
        self.track(dossier)

    def audit(self, code: str, entry: AuditEntry) -> None:
        audit(self.session, code, entry)

    def audit_trail(self, code: str) -> list[AuditEntry]:
        return audit_trail(self.session, code)

    def handovers(self, code: str) -> list[sa.Row]:
        return handovers(self.session, code)

    def search(self, query: Search, *, now: datetime, offset: int, limit: int) -> tuple[int, list[Dossier]]:
        return search(self.session, query, now=now, offset=offset, limit=limit)

    def due_for_watch(self, now: datetime, limit: int) -> list[str]:
        return due_for_watch(self.session, now, limit)

    def postpone_watch(self, code: str, at: datetime) -> None:
        postpone_watch(self.session, code, at)

    def envelope(self, dossier: Dossier, event: DossierEvent, sequence: int) -> Event:
        """Officers' free text becomes ``reason_code``; a transfer also goes to the unit it leaves."""
        return build_envelope(
            event,
            self.units.routing_path(dossier.receiving_unit),
            self.units.routing_path(dossier.handling_unit),
            sequence,
            reason_code=self.reason_code,
            also_unit_paths=departed_from(event.name, event.data, self.units),
        )

    def store(self, dossier: Dossier) -> None:
        save(self.session, dossier, self._stored[dossier.code], self.units, actor=self.actor)
