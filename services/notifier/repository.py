"""The notifier's tables (services/notifier/models.py) as the use cases need them: SQLAlchemy Core.

The notifier publishes no events, so it has no aggregate to track: its rows are a queue and a log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifier.domain.messages import FINAL, Outcome
from services.notifier.models import attempts, messages, notices

PENDING, DONE, UNKNOWN = "pending", "done", "unknown"


@dataclass(frozen=True)
class Notice:
    event_id: str
    code: str
    kind: str
    receiving_unit: str
    data: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Message:
    id: str
    event_id: str
    kind: str
    channel: str
    via: str
    state: str
    attempts: int
    next_attempt_at: datetime


def add_notice(
    session: Session, *, event_id: str, code: str, kind: str, unit: str, data: dict, now: datetime
):
    session.execute(
        sa.insert(notices).values(
            event_id=event_id,
            code=code,
            kind=kind,
            receiving_unit=unit,
            data=data,
            enqueued_at=now,
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
        )
    )


def due_notices(session: Session, now: datetime, limit: int) -> list[Notice]:
    rows = session.execute(
        sa.select(notices)
        .where(notices.c.state == PENDING, notices.c.next_attempt_at <= now)
        .order_by(notices.c.next_attempt_at, notices.c.enqueued_at)
        .limit(limit)
    )
    return [Notice(r.event_id, r.code, r.kind, r.receiving_unit, dict(r.data), r.attempts) for r in rows]


def notice_failed(session: Session, event_id: str, error: str, retry_at: datetime | None) -> None:
    """The contact could not be read: again at ``retry_at``; None: given up (its messages failed)."""
    values: dict[str, Any] = {"attempts": notices.c.attempts + 1, "last_error": error[:1000]}
    values |= {"next_attempt_at": retry_at} if retry_at else {"state": DONE}
    session.execute(sa.update(notices).where(notices.c.event_id == event_id).values(**values))


def notice_unknown(session: Session, event_id: str) -> None:
    session.execute(sa.update(notices).where(notices.c.event_id == event_id).values(state=UNKNOWN))


def settle_notice(session: Session, event_id: str) -> None:
    """Done when each of its messages is final, else due with its earliest message."""
    rows = session.execute(
        sa.select(messages.c.state, messages.c.next_attempt_at).where(messages.c.event_id == event_id)
    ).all()
    open_ = [r.next_attempt_at for r in rows if Outcome(r.state) not in FINAL]
    values = {"next_attempt_at": min(open_)} if open_ else {"state": DONE}
    session.execute(sa.update(notices).where(notices.c.event_id == event_id).values(**values))


def messages_of(session: Session, event_id: str) -> dict[str, Message]:
    rows = session.execute(sa.select(messages).where(messages.c.event_id == event_id))
    return {
        r.channel: Message(r.id, r.event_id, r.kind, r.channel, r.via, r.state, r.attempts, r.next_attempt_at)
        for r in rows
    }


def add_message(session: Session, notice: Notice, channel: str, now: datetime) -> None:
    """The message of ``notice`` on ``channel``, once: its id is the event's and the channel's."""
    table = messages
    statement = sa.text(
        f"INSERT INTO {table.name} (id, event_id, code, kind, channel, via, receiving_unit, state, attempts, "
        "created_at, next_attempt_at) VALUES (:id, :event_id, :code, :kind, :channel, :channel, :unit, "
        ":state, 0, :now, :now) ON CONFLICT DO NOTHING"
    ).bindparams(sa.bindparam("now", type_=table.c.created_at.type))
    session.execute(
        statement,
        {
            "id": f"{notice.event_id}:{channel}",
            "event_id": notice.event_id,
            "code": notice.code,
            "kind": notice.kind,
            "channel": channel,
            "unit": notice.receiving_unit,
            "state": Outcome.PENDING.value,
            "now": now,
        },
    )


def update_message(session: Session, message_id: str, **values: Any) -> None:
    session.execute(sa.update(messages).where(messages.c.id == message_id).values(**values))


def sent_today(session: Session, recipient: str, start: datetime, end: datetime) -> int:
    return session.execute(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(
            messages.c.recipient == recipient,
            messages.c.state == Outcome.SENT.value,
            messages.c.sent_at >= start,
            messages.c.sent_at < end,
        )
    ).scalar_one()


def record_attempt(
    session: Session,
    *,
    message_id: str,
    at: datetime,
    gateway: str,
    answer: str,
    seconds: float,
    error: str | None,
) -> None:
    session.execute(
        sa.insert(attempts).values(
            message_id=message_id,
            attempted_at=at,
            gateway=gateway,
            answer=answer,
            seconds=seconds,
            error=None if error is None else error[:1000],
        )
    )


def dossier_log(session: Session, code: str) -> list[dict[str, Any]]:
    """A dossier's messages, newest first, each with every gateway call."""
    rows = session.execute(
        sa.select(messages)
        .where(messages.c.code == code)
        .order_by(messages.c.created_at.desc(), messages.c.id)
    ).all()
    tries: dict[str, list[dict[str, Any]]] = {}
    if rows:
        for a in session.execute(
            sa.select(attempts)
            .where(attempts.c.message_id.in_([r.id for r in rows]))
            .order_by(attempts.c.attempted_at, attempts.c.id)
        ):
            tries.setdefault(a.message_id, []).append(
                {
                    "at": a.attempted_at,
                    "gateway": a.gateway,
                    "answer": a.answer,
                    "seconds": a.seconds,
                    "error": a.error,
                }
            )
    return [{**r._asdict(), "attempts_log": tries.get(r.id, [])} for r in rows]


def dossier_notices(session: Session, code: str) -> list[dict[str, Any]]:
    """The dossier's events that called for a message, newest first: pending, done or unknown."""
    rows = session.execute(
        sa.select(
            notices.c.event_id,
            notices.c.kind,
            notices.c.state,
            notices.c.receiving_unit,
            notices.c.enqueued_at,
            notices.c.last_error,
        )
        .where(notices.c.code == code)
        .order_by(notices.c.enqueued_at.desc())
    ).all()
    return [r._asdict() for r in rows]
