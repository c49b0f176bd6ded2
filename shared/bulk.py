"""Many rows in one statement: the rows travel as one JSON parameter, and the database unpacks them.

``insert_rows(connection, table, columns)`` is a dialect-specific ``INSERT … SELECT`` (PostgreSQL's or
SQLite's, so ``.on_conflict_do_update`` / ``.on_conflict_do_nothing`` and ``.returning`` apply) reading
its rows from ``json_populate_recordset`` (PostgreSQL: typed by the table's own row type) or
``json_each`` / ``json_extract`` (SQLite ≥ 3.38, or any build with JSON1). Execute it with
``rows_parameter(connection, rows)``.

Why not a plain multi-row ``VALUES``: SQLAlchemy then processes every value of every row in Python
(bind processors, parameter dictionaries, the rendered statement), which cost a batch consumer more than
the database's own work; here the whole batch is one ``json.dumps``. Values are rendered as the column
types store them: timezone-aware datetimes in UTC (ISO 8601 for PostgreSQL; SQLAlchemy's
``YYYY-MM-DD HH:MM:SS.ffffff`` naive-UTC text on SQLite, as :class:`shared.db.UTCDateTime` writes
them), dates as ``YYYY-MM-DD``, JSON columns as nested JSON. A naive datetime is refused, as
``UTCDateTime`` refuses it.
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


def _dialect(connection: Connection | Session) -> Dialect:
    return connection.get_bind().dialect if isinstance(connection, Session) else connection.dialect


def insert_rows(connection: Connection | Session, table: sa.Table, columns: Sequence[str]):
    """``INSERT INTO table (columns) SELECT …`` the rows of the JSON parameter ``rows``."""
    dialect = _dialect(connection)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    if dialect.name == "postgresql":
        source = sa.text(
            f"SELECT {names} FROM json_populate_recordset(NULL::{quote(table.name)}, CAST(:rows AS json))"
        )
        insert = postgresql.insert(table)
    else:
        extracted = ", ".join(f"json_extract(value, '$.{name}')" for name in columns)
        # "WHERE true": without it SQLite would read ON CONFLICT as part of the SELECT's join.
        source = sa.text(f"SELECT {extracted} FROM json_each(:rows) WHERE true")
        insert = sqlite.insert(table)
    textual = source.columns(*(sa.column(name) for name in columns))
    return insert.from_select(list(columns), textual, include_defaults=False)


def _postgresql_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _sqlite_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def rows_parameter(connection: Connection | Session, rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The ``rows`` parameter of :func:`insert_rows`: the rows as one JSON array."""
    default = _postgresql_value if _dialect(connection).name == "postgresql" else _sqlite_value
    return {"rows": json.dumps(list(rows), default=default, separators=(",", ":"))}
