"""A blackholed PostgreSQL (packets dropped, no reset) under eventlet, as the services run: every wait is
bounded, the failure is one the callers know (SQLAlchemy's, transient), and the loops that run for the
life of a service outlive it.

Issue 22's defect (docs/chaos.md): the idle-connection ping at checkout (shared/db.py) raised a plain
``ConnectionError`` when the database did not answer; the outbox relay's loop catches SQLAlchemy's
errors only, so its thread ended with the error, and nameko stops the whole service when a managed
thread does — the dossier service was gone after an 8 s blackhole.

The bounds are shortened here (a 1 s statement timeout, a 0.5 s network margin, a ping after 0.1 s
idle) so that a wait runs out in 1.5 s; what they are in production is tests/unit/test_db_timeouts.py's.
"""

from __future__ import annotations

import time

import eventlet
import psycopg2.extensions
import pytest
import sqlalchemy as sa

from services.dossier.models import pipeline
from shared import db
from shared.events import Event
from shared.outbox import OutboxRelay, leader_lock_key, record
from shared.transient import is_transient
from tests.support.broker import Subscriber
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

TIMEOUT, MARGIN = 1.0, 0.5
BOUND = TIMEOUT + MARGIN  # what one wait on a silent database may take


@pytest.fixture
def blackholable(dossier_database, monkeypatch):
    """A PostgreSQL database reached through a proxy that can drop every packet, with short bounds."""
    if not dossier_database.startswith("postgresql"):
        pytest.skip("SQLite has no network to blackhole")
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.1)
    monkeypatch.setattr(db, "NETWORK_MARGIN_SECONDS", MARGIN)
    url = sa.engine.make_url(dossier_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    # The bounded wait is psycopg2's one process-wide callback: the other tests get theirs back.
    callback = psycopg2.extensions.get_wait_callback()
    engine = db.create_engine(url.set(host="127.0.0.1", port=proxy.port), pool_size=1, timeout=TIMEOUT)
    try:
        yield engine, proxy, dossier_database
    finally:
        proxy.close()
        engine.dispose()
        psycopg2.extensions.set_wait_callback(callback)


def test_an_idle_connection_pinged_into_a_blackhole_fails_the_checkout_as_sqlalchemy_does(blackholable):
    engine, proxy, _ = blackholable
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    time.sleep(0.3)  # idle past IDLE_PING_SECONDS: the next checkout pings it
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as caught:
        engine.connect()
    waited = time.monotonic() - started
    # One wait, not the pool's three tries; a loaded machine's scheduling is allowed a second.
    assert BOUND - 0.1 <= waited < BOUND + 1.0
    assert is_transient(caught.value)  # a 503 for a request, a held event for a consumer
    assert engine.pool.checkedout() == 0  # the slot is given back: no pool exhaustion afterwards
    proxy.flow()
    with engine.connect() as connection:  # the pool recovers by itself: a new connection
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_a_standby_relay_outlives_a_blackhole_then_leads_and_publishes_what_waited(
    blackholable, rabbit_config
):
    """The replica that does not lead asks for the lock every round on a pooled connection, idle since
    its last round: the checkout's ping met the blackhole (the chaos run's dossier replica that died)."""
    engine, proxy, direct_url = blackholable
    direct = sa.create_engine(direct_url, poolclass=sa.pool.NullPool)
    holder = direct.connect()  # another replica leads
    holder.execute(sa.select(sa.func.pg_advisory_lock(leader_lock_key("dossier"))))
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    relay = OutboxRelay(
        engine, pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier", poll_seconds=0.2
    )
    # A greenthread, as nameko's managed thread runs it: an error ending it stops the whole service.
    running = eventlet.spawn(relay.run)
    try:
        eventlet.sleep(1.5)  # a standby round or more: its pooled connection is idle between them
        assert not running.dead and not relay.leadership.elected
        proxy.blackhole()
        eventlet.sleep(3 * BOUND)  # a round's checkout, pinged, runs out its bound at least once
        assert not running.dead, "the relay's thread ended during the blackhole"
        with direct.begin() as connection:  # written meanwhile: it waits in the outbox
            event = Event(
                source="dossier",
                name="received",
                subject="D-DURING",
                data={},
                unit_path="79.26740",
                sequence=1,
            )
            record(connection, pipeline.outbox, [event])
        proxy.flow()
        holder.close()  # the leader is gone: this replica takes over by itself
        subscriber.drain(expect=1, timeout=30)
        assert not running.dead
    finally:
        relay.stop()
        running.wait()  # returns without an error once stopped
        subscriber.close()
        holder.close()
        direct.dispose()
    assert [e["subject"] for e in subscriber.envelopes] == ["D-DURING"]
