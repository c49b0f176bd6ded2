"""Which deliveries a subscription's round sends (services/outbound/repository.py ``due_deliveries``), on
both databases: the head of each dossier's pending deliveries when it is due, and only that dossier
waits behind an earlier event being retried (docs/portal-and-subscriptions.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.outbound import repository
from services.outbound.domain.subscription import Subscription
from services.outbound.models import deliveries
from shared.db import create_engine
from shared.migrate import upgrade

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


@pytest.fixture
def session(database_url):
    upgrade("outbound", database_url)
    engine = create_engine(database_url, pool_size=1)
    with Session(engine) as session, session.begin():
        yield session
    engine.dispose()


def _subscription(session: Session, name: str) -> str:
    subscription = Subscription(
        id=f"sub-{name}", owner="o", callback_url="https://example.org/hook", unit="79", unit_path="79"
    )
    repository.add_subscription(session, subscription, NOW)
    return subscription.id


def _enqueue(session: Session, subscription_id: str, subject: str, sequences, at: datetime) -> None:
    events = [
        SimpleNamespace(subject=subject, sequence=n, id=f"{subject}-{n}", type="vn.motcua.dossier.received")
        for n in sequences
    ]
    repository.add_deliveries(session, [(subscription_id, e, "{}") for e in events], at)


def _retrying(session: Session, subscription_id: str, event_id: str, until: datetime) -> None:
    """The delivery failed a try and waits for its next one."""
    session.execute(
        deliveries.update()
        .where(deliveries.c.subscription_id == subscription_id, deliveries.c.event_id == event_id)
        .values(attempts=1, next_attempt_at=until)
    )


def test_a_long_backlog_behind_a_retried_event_holds_only_its_own_dossier(session):
    mine = _subscription(session, "a")
    # Dossier "A-…" sorts first and has more pending deliveries than a round takes; its first is being
    # retried in an hour. Dossier "B-…" has one delivery, due.
    _enqueue(session, mine, "A-0001", range(1, 121), NOW - timedelta(minutes=5))
    _enqueue(session, mine, "B-0002", [1], NOW - timedelta(minutes=1))
    _retrying(session, mine, "A-0001-1", NOW + timedelta(hours=1))
    due = repository.due_deliveries(session, mine, NOW, limit=50)
    assert [(d.subject, d.event_id, d.more) for d in due] == [("B-0002", "B-0002-1", False)]
    # Once A's first is due again, it is A's only delivery in the round (its later ones wait), oldest first.
    assert [
        (d.event_id, d.more) for d in repository.due_deliveries(session, mine, NOW + timedelta(hours=2), 50)
    ] == [
        ("A-0001-1", True),
        ("B-0002-1", False),
    ]


def test_a_round_takes_each_dossiers_head_oldest_first_and_never_another_subscriptions(session):
    mine, theirs = _subscription(session, "mine"), _subscription(session, "theirs")
    for n in range(5):
        _enqueue(session, mine, f"D-{n}", [3, 1, 2], NOW - timedelta(seconds=10 - n))  # out of order
    _enqueue(session, theirs, "D-0", [1], NOW - timedelta(minutes=1))
    _enqueue(session, mine, "E-9", [1], NOW + timedelta(seconds=1))  # not due yet
    due = repository.due_deliveries(session, mine, NOW, limit=3)
    assert [(d.subscription_id, d.event_id) for d in due] == [(mine, f"D-{n}-1") for n in range(3)]
    # A head delivered: the dossier's next event by sequence is its head.
    session.execute(
        deliveries.update()
        .where(deliveries.c.subscription_id == mine, deliveries.c.event_id == "D-0-1")
        .values(state="delivered")
    )
    assert repository.due_deliveries(session, mine, NOW, limit=1)[0].event_id == "D-0-2"


def test_a_rounds_tries_are_each_logged_and_leave_each_delivery_in_its_state(session):
    mine = _subscription(session, "mine")
    for n in range(4):
        _enqueue(session, mine, f"D-{n}", [1], NOW - timedelta(minutes=1))
    due = repository.due_deliveries(session, mine, NOW, limit=10)
    at = [NOW + timedelta(seconds=n) for n in range(4)]
    retry = NOW + timedelta(minutes=1)
    repository.record_attempts(
        session,
        [
            repository.Attempt(due[0], at[0], 204, None, 0.1, "delivered", None),
            repository.Attempt(due[1], at[1], 503, None, 0.2, "pending", retry),
            repository.Attempt(due[2], at[2], None, "ConnectTimeout", 5.0, "dead", None),
            repository.Attempt(due[3], at[3], 200, None, 0.3, "delivered", None),
        ],
    )
    rows = {
        r.event_id: r
        for r in session.execute(sa.select(deliveries).where(deliveries.c.subscription_id == mine)).all()
    }
    states = {
        e: (r.state, r.attempts, r.last_status, r.last_error, r.next_attempt_at, r.delivered_at)
        for e, r in rows.items()
    }
    assert states == {
        "D-0-1": ("delivered", 1, 204, None, at[0], at[0]),
        "D-1-1": ("pending", 1, 503, None, retry, None),
        "D-2-1": ("dead", 1, None, "ConnectTimeout", at[2], None),
        "D-3-1": ("delivered", 1, 200, None, at[3], at[3]),
    }
    log = repository.delivery_log(session, mine, 10)
    assert {d["event_id"]: [(a["at"], a["status"], a["error"]) for a in d["attempts"]] for d in log} == {
        "D-0-1": [(at[0], 204, None)],
        "D-1-1": [(at[1], 503, None)],
        "D-2-1": [(at[2], None, "ConnectTimeout")],
        "D-3-1": [(at[3], 200, None)],
    }
