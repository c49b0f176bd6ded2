"""Which failures are the infrastructure's, not the request's or the message's.

A database that does not answer (stopped, restarting, failing over, out of disk), a connection reset,
a lock or statement timeout, a deadlock: retrying the same thing later succeeds. Everything else is
the message's or the request's own fault. The consumer backs off on a transient failure without
spending the message's attempts; the HTTP side answers 503 with ``Retry-After`` instead of 500.
"""

from __future__ import annotations

import sqlalchemy as sa

# PostgreSQL SQLSTATE classes and codes that say "try again later" (appendix A of its manual).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")  # connection, resources, operator, system
_TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "55006")  # serialization, deadlock, lock timeout, in use
# SQLite reports a busy or unreadable database only through the message of an OperationalError.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error", "unable to open")


class DatabaseUnavailable(ConnectionError):
    """The service's database did not answer; raised without trying while it is known to be down."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the infrastructure failed, so the same work may succeed later."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
            return True
        code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
        if code:
            return code in _TRANSIENT_SQLSTATES or code[:2] in _TRANSIENT_SQLSTATE_CLASSES
        if not isinstance(exc, sa.exc.OperationalError):
            return False
        message = str(exc.orig).lower()
        if type(exc.orig).__module__.startswith("sqlite3"):
            return any(text in message for text in _SQLITE_TRANSIENT)
        # psycopg2 gives no SQLSTATE when it cannot connect or the server went away.
        return True
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    # ConnectionError covers DatabaseUnavailable and shared.broker.BrokerUnavailable.
    return isinstance(exc, ConnectionError | TimeoutError)


def describe(exc: BaseException) -> str:
    """One line for logs, health checks and problem details: the class and the first line."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
