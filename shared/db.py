"""Database access for a service: one engine per service, SQLite (WAL) by default, PostgreSQL by URL.

Each service owns its tables (its own ``MetaData``); no service reads another's. The tables every
service shares in shape — the outbox, the inbox and the idempotency keys — are defined here once and
added to each service's metadata by :func:`add_pipeline_tables`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class PipelineTables:
    outbox: sa.Table
    inbox: sa.Table
    idempotency_keys: sa.Table


# SQLite needs a plain INTEGER primary key to autoincrement (it aliases the rowid).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes in, timezone-aware UTC datetimes out, on SQLite and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_pipeline_tables(metadata: sa.MetaData, service: str) -> PipelineTables:
    """Add the outbox, inbox and idempotency-key tables to a service's metadata.

    Named after the service (``dossier_outbox``) so that several services may share one database
    (one ``DATABASE_URL``) while each still owns its tables.
    """
    outbox = sa.Table(
        f"{service}_outbox",
        metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("cc", sa.JSON, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.Column("unroutable", sa.Boolean, nullable=False, default=False),
        sa.Index(
            f"ix_{service}_outbox_pending",
            "id",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        ),
    )
    inbox = sa.Table(
        f"{service}_inbox",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
    )
    keys = sa.Table(
        f"{service}_idempotency_keys",
        metadata,
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    return PipelineTables(outbox, inbox, keys)


def _eventlet_patched() -> bool:
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher and patcher.is_monkey_patched("socket"))


# The longest a statement may run (PostgreSQL's statement_timeout) unless the service's
# DATABASE_TIMEOUT_SECONDS says otherwise; see :func:`postgresql_connect_args`.
DATABASE_TIMEOUT_SECONDS = 15.0
# What a maintenance job (a migration, a projection rebuild) gives each statement: it may rewrite a table.
MAINTENANCE_TIMEOUT_SECONDS = 600.0
# What a wait on the database may take beyond the statement timeout before the path is taken for dead:
# the server cancels a statement at its timeout and answers, so silence past it is the network's.
NETWORK_MARGIN_SECONDS = 5.0


def postgresql_connect_args(timeout: float) -> dict[str, str | int]:
    """libpq parameters that bound every wait on a PostgreSQL server that stopped answering.

    A blackholed server (packets dropped, no reset) would otherwise hold a connection for the kernel's
    two hours: TCP keepalives find an idle connection dead, ``tcp_user_timeout`` one with unacknowledged
    data; the server is given the same bounds for its side (so a dead client's session, and the advisory
    lock it may hold, ends), plus ``statement_timeout``, ``lock_timeout`` and an idle-in-transaction limit.
    Parameters given in the URL win over these.
    """
    seconds = max(1, round(timeout))
    idle, interval, count = max(1, seconds // 3), max(1, seconds // 6), 3
    user_timeout_ms = seconds * 1000
    server = {
        "statement_timeout": f"{seconds}s",
        # Long enough for a queue on a hot row (a unit's dossier counter, a document being signed).
        "lock_timeout": f"{min(seconds, max(5, seconds * 2 // 3))}s",
        "idle_in_transaction_session_timeout": f"{seconds * 2}s",
        "tcp_keepalives_idle": idle,
        "tcp_keepalives_interval": interval,
        "tcp_keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
    }
    return {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
    }


# The error of a wait that ran out (psycopg2's, so defined once psycopg2 is in use).
_not_answering: type[Exception] | None = None


def _bounded_green_waits(seconds: float) -> None:
    """psycopg2 waits through psycogreen's callback, so a greenthread waiting on the database lets the
    others run; each wait (a connect, a statement, a commit) is bounded here by ``seconds``.

    libpq's ``connect_timeout`` is no use under the callback (the connect is polled, not blocking), and
    a server that went silent would hold the greenthread forever. Past the bound the wait raises an
    ``OperationalError`` — a transient failure (503, a held event, a relay round to retry) — and
    psycopg2 closes the connection, so the pool replaces it rather than reuse a desynchronised one.
    """
    import eventlet
    import psycopg2
    from psycogreen.eventlet import eventlet_wait_callback

    global _not_answering

    class DatabaseNotAnswering(psycopg2.OperationalError):
        pass

    _not_answering = DatabaseNotAnswering

    def wait(connection, timeout=None):
        with eventlet.Timeout(seconds, DatabaseNotAnswering(f"the database did not answer in {seconds:g} s")):
            eventlet_wait_callback(connection)

    psycopg2.extensions.set_wait_callback(wait)


def create_engine(url: str, *, pool_size: int = 10, timeout: float = DATABASE_TIMEOUT_SECONDS) -> Engine:
    """An engine tuned for the dialect: WAL and immediate transactions on SQLite, a green driver
    for PostgreSQL under eventlet (psycopg2 would otherwise block every greenthread while it waits),
    every PostgreSQL wait bounded by ``timeout`` (plus a margin for the network).
    Statements' values never appear in an error (``hide_parameters``): they are applicants' data.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            hide_parameters=True,
        )

        @sa_event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # Let SQLAlchemy's begin hook emit BEGIN itself (pysqlite's implicit one is deferred).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _begin_immediate(connection):
            # Take the write lock up front: a deferred read-then-write can fail with SQLITE_BUSY
            # without waiting for busy_timeout.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    connect_args: dict = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {k: v for k, v in postgresql_connect_args(timeout).items() if k not in parsed.query}
        if _eventlet_patched():
            _bounded_green_waits(timeout + NETWORK_MARGIN_SECONDS)
        else:
            # Blocking connects (migrations, scripts) may use libpq's own bound.
            connect_args.setdefault("connect_timeout", max(2, round(timeout)))
    engine = sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        hide_parameters=True,
    )
    _ping_when_idle(engine)
    return engine


# A pooled connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection that sat idle: a ping is a round trip, on a busy
    service one per transaction. A connection cut while in use fails its statement instead (a 503),
    and SQLAlchemy then recycles every connection of the pool opened before the failure."""

    @sa_event.listens_for(engine, "connect")
    @sa_event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa_event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", float("-inf")) <= IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if _not_answering is not None and isinstance(exc, _not_answering):
                # Not a DisconnectionError: the pool would try up to twice more, each as long. The
                # driver's own error, as a failed connect raises it: the pool drops the connection and
                # ``engine.connect()`` gives it as SQLAlchemy's OperationalError, which every caller
                # handles. Anything else escaped the loops that catch SQLAlchemy's errors: the outbox
                # relay's thread died on it, and with it the whole service (docs/chaos.md, issue 22).
                raise
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("the connection did not answer a ping")
