"""PostgreSQL connections are pinged before use only after sitting idle (shared.db._ping_when_idle)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from shared import db

pytestmark = pytest.mark.integration


def test_a_busy_connection_is_not_pinged_and_an_idle_one_cut_by_the_server_is_replaced(
    database_url, monkeypatch
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to cut a connection")
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.3)
    engine = db.create_engine(database_url, pool_size=1)
    pings: list[int] = []
    real_ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: pings.append(1) or real_ping(connection)
    backend = sa.select(sa.func.pg_backend_pid())
    try:
        with engine.connect() as connection:
            first = connection.execute(backend).scalar_one()
        with engine.connect() as connection:  # used again at once: no round trip spent on a ping
            assert connection.execute(backend).scalar_one() == first
        assert pings == []

        admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            assert connection.execute(sa.select(sa.func.pg_terminate_backend(first))).scalar_one()
        time.sleep(0.4)
        with engine.connect() as connection:  # idle, pinged, found dead: replaced before use
            assert connection.execute(backend).scalar_one() != first
        assert pings
    finally:
        engine.dispose()
