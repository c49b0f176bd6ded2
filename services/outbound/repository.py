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

from services.outbound.domain.subscription import ClientCredentials, Subscription
from services.outbound.models import (
    contact_notices,
    deliveries,
    delivery_attempts,
    portal_dossiers,
    portal_queue,
    subscriptions,
)

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


# --- subscriptions -----------------------------------------------------------------------------------


def _subscription(row) -> Subscription:
    return Subscription(
        id=row.id,
        owner=row.owner,
        callback_url=row.callback_url,
        unit=row.unit,
        unit_path=row.unit_path,
        event_types=list(row.event_types or []),
        procedure=row.procedure,
        field=row.field,
        auth_header=row.auth_header,
        oauth2=ClientCredentials(
            row.oauth2_token_url, row.oauth2_client_id, row.oauth2_client_secret, row.oauth2_scope
        )
        if row.oauth2_token_url
        else None,
        secrets=list(row.secrets or []),
        contact=row.contact,
        active=row.active,
        disabled_reason=row.disabled_reason,
    )


def _columns(subscription: Subscription) -> dict[str, Any]:
    oauth2 = subscription.oauth2
    return {
        "owner": subscription.owner,
        "callback_url": subscription.callback_url,
        "unit": subscription.unit,
        "unit_path": subscription.unit_path,
        "event_types": list(subscription.event_types),
        "procedure": subscription.procedure,
        "field": subscription.field,
        "auth_header": subscription.auth_header,
        "oauth2_token_url": oauth2.token_url if oauth2 else None,
        "oauth2_client_id": oauth2.client_id if oauth2 else None,
        "oauth2_client_secret": oauth2.client_secret if oauth2 else None,
        "oauth2_scope": oauth2.scope if oauth2 else None,
        "secrets": list(subscription.secrets),
        "contact": subscription.contact,
        "active": subscription.active,
        "disabled_reason": subscription.disabled_reason,
    }


def add_subscription(session: Session, subscription: Subscription, now: datetime) -> None:
    session.execute(
        subscriptions.insert().values(
            id=subscription.id, created_at=now, updated_at=now, **_columns(subscription)
        )
    )


def save_subscription(session: Session, subscription: Subscription, now: datetime) -> None:
    session.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription.id)
        .values(updated_at=now, **_columns(subscription))
    )


_SUBSCRIPTION = sa.select(subscriptions).where(subscriptions.c.id == sa.bindparam("subscription_id"))


def load_subscription(session: Session, subscription_id: str) -> Subscription | None:
    row = session.execute(_SUBSCRIPTION, {"subscription_id": subscription_id}).first()
    return None if row is None else _subscription(row)


def load_subscriptions(session: Session, subscription_ids: list[str]) -> dict[str, Subscription]:
    rows = session.execute(sa.select(subscriptions).where(subscriptions.c.id.in_(subscription_ids))).all()
    return {row.id: _subscription(row) for row in rows}


def owned_subscriptions(session: Session, owner: str) -> list[Subscription]:
    rows = session.execute(
        sa.select(subscriptions).where(subscriptions.c.owner == owner).order_by(subscriptions.c.created_at)
    ).all()
    return [_subscription(row) for row in rows]


def active_subscriptions(session: Session) -> list[Subscription]:
    rows = session.execute(sa.select(subscriptions).where(subscriptions.c.active.is_(True))).all()
    return [_subscription(row) for row in rows]


def delete_subscription(session: Session, subscription_id: str) -> None:
    ids = sa.select(deliveries.c.id).where(deliveries.c.subscription_id == subscription_id)
    session.execute(delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(ids)))
    session.execute(deliveries.delete().where(deliveries.c.subscription_id == subscription_id))
    session.execute(contact_notices.delete().where(contact_notices.c.subscription_id == subscription_id))
    session.execute(subscriptions.delete().where(subscriptions.c.id == subscription_id))


def add_deliveries(session: Session, rows: list[tuple[str, Any, str]], now: datetime) -> None:
    """One delivery per ``(subscription id, event, body)``, pending and due now; one statement."""
    if not rows:
        return
    session.execute(
        deliveries.insert(),
        [
            {
                "subscription_id": subscription_id,
                "subject": event.subject,
                "sequence": event.sequence,
                "event_id": event.id,
                "event_type": event.type,
                "body": body,
                "enqueued_at": now,
                "attempts": 0,
                "next_attempt_at": now,
                "state": "pending",
            }
            for subscription_id, event, body in rows
        ],
    )


@dataclass(frozen=True)
class Due:
    """The first pending delivery of one dossier for one active subscription, if its time has come."""

    id: int
    subscription_id: str
    subject: str
    event_id: str
    body: str
    enqueued_at: datetime
    attempts: int
    next_attempt_at: datetime
    more: bool = False  # a later delivery of the same dossier waits behind this one


def _due_statement(*, many: bool) -> sa.Select:
    """The due heads of one subscription (``:subscription_id``, at most ``:limit``), or of several
    (``:subscription_ids``, at most ``:limit`` each, numbered ``place`` within their subscription)."""
    d = deliveries

    def other(before: bool) -> sa.Exists:
        """Another pending delivery of the same dossier to the same subscription, before (or after) it."""
        o = deliveries.alias("earlier" if before else "later")
        first, then = (o, d) if before else (d, o)
        return (
            sa.select(o.c.id)
            .where(
                o.c.subscription_id == d.c.subscription_id,
                o.c.subject == d.c.subject,
                o.c.state == "pending",
                sa.or_(
                    first.c.sequence < then.c.sequence,
                    sa.and_(first.c.sequence == then.c.sequence, first.c.id < then.c.id),
                ),
            )
            .exists()
        )

    ahead = other(before=True)
    columns = [
        d.c.id,
        d.c.subscription_id,
        d.c.subject,
        d.c.event_id,
        d.c.body,
        d.c.enqueued_at,
        d.c.attempts,
        d.c.next_attempt_at,
        other(before=False).label("more"),
    ]
    due = [
        d.c.state == "pending",
        d.c.next_attempt_at <= sa.bindparam("now", type_=d.c.next_attempt_at.type),
        ~ahead,
    ]
    if not many:
        return (
            sa.select(*columns)
            .where(d.c.subscription_id == sa.bindparam("subscription_id"), *due)
            .order_by(d.c.enqueued_at, d.c.id)
            .limit(sa.bindparam("limit", literal_execute=False))
        )
    place = sa.func.row_number().over(partition_by=d.c.subscription_id, order_by=(d.c.enqueued_at, d.c.id))
    heads = (
        sa.select(*columns, place.label("place"))
        .where(d.c.subscription_id.in_(sa.bindparam("subscription_ids", expanding=True)), *due)
        .subquery("heads")
    )
    return (
        sa.select(*(heads.c[column.name] for column in columns))
        .where(heads.c.place <= sa.bindparam("limit"))
        .order_by(heads.c.subscription_id, heads.c.place)
    )


# Built once: a round's query runs for every subscription many times a second.
_DUE = _due_statement(many=False)
_DUE_MANY = _due_statement(many=True)


def due_deliveries(session: Session, subscription_id: str, now: datetime, limit: int) -> list[Due]:
    """Per dossier, the head of the subscription's pending deliveries when it is due, oldest first, at
    most ``limit`` of them. A later event of a dossier waits behind an earlier one being retried, and
    only that dossier waits: however long its backlog, other dossiers' heads are still found."""
    rows = session.execute(_DUE, {"subscription_id": subscription_id, "now": now, "limit": limit}).all()
    return [Due(*row[:-1], more=bool(row[-1])) for row in rows]


def due_deliveries_of(
    session: Session, subscription_ids: list[str], now: datetime, limit: int
) -> dict[str, list[Due]]:
    """:func:`due_deliveries` of several subscriptions in one statement: per subscription, its heads."""
    found: dict[str, list[Due]] = {subscription_id: [] for subscription_id in subscription_ids}
    if subscription_ids:
        parameters = {"subscription_ids": list(subscription_ids), "now": now, "limit": limit}
        for row in session.execute(_DUE_MANY, parameters).all():
            found[row.subscription_id].append(Due(*row[:-1], more=bool(row[-1])))
    return found


def subscriptions_with_due_deliveries(session: Session, now: datetime) -> list[str]:
    s, d = subscriptions, deliveries
    return list(
        session.execute(
            sa.select(d.c.subscription_id)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.state == "pending", d.c.next_attempt_at <= now, s.c.active.is_(True))
            .distinct()
        ).scalars()
    )


@dataclass(frozen=True)
class Attempt:
    """One try of a delivery, as it is recorded: the answer, and the delivery's state after it."""

    due: Due
    at: datetime
    status: int | None
    error: str | None
    seconds: float
    state: str  # pending (tried again at retry_at), delivered, dead, gone
    retry_at: datetime | None

    def describe(self) -> str:
        return self.error or f"HTTP {self.status}"


_RECORD = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .values(
        attempts=deliveries.c.attempts + 1,
        state=sa.bindparam("new_state"),
        last_status=sa.bindparam("status"),
        last_error=sa.bindparam("error"),
        next_attempt_at=sa.bindparam("next_at", type_=deliveries.c.next_attempt_at.type),
        delivered_at=sa.bindparam("done_at", type_=deliveries.c.delivered_at.type),
    )
)


def record_attempts(session: Session, attempts: list[Attempt]) -> None:
    """Every try logged, and each delivery's state after it, for a round or several: the tries in one
    insert, the delivered ones' state in one update from their tries, the others' one by one."""
    if not attempts:
        return
    errors = [(a.error or "")[:1000] or None for a in attempts]
    ids = (
        session.execute(
            delivery_attempts.insert().returning(delivery_attempts.c.id, sort_by_parameter_order=True),
            [
                {
                    "delivery_id": a.due.id,
                    "attempted_at": a.at,
                    "status": a.status,
                    "error": error,
                    "seconds": a.seconds,
                }
                for a, error in zip(attempts, errors, strict=True)
            ],
        )
        .scalars()
        .all()
    )
    delivered = [attempt_id for attempt_id, a in zip(ids, attempts, strict=True) if a.state == "delivered"]
    if delivered:
        tried = delivery_attempts
        session.execute(
            deliveries.update()
            .where(deliveries.c.id == tried.c.delivery_id, tried.c.id.in_(delivered))
            .values(
                attempts=deliveries.c.attempts + 1,
                state="delivered",
                last_status=tried.c.status,
                last_error=None,
                next_attempt_at=tried.c.attempted_at,
                delivered_at=tried.c.attempted_at,
            )
        )
    others = [(a, error) for a, error in zip(attempts, errors, strict=True) if a.state != "delivered"]
    if others:
        session.execute(
            _RECORD,
            [
                {
                    "delivery_id": a.due.id,
                    "new_state": a.state,
                    "status": a.status,
                    "error": error,
                    "next_at": a.retry_at or a.at,
                    "done_at": None,
                }
                for a, error in others
            ],
        )


def delivery_log(
    session: Session, subscription_id: str, limit: int, state: str | None = None
) -> list[dict[str, Any]]:
    """The subscription's latest deliveries (only those in ``state`` when given), newest first, each
    with its attempts."""
    d, a = deliveries, delivery_attempts
    where = [d.c.subscription_id == subscription_id] + ([d.c.state == state] if state else [])
    rows = session.execute(sa.select(d).where(*where).order_by(d.c.id.desc()).limit(limit)).all()
    attempts: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for attempt in session.execute(
            sa.select(a).where(a.c.delivery_id.in_([r.id for r in rows])).order_by(a.c.id)
        ).all():
            attempts.setdefault(attempt.delivery_id, []).append(
                {
                    "at": attempt.attempted_at,
                    "status": attempt.status,
                    "error": attempt.error,
                    "seconds": attempt.seconds,
                }
            )
    return [
        {
            "id": r.id,
            "event_id": r.event_id,
            "event_type": r.event_type,
            "subject": r.subject,
            "sequence": r.sequence,
            "state": r.state,
            "last_error": r.last_error,
            "enqueued_at": r.enqueued_at,
            "delivered_at": r.delivered_at,
            "attempts": attempts.get(r.id, []),
        }
        for r in rows
    ]


def redeliver(
    session: Session,
    subscription_id: str,
    *,
    delivery_id: int | None,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> int:
    """Send again one delivery, or those enqueued in ``[start, end)``: pending again, due now."""
    d = deliveries
    where = [d.c.subscription_id == subscription_id]
    if delivery_id is not None:
        where.append(d.c.id == delivery_id)
    else:
        where += [d.c.enqueued_at >= start, d.c.enqueued_at < end]
    result = session.execute(
        d.update().where(*where).values(state="pending", attempts=0, next_attempt_at=now, delivered_at=None)
    )
    return result.rowcount


def disabled_subscriptions(session: Session) -> int:
    return session.execute(
        sa.select(sa.func.count()).select_from(subscriptions).where(subscriptions.c.active.is_(False))
    ).scalar_one()


# --- notices to a subscription's contact -------------------------------------------------------------


def last_notice_at(session: Session, subscription_id: str) -> datetime | None:
    n = contact_notices
    return session.execute(
        sa.select(sa.func.max(n.c.created_at)).where(n.c.subscription_id == subscription_id)
    ).scalar()


def add_notice(
    session: Session, subscription_id: str, contact: str, channel: str, body: str, now: datetime
) -> int:
    return session.execute(
        contact_notices.insert()
        .values(subscription_id=subscription_id, contact=contact, channel=channel, body=body, created_at=now)
        .returning(contact_notices.c.id)
    ).scalar_one()


def notice_sent(session: Session, notice_id: int, *, sent_at: datetime | None, error: str | None) -> None:
    session.execute(
        contact_notices.update()
        .where(contact_notices.c.id == notice_id)
        .values(sent_at=sent_at, error=(error or "")[:1000] or None)
    )


def take_mail_notices(session: Session, now: datetime) -> list[dict[str, Any]]:
    """The e-mail notices not handed to the mailer yet, oldest first; marked handed over (sent_at)."""
    n = contact_notices
    rows = session.execute(
        sa.select(n.c.id, n.c.subscription_id, n.c.contact, n.c.body, n.c.created_at)
        .where(n.c.channel == "email", n.c.sent_at.is_(None))
        .order_by(n.c.id)
    ).all()
    if rows:
        session.execute(n.update().where(n.c.id.in_([r.id for r in rows])).values(sent_at=now))
    return [dict(row._mapping) for row in rows]


def notices(session: Session, subscription_id: str) -> list[dict[str, Any]]:
    n = contact_notices
    rows = session.execute(sa.select(n).where(n.c.subscription_id == subscription_id).order_by(n.c.id)).all()
    return [dict(row._mapping) for row in rows]
