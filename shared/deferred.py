"""Writes whose results nobody reads, sent to PostgreSQL together: one round trip, not one each.

A dossier's receipt inserts the dossier, its hand-over, its audit line and its events (the outbox);
an action updates the dossier and inserts the rest. Nothing reads what those statements return, so on
PostgreSQL they need not each wait for the server: :func:`write` renders each one at once (its values
bound as they are now) and keeps it on the transaction's connection; :func:`flush` sends them all as
one multi-statement query (psycopg2 binds client-side, so the rendered text is what it would have sent
for each one), in the order written. The unit of work flushes with the outbox's rows just before the
commit, and any other statement on the connection flushes them first (a ``before_execute`` hook), so
every statement still runs after the writes before it: a read sees them, a foreign key finds its row,
and an error still fails the transaction before its commit (a multi-statement query stops at its
first error, which PostgreSQL reports as the query's).

Elsewhere (SQLite, whose driver runs one statement per call, in process) :func:`write` executes at once.
Issue 23: a receipt went from 7 round trips to 4 (BEGIN, the code counter, these writes, COMMIT).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

# Where a connection keeps its pending writes (Connection.info: the pooled DBAPI connection's).
_PENDING = "motcua.deferred_writes"
# Statements compiled once per (statement, the keys given): no SQLAlchemy compile per write.
_COMPILED: dict[tuple[Any, tuple[str, ...]], tuple[str, dict[str, Any]]] = {}
_NO_PARAMETERS = {"no_parameters": True}  # the text is final: psycopg2 must not look for %s in it


def defers(engine: Engine) -> bool:
    """Whether writes on ``engine`` are deferred (PostgreSQL with psycopg2)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


def install(engine: Engine) -> None:
    """Flush a connection's pending writes before any other statement it runs; forget them when its
    transaction rolls back or it goes back to the pool (once per engine; nothing off PostgreSQL)."""
    if not defers(engine) or sa_event.contains(engine, "before_execute", _writes_first):
        return
    sa_event.listen(engine, "before_execute", _writes_first)
    sa_event.listen(engine, "commit", _none_left)
    sa_event.listen(engine, "rollback", _forget)
    sa_event.listen(engine.pool, "checkin", _forget_at_checkin)


# An invalidated connection (its DBAPI connection lost) is skipped: reading its ``info`` would try to
# reconnect (PendingRollbackError inside a transaction), and its pool record's info is cleared anyway.


def _writes_first(connection, _statement, _multiparams, _params, _options) -> None:
    if not connection.invalidated and connection.info.get(_PENDING):
        _send(connection)


def _none_left(connection) -> None:
    if not connection.invalidated and connection.info.get(_PENDING):
        connection.info.pop(_PENDING)
        raise RuntimeError("deferred writes were not flushed before the commit (shared/deferred.py)")


def _forget(connection) -> None:
    if not connection.invalidated:
        connection.info.pop(_PENDING, None)


def _forget_at_checkin(_dbapi_connection, record) -> None:
    if record is not None:
        record.info.pop(_PENDING, None)


def write(session: Session, statement: sa.Insert | sa.Update, rows: Iterable[Mapping[str, Any]]) -> None:
    """Execute ``statement`` for each of ``rows`` (each with the same keys) in ``session``'s transaction:
    on PostgreSQL rendered now and sent at the next :func:`flush` or statement; else executed now."""
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if not defers(connection.engine):
        session.execute(statement, rows)
        return
    keys = tuple(rows[0])
    compiled = _COMPILED.get((statement, keys))
    if compiled is None:
        compiled = _compile(statement, keys, connection)
        if compiled is None:  # defaults computed in Python at execution: let SQLAlchemy run it
            session.execute(statement, rows)
            return
        _COMPILED[(statement, keys)] = compiled
    text, processors = compiled
    pending = connection.info.setdefault(_PENDING, [])
    cursor = _cursor(connection)
    for row in rows:
        values = {key: (p(value) if (p := processors.get(key)) else value) for key, value in row.items()}
        pending.append(cursor.mogrify(text, values))


def flush(session: Session) -> None:
    """Send the pending writes of ``session``'s connection now (before its commit)."""
    if session.in_transaction():
        connection = session.connection()
        if connection.info.get(_PENDING):
            _send(connection)


def _send(connection: Connection) -> None:
    pending = connection.info.pop(_PENDING)
    connection.exec_driver_sql(b";\n".join(pending).decode(), execution_options=_NO_PARAMETERS)


def _cursor(connection: Connection):
    # mogrify renders client-side (no round trip); the connection's encoding decides the bytes.
    return connection.connection.dbapi_connection.cursor()


def _compile(statement, keys: tuple[str, ...], connection: Connection) -> tuple[str, dict[str, Any]] | None:
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(keys))
    if compiled.insert_prefetch or compiled.update_prefetch or compiled.positional:
        return None
    names = {key: compiled.binds[key] for key in keys if key in compiled.binds}
    if len(names) != len(keys):
        return None  # a key the statement does not bind under its own name: not for this path
    processors = {key: proc for key, proc in compiled._bind_processors.items() if key in names}
    return compiled.string, processors
