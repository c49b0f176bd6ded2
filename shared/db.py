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


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine tuned for the dialect: WAL and immediate transactions on SQLite, a green driver
    for PostgreSQL under eventlet (psycopg2 would otherwise block every greenthread while it waits).
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

    if parsed.get_backend_name() == "postgresql" and _eventlet_patched():
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
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
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("the connection did not answer a ping")
