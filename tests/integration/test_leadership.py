"""Leader election among replicas (shared/leadership.py): one holder per job and database, a lost lock
stands its holder down at its next round, and another replica takes over."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared.leadership import HELD_HERE, Leadership, lock_key
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration
KEY = lock_key("motcua-test-leadership")


@pytest.fixture
def engines(database_url):
    made = [sa.create_engine(database_url) for _ in range(3)]
    yield made
    for engine in made:
        engine.dispose()


def holder_pid(engine: sa.Engine) -> int | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(f"SELECT l.pid FROM pg_locks l WHERE {HELD_HERE}"),
            {"key": KEY},
        ).scalar()


def test_one_replica_leads_and_another_takes_over_when_its_lock_is_gone(engines, database_url):
    first, second = (Leadership(engine, KEY, f"test job {n}") for n, engine in enumerate(engines[:2]))
    try:
        if database_url.startswith("sqlite"):
            # one process per SQLite database: it always leads
            assert first.hold() and second.hold()
            return
        assert first.hold() is True
        assert second.hold() is False, "a second replica may not lead beside the first"
        assert first.hold() is True, "the leader keeps the lead round after round"
        assert second.hold() is False
        # The leader's lock connection is cut (a network fault, a restart, pg_terminate_backend).
        pid = holder_pid(engines[2])
        with engines[2].connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            connection.commit()
        # The backend ends soon after the signal; then the lock is free.
        assert wait_for(second.hold, timeout=10), "another replica takes the free lock"
        assert first.hold() is False, "the old leader stands down at its next round"
        assert holder_pid(engines[2]) not in (None, pid)
        second.release()
        assert holder_pid(engines[2]) is None, "a released lock is free at once"
        assert first.hold() is True
    finally:
        first.release()
        second.release()
