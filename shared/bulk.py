"""Many rows in one statement, for batch consumers.

``insert_rows(connection, table, columns)`` is a dialect-specific insert (PostgreSQL's or SQLite's, so
``.on_conflict_do_update`` / ``.on_conflict_do_nothing`` and ``.returning`` apply); execute it with
``rows_parameter(connection, rows)``. Add a ``RETURNING`` clause even if you do not need its rows: on
SQLite it is what makes SQLAlchemy send the rows as one multi-row statement.

* PostgreSQL: an ``INSERT … SELECT`` from ``json_populate_recordset`` (typed by the table's own row
  type); the rows travel as one JSON parameter. A plain multi-row ``VALUES`` made SQLAlchemy process
  every value of every row in Python (bind processors, parameter dictionaries, the rendered statement),
  which cost the metrics consumer more CPU than the database's own work; here the batch is one
  ``json.dumps``. Datetimes must be timezone-aware (ISO 8601 with offset), as
  :class:`shared.db.UTCDateTime` requires; dates are ISO dates; JSON columns nested JSON.
* SQLite: SQLAlchemy's multi-row ``VALUES`` (insertmanyvalues). The same JSON through ``json_each`` was
  measured slower there: SQLite 3.40 parses the row's JSON again for each ``json_extract``, and
  without a network round trip the per-value cost is all that counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session


def _dialect(connection: Connection | Session) -> Dialect:
    return connection.get_bind().dialect if isinstance(connection, Session) else connection.dialect


def insert_rows(connection: Connection | Session, table: sa.Table, columns: Sequence[str]):
    """An insert of ``columns`` of ``table``, its rows from :func:`rows_parameter`."""
    dialect = _dialect(connection)
    if dialect.name != "postgresql":
        return sqlite.insert(table)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    source = sa.text(
        f"SELECT {names} FROM json_populate_recordset(NULL::{quote(table.name)}, CAST(:rows AS json))"
    ).columns(*(sa.column(name) for name in columns))
    return postgresql.insert(table).from_select(list(columns), source, include_defaults=False)


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def rows_parameter(connection: Connection | Session, rows: Iterable[Mapping[str, Any]]) -> Any:
    """The parameters of :func:`insert_rows` for ``rows`` (each row a mapping of every column)."""
    if _dialect(connection).name != "postgresql":
        return list(rows)
    return {"rows": json.dumps(list(rows), default=_json_value, separators=(",", ":"))}
