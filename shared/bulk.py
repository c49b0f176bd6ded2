"""Many rows in one statement, for batch consumers.

``insert_rows(connection, table, columns)`` is a dialect-specific insert (PostgreSQL's or SQLite's, so
``.on_conflict_do_update`` / ``.on_conflict_do_nothing`` and ``.returning`` apply);
``execute_rows(connection, statement, columns, rows)`` runs it for a batch of rows (each a mapping of
every column) and returns the ``RETURNING`` rows, if any.

Why not ``connection.execute(statement, rows)``: SQLAlchemy then processes every row in Python
(parameter dictionaries, bind processors, the rendered multi-row statement), and for a batch consumer
that cost more CPU than the database's own work (the metrics projection, issue 13).

* PostgreSQL: an ``INSERT … SELECT`` from ``json_populate_recordset`` (typed by the table's own row
  type); the rows travel as one JSON parameter, so the batch is one ``json.dumps``. Datetimes must be
  timezone-aware (ISO 8601 with offset), as :class:`shared.db.UTCDateTime` requires; dates are ISO
  dates; JSON columns nested JSON.
* SQLite: one multi-row ``VALUES`` statement with positional parameters, rendered once from the
  compiled single-row statement; each value goes through its column type's own bind processor (UTC
  datetimes through a one-call equivalent), so it is stored exactly as SQLAlchemy stores it. The JSON
  way through ``json_each`` was measured slower there: SQLite 3.40 parses the row's JSON again for
  each ``json_extract``. Batches beyond SQLite's 32,766 parameters take as many statements as needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from shared.db import UTCDateTime


def _dialect(connection: Connection | Session) -> Dialect:
    return connection.get_bind().dialect if isinstance(connection, Session) else connection.dialect


def insert_rows(connection: Connection | Session, table: sa.Table, columns: Sequence[str]):
    """An insert of ``columns`` of ``table``, for :func:`execute_rows`."""
    dialect = _dialect(connection)
    if dialect.name != "postgresql":
        return sqlite.insert(table).values({name: sa.bindparam(name) for name in columns})
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    source = sa.text(
        f"SELECT {names} FROM json_populate_recordset(NULL::{quote(table.name)}, CAST(:rows AS json))"
    ).columns(*(sa.column(name) for name in columns))
    return postgresql.insert(table).from_select(list(columns), source, include_defaults=False)


def execute_rows(
    connection: Connection | Session, statement, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> list[Any]:
    """Run :func:`insert_rows`'s ``statement`` for ``rows``; its ``RETURNING`` rows (raw values), if any."""
    rows = list(rows)
    if not rows:
        return []
    dialect = _dialect(connection)
    if dialect.name == "postgresql":
        payload = json.dumps(rows, default=_json_value, separators=(",", ":"))
        result = connection.execute(statement, {"rows": payload})
        return result.all() if result.returns_rows else []
    if isinstance(connection, Session):
        connection = connection.connection()
    compiled = statement.compile(dialect=dialect)
    if list(compiled.positiontup or ()) != list(columns):
        raise ValueError(f"the statement's parameters {compiled.positiontup} are not the columns {columns}")
    group = "(" + ", ".join("?" * len(columns)) + ")"
    sql = compiled.string
    if sql.count(f"VALUES {group}") != 1:
        raise ValueError(f"cannot expand the VALUES of {sql!r}")
    table = statement.table
    processors = [(name, _sqlite_processor(table.c[name].type, dialect)) for name in columns]
    answer: list[Any] = []
    per_statement = max(1, SQLITE_MAX_PARAMETERS // len(columns))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        parameters = [
            process(row[name]) if process is not None else row[name]
            for row in chunk
            for name, process in processors
        ]
        expanded = sql.replace(f"VALUES {group}", "VALUES " + ", ".join([group] * len(chunk)), 1)
        result = connection.exec_driver_sql(expanded, tuple(parameters))
        if result.returns_rows:
            answer.extend(result.all())
    return answer


SQLITE_MAX_PARAMETERS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32


def _sqlite_processor(type_: sa.types.TypeEngine, dialect: Dialect):
    if isinstance(type_, UTCDateTime):
        return _sqlite_utc
    return type_._cached_bind_processor(dialect)  # noqa: SLF001 - SQLAlchemy's own, as execute() uses it


def _sqlite_utc(value: datetime | None) -> str | None:
    """What :class:`shared.db.UTCDateTime` and SQLAlchemy's SQLite ``DATETIME`` store, in one C call."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")
