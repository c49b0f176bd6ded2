"""One leader among a service's replicas for a job only one may do: a PostgreSQL advisory lock.

The outbox relay (only one may publish, or the order per dossier breaks) and the metrics service's SLA
exporter (only one may export the totals, or every ``sum`` counts them twice) each elect theirs here.
The lock is session-level, held on a connection of its own for as long as the holder leads; when that
connection drops (the process died, a network fault, ``pg_terminate_backend``) PostgreSQL releases it
and another replica takes it at its next try. The holder re-checks on every call that its connection
still holds the lock, and stands down when it does not: another replica may be leading already.

On SQLite there is one process per database, and it always leads.
"""

from __future__ import annotations

import logging
import threading
import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared.transient import is_transient

log = logging.getLogger(__name__)


# What replicas elect a leader for, by the lock's name (``{service}``: the service's name).
ELECTED_JOBS = {
    "outbox relay": "motcua-outbox-{service}",
    "SLA exporter": "motcua-sla-exporter-{service}",
    "portal sync": "motcua-portal-sync-{service}",
    "webhook delivery": "motcua-webhook-delivery-{service}",
    "notifications": "motcua-notifications-{service}",
}


# The condition on pg_locks (as ``l``) for the sessions holding the advisory lock ``:key`` in the current
# database. Advisory locks are per database, but pg_locks lists the whole server's: another database on
# the same server (another environment, a test) may hold the same key, and must not be taken for ours.
HELD_HERE = (
    "l.locktype = 'advisory' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
)


def lock_key(name: str) -> int:
    """The advisory lock's key for a job, e.g. ``motcua-outbox-dossier``: the same in every replica."""
    return zlib.crc32(name.encode())


def job_key(job: str, service: str) -> int:
    """The lock of one of ``ELECTED_JOBS`` in a service's database."""
    return lock_key(ELECTED_JOBS[job].format(service=service))


class Leadership:
    """Who does ``job`` among the replicas on ``engine``'s database; :meth:`hold` once per round."""

    def __init__(self, engine: Engine, key: int, job: str) -> None:
        self.engine = engine
        self.key = key
        self.job = job
        self._connection: Connection | None = None
        # The lock connection is used by whoever calls hold(): one at a time.
        self._mutex = threading.Lock()

    @property
    def elected(self) -> bool:
        """Whether a lock is held now, as of the last :meth:`hold` (no database call)."""
        return self.engine.dialect.name != "postgresql" or self._connection is not None

    @property
    def connection(self) -> Connection | None:
        """The lock connection while the lead is held (PostgreSQL), in autocommit: a holder may run its
        own statements on it (see :meth:`hold`'s ``works_on_lock``). Only the holder's one thread may."""
        return self._connection

    def hold(self, *, works_on_lock: bool = False) -> bool:
        """Take the lead, or confirm it is still held; False while another replica leads.

        ``works_on_lock``: the caller runs its statements on :attr:`connection` (and stands down with
        :meth:`release` when one fails). The lock is the session's until the session ends, so a
        statement that succeeds there proves the lock held at that moment: a held lead is then
        confirmed without asking ``pg_locks``, a round trip less per round.

        Raises SQLAlchemy's errors when the database cannot be asked (the caller decides what that
        means; the lead is not held then)."""
        if self.engine.dialect.name != "postgresql":
            return True
        with self._mutex:
            if self._connection is not None:
                if works_on_lock or self._still_held():
                    return True
                log.error("%s: lost its leadership lock; standing down", self.job)
                self._close()
            connection = self.engine.connect()
            try:
                # Autocommit: each statement on the lock connection goes alone, without BEGIN and
                # COMMIT round trips (the connection is closed, never pooled, so its setting stays).
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                got = connection.execute(sa.select(sa.func.pg_try_advisory_lock(self.key))).scalar()
                connection.commit()
            except BaseException:
                connection.invalidate()
                connection.close()
                raise
            if got:
                self._connection = connection
                log.info("%s: this replica leads", self.job)
                return True
            connection.close()
            return False

    def leads(self) -> bool:
        """:meth:`hold` for a loop that only asks whether to act this round: a database that cannot be
        asked means standing down (the lock connection closed), not an error."""
        try:
            return self.hold()
        except Exception as exc:
            if not (isinstance(exc, sa.exc.SQLAlchemyError) or is_transient(exc)):
                raise
            self.release()
            return False

    def _still_held(self) -> bool:
        """A lock connection cut by a restart or a network fault, or a lock ended by
        ``pg_terminate_backend``, means another replica may be leading already."""
        try:
            held = self._connection.execute(
                sa.text(f"SELECT count(*) FROM pg_locks l WHERE {HELD_HERE} AND l.pid = pg_backend_pid()"),
                {"key": self.key},
            ).scalar()
            self._connection.commit()
        except Exception as exc:
            if not (isinstance(exc, sa.exc.SQLAlchemyError) or is_transient(exc)):
                raise
            return False
        return bool(held)

    def release(self) -> None:
        """Stand down (at stop, or after a database error): close the lock connection."""
        with self._mutex:
            self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                # Really closed, not returned to the pool: the session would keep holding the lock.
                connection.invalidate()
                connection.close()
            except sa.exc.SQLAlchemyError:
                log.debug("%s: closing the lock connection failed", self.job, exc_info=True)
