"""shared/bulk.py: a batch of rows in one statement stores what a row-by-row insert would store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from shared.bulk import execute_rows, insert_rows
from shared.db import UTCDateTime, create_engine

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
sample = sa.Table(
    "bulk_sample",
    metadata,
    sa.Column("key", sa.String(20), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=True),
    sa.Column("day", sa.Date, nullable=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("share", sa.Float, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("note", sa.String(50), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
)
COLUMNS = tuple(column.name for column in sample.columns)
HANOI = timezone(timedelta(hours=7))


def row(key: str, **values) -> dict:
    base = {
        "key": key,
        "at": datetime(2026, 3, 1, 23, 30, 15, 123456, tzinfo=HANOI),
        "day": date(2026, 3, 1),
        "count": 3,
        "share": 0.1 + 0.2,
        "flag": True,
        "note": 'Phường Bến Nghé "quoted" \\ back',
        "data": {"items": ["bản sao", 1, None], "nested": {"ok": False}},
    }
    return {**base, **values}


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def upsert(connection, rows) -> list[str]:
    statement = insert_rows(connection, sample, COLUMNS)
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"count": sample.c.count + statement.excluded["count"], "note": statement.excluded["note"]},
    )
    return sorted(
        key for (key,) in execute_rows(connection, statement.returning(sample.c.key), COLUMNS, rows)
    )


def read(connection) -> dict[str, dict]:
    return {r["key"]: dict(r) for r in connection.execute(sa.select(sample)).mappings()}


def test_a_batch_reads_back_as_written_and_as_a_plain_insert_stores_it(engine):
    rows = [
        row("a"),
        row("b", at=None, day=None, share=None, note=None, flag=False, data={}),
        row("c", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), share=2.5e-7, count=0),
    ]
    with engine.begin() as connection:
        assert upsert(connection, rows) == ["a", "b", "c"]
        connection.execute(sample.insert(), [{**r, "key": f"plain-{r['key']}"} for r in rows])
        stored = read(connection)
        # Compared in the database too: the same instant stored the same way sorts and compares equal.
        same_instant = connection.execute(
            sa.select(sa.func.count()).select_from(sample).where(sample.c.at == rows[0]["at"])
        ).scalar_one()
    for written in rows:
        got, plain = stored[written["key"]], stored[f"plain-{written['key']}"]
        assert {k: v for k, v in got.items() if k != "key"} == {k: v for k, v in plain.items() if k != "key"}
        assert got["at"] == written["at"]  # the same instant, read back in UTC
        assert got["at"] is None or got["at"].tzinfo is not None
        assert got["data"] == written["data"] and got["note"] == written["note"]
        assert got["share"] == written["share"] and got["flag"] is written["flag"]
    assert same_instant == 2


def test_conflicting_rows_take_the_statements_update(engine):
    with engine.begin() as connection:
        upsert(connection, [row("a", count=2), row("b", count=5)])
        assert upsert(connection, [row("a", count=40, note="again")]) == ["a"]
        stored = read(connection)
    assert stored["a"]["count"] == 42 and stored["a"]["note"] == "again"
    assert stored["b"]["count"] == 5


def test_a_naive_datetime_is_refused(engine):
    with engine.begin() as connection, pytest.raises((ValueError, sa.exc.StatementError), match="naive"):
        upsert(connection, [row("a", at=datetime(2026, 3, 1, 12, 0))])


def test_a_batch_beyond_sqlites_parameter_limit_is_written_whole(engine):
    rows = [row(f"k{n}", count=n) for n in range(5000)]  # 40,000 parameters: more than one SQLite statement
    with engine.begin() as connection:
        assert len(upsert(connection, rows)) == 5000
        total = connection.execute(sa.select(sa.func.sum(sample.c.count))).scalar_one()
    assert total == sum(range(5000))


def test_nothing_to_write_is_no_statement(engine):
    with engine.begin() as connection:
        assert upsert(connection, []) == []
