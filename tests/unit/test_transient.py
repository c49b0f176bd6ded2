"""Telling the infrastructure's failures from the message's, and the retry schedule (issue 12)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from shared.broker import BrokerUnavailable
from shared.config import parse_delays
from shared.consumer import outage_backoff, retry_delay
from shared.transient import DatabaseUnavailable, is_transient


class PgError(Exception):
    """Stands in for a psycopg2 error: what matters is its SQLSTATE."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def wrapped(kind: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        # The server is down or went away: psycopg2 gives no SQLSTATE.
        (wrapped(sa.exc.OperationalError, PgError("connection refused", None)), True),
        (wrapped(sa.exc.OperationalError, PgError("server closed the connection unexpectedly", None)), True),
        (wrapped(sa.exc.OperationalError, PgError("terminating connection (admin shutdown)", "57P01")), True),
        (wrapped(sa.exc.OperationalError, PgError("could not obtain lock", "55P03")), True),
        (wrapped(sa.exc.OperationalError, PgError("deadlock detected", "40P01")), True),
        (wrapped(sa.exc.OperationalError, PgError("could not serialize access", "40001")), True),
        (wrapped(sa.exc.OperationalError, PgError("could not extend file: No space left", "53100")), True),
        (
            wrapped(
                sa.exc.OperationalError, PgError("canceling statement due to statement timeout", "57014")
            ),
            True,
        ),
        (wrapped(sa.exc.InterfaceError, PgError("connection already closed", None)), True),
        (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
        (DatabaseUnavailable("database unavailable"), True),
        (BrokerUnavailable("cannot reach RabbitMQ"), True),
        (ConnectionResetError("reset by peer"), True),
        # The message's or the code's own fault: retrying the same thing fails the same way.
        (wrapped(sa.exc.IntegrityError, PgError("duplicate key value", "23505")), False),
        (wrapped(sa.exc.DataError, PgError("value too long for type", "22001")), False),
        (wrapped(sa.exc.ProgrammingError, PgError("relation does not exist", "42P01")), False),
        (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("no such table: x")), False),
        (KeyError("due_at"), False),
        (ValueError("bad date"), False),
    ],
)
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_retry_delays_grow_and_the_last_repeats():
    delays = parse_delays("1,5,30,120")
    assert delays == (1.0, 5.0, 30.0, 120.0)
    assert [retry_delay(delays, attempt) for attempt in range(1, 7)] == [1, 5, 30, 120, 120, 120]


@pytest.mark.parametrize("text", ["", "1,-5", "a,b"])
def test_bad_retry_delays_are_refused(text):
    with pytest.raises(ValueError):
        parse_delays(text)


def test_outage_backoff_doubles_up_to_its_ceiling():
    assert [outage_backoff(n, 10.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert outage_backoff(1000, 10.0) == 10.0
