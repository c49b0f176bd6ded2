"""The portal sync's tables in the caller's transaction (services/outbound/models.py): the durable
queue per dossier and what is known of each dossier. Core statements, the same on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.outbound.models import portal_dossiers, portal_queue

RESYNC = "resync"


@dataclass(frozen=True)
class Pending:
    """A queue row at the head of its dossier's queue, with what is known of the dossier."""

    id: int
    subject: str
    sequence: int
    name: str
    data: dict[str, Any] | None
    enqueued_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_sequence: int
    facts: dict[str, Any]
    history: dict[str, Any]
    receiving_unit: str


def remember_dossier(session: Session, data: dict[str, Any], sequence: int, now: datetime) -> None:
    """Insert the dossier, or keep its newest status facts (a re-sync sends those)."""
    table = portal_dossiers
    row = session.execute(
        sa.select(table.c.code, table.c.facts_sequence).where(table.c.code == data["code"])
    ).first()
    received = data.get("received_at")
    received_at = datetime.fromisoformat(received) if isinstance(received, str) else received
    if row is None:
        session.execute(
            table.insert().values(
                code=data["code"],
                receiving_unit=data["receiving_unit"],
                received_at=received_at,
                facts=data,
                facts_sequence=sequence,
                history={},
                last_sequence=0,
                first_seen_at=now,
            )
        )
    elif sequence > row.facts_sequence:
        session.execute(
            table.update()
            .where(table.c.code == data["code"])
            .values(facts=data, facts_sequence=sequence, received_at=received_at)
        )


def enqueue(
    session: Session,
    *,
    subject: str,
    sequence: int,
    event_id: str | None,
    name: str,
    data: dict[str, Any] | None,
    now: datetime,
) -> None:
    session.execute(
        portal_queue.insert().values(
            subject=subject,
            sequence=sequence,
            event_id=event_id,
            name=name,
            data=data,
            enqueued_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def heads(session: Session, limit: int) -> list[Pending]:
    """The first pending row of each dossier not parked, in its order (sequence, a re-sync first)."""
    q, d = portal_queue, portal_dossiers
    rows = session.execute(
        sa.select(
            q.c.id,
            q.c.subject,
            q.c.sequence,
            q.c.name,
            q.c.data,
            q.c.enqueued_at,
            q.c.attempts,
            q.c.next_attempt_at,
            d.c.last_sequence,
            d.c.facts,
            d.c.history,
            d.c.receiving_unit,
        )
        .join(d, d.c.code == q.c.subject)
        .where(q.c.synced_at.is_(None), d.c.parked_at.is_(None))
        .order_by(q.c.subject, q.c.sequence, q.c.id)
        .limit(limit)
    ).all()
    first: dict[str, Pending] = {}
    for row in rows:
        first.setdefault(row.subject, Pending(**row._mapping))
    return list(first.values())


def synced(session: Session, pending: Pending, history: dict[str, Any], now: datetime) -> None:
    session.execute(portal_queue.update().where(portal_queue.c.id == pending.id).values(synced_at=now))
    session.execute(
        portal_dossiers.update()
        .where(portal_dossiers.c.code == pending.subject)
        .values(history=history, synced_at=now, last_sequence=max(pending.last_sequence, pending.sequence))
    )


def failed(session: Session, pending: Pending, error: str, retry_at: datetime | None, now: datetime) -> None:
    """Count a failed try; with no ``retry_at`` the dossier is parked with the reason."""
    session.execute(
        portal_queue.update()
        .where(portal_queue.c.id == pending.id)
        .values(attempts=pending.attempts + 1, last_error=error[:1000], next_attempt_at=retry_at or now)
    )
    if retry_at is None:
        session.execute(
            portal_dossiers.update()
            .where(portal_dossiers.c.code == pending.subject)
            .values(parked_at=now, parked_reason=f"{pending.name} #{pending.sequence}: {error}"[:1000])
        )


def replay(session: Session, codes: Iterable[str] | None, now: datetime) -> list[str]:
    """Unpark the dossiers (every parked one when ``codes`` is None): their rows are due again now."""
    d, q = portal_dossiers, portal_queue
    where = d.c.parked_at.is_not(None) if codes is None else d.c.code.in_(list(codes))
    found = [code for (code,) in session.execute(sa.select(d.c.code).where(where)).all()]
    if found:
        session.execute(d.update().where(d.c.code.in_(found)).values(parked_at=None, parked_reason=None))
        session.execute(
            q.update()
            .where(q.c.subject.in_(found), q.c.synced_at.is_(None))
            .values(attempts=0, next_attempt_at=now)
        )
    return found


def dossiers_received(session: Session, units: Iterable[str], start: datetime, end: datetime) -> list[str]:
    d = portal_dossiers
    return list(
        session.execute(
            sa.select(d.c.code)
            .where(d.c.receiving_unit.in_(list(units)), d.c.received_at >= start, d.c.received_at < end)
            .order_by(d.c.received_at)
        ).scalars()
    )


def parked(session: Session) -> list[dict[str, Any]]:
    d = portal_dossiers
    rows = session.execute(
        sa.select(d.c.code, d.c.receiving_unit, d.c.parked_at, d.c.parked_reason)
        .where(d.c.parked_at.is_not(None))
        .order_by(d.c.parked_at)
    ).all()
    return [dict(row._mapping) for row in rows]


def backlog(session: Session) -> list[tuple[str, int, datetime | None, int]]:
    """Per receiving unit: pending rows, the oldest pending row's enqueue time, parked dossiers."""
    q, d = portal_queue, portal_dossiers
    pending = session.execute(
        sa.select(d.c.receiving_unit, sa.func.count(), sa.func.min(q.c.enqueued_at))
        .join(d, d.c.code == q.c.subject)
        .where(q.c.synced_at.is_(None))
        .group_by(d.c.receiving_unit)
    ).all()
    parked_by_unit = dict(
        session.execute(
            sa.select(d.c.receiving_unit, sa.func.count())
            .where(d.c.parked_at.is_not(None))
            .group_by(d.c.receiving_unit)
        ).all()
    )
    found = {unit: (count, oldest) for unit, count, oldest in pending}
    return [
        (unit, *found.get(unit, (0, None)), parked_by_unit.get(unit, 0))
        for unit in sorted(set(found) | set(parked_by_unit))
    ]
