"""Transactional outbox: events are rows written with the state change; the relay publishes them.

A service never publishes from a request: it records its events in the ``outbox`` table in the same
transaction as the change (:func:`record`). The relay reads unpublished rows in id order, publishes
them with confirms, and marks only the confirmed, contiguous prefix as published, so a crash or a
broker outage at any point gives at worst a duplicate, never a gap or a reordering within a dossier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared import metrics
from shared.broker import BrokerUnavailable, ConfirmingPublisher, Outgoing
from shared.db import UTCDateTime
from shared.events import Event
from shared.failpoints import crash_point
from shared.leadership import Leadership, job_key
from shared.transient import describe, is_transient

log = logging.getLogger(__name__)


def leader_lock_key(service: str) -> int:
    """The PostgreSQL advisory lock that elects a service's relay among its replicas."""
    return job_key("outbox relay", service)


def rows(events: list[Event]) -> list[dict]:
    """The outbox rows of ``events``, every column given (shared/deferred.py renders them as they are)."""
    now = datetime.now(UTC)
    return [
        {
            "event_id": event.id,
            "subject": event.subject,
            "event_type": event.type,
            "routing_key": event.routing_key,
            "cc": event.cc or None,
            "body": event.to_json(),
            "created_at": now,
            "unroutable": False,
        }
        for event in events
    ]


@cache
def insert(table: sa.Table) -> sa.Insert:
    """The outbox's insert, built once (so that a compiled form can be kept for it)."""
    return table.insert()


def record(connection: Connection | sa.orm.Session, table: sa.Table, events: list[Event]) -> None:
    """Add events to the outbox inside the caller's transaction."""
    if not events:
        return
    connection.execute(insert(table), rows(events))


def _statements(table: sa.Table) -> tuple:
    """The relay's statements, built once: read a batch; mark a confirmed prefix published (and flag
    the unroutable among it) in one UPDATE; on PostgreSQL that UPDATE with the next batch's read.

    The read in the same statement sees the rows as they were before the UPDATE (one snapshot), so it
    leaves out the ids just marked itself; rows committed since with lower ids are still read (ids are
    taken before commit, so commit order and id order can differ), as by the plain read."""
    t = table
    select = (
        sa.select(t.c.id, t.c.event_id, t.c.event_type, t.c.routing_key, t.c.cc, t.c.body)
        .where(t.c.published_at.is_(None))
        .order_by(t.c.id)
        .limit(sa.bindparam("limit"))
    )
    name = t.name
    mark = sa.text(
        f"UPDATE {name} SET published_at = :now, unroutable = (id = ANY(CAST(:unroutable AS bigint[]))) "
        "WHERE id = ANY(CAST(:published AS bigint[]))"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime()))
    mark_then_select = sa.text(
        f"WITH marked AS ({mark.text}) "
        f"SELECT id, event_id, event_type, routing_key, cc, body FROM {name} "
        "WHERE published_at IS NULL AND NOT (id = ANY(CAST(:published AS bigint[]))) ORDER BY id LIMIT :limit"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime()))
    return select, mark, mark_then_select


class OutboxRelay:
    """Moves committed outbox rows to the broker, in order, through outages and restarts."""

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        amqp_uri: str,
        *,
        service: str,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        confirm_timeout: float = 10.0,
        linger_seconds: float = 0.02,
        sleep=None,
    ) -> None:
        self.engine = engine
        # Without an election (tests, the benchmark's bare relay): a pooled connection per statement,
        # in autocommit on PostgreSQL. The elected relay uses its lock connection (_connection).
        self._statements = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._select, self._mark, self._mark_then_select = _statements(table)
        self._prefetched: list[sa.Row] | None = None
        self.linger_seconds = linger_seconds
        self.table = table
        self.service = service
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.publisher = ConfirmingPublisher(amqp_uri, confirm_timeout=confirm_timeout)
        self._wake = threading.Event()
        self._running = False
        self._sleep = sleep
        self.leadership = Leadership(engine, leader_lock_key(service), f"outbox relay of {service}")
        self._looping = False
        self._backoff = poll_seconds
        self._next_gauges = 0.0

    def notify(self) -> None:
        """Called after a commit that recorded events: publish now rather than at the next poll."""
        self._wake.set()

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """Where the relay's statements run. The elected relay on PostgreSQL: its lock connection, in
        autocommit (shared/leadership.py) — one round trip a statement, no pool checkout, no isolation
        reset at check-in, and each success proves the lead still held. Otherwise (SQLite, or a relay
        run without an election, as in tests): a connection of the pool, one transaction."""
        lock = self.leadership.connection
        if lock is not None:
            yield lock
            lock.commit()  # ends SQLAlchemy's bookkeeping transaction; autocommit sends nothing
            return
        with self._statements.begin() as connection:
            yield connection

    def _pending_rows(self) -> list[sa.Row]:
        rows, self._prefetched = self._prefetched, None
        if rows is not None:
            return rows
        with self._connection() as connection:
            return connection.execute(self._select, {"limit": self.batch_size}).all()

    def _mark_published(self, published: list[int], unroutable: list[int], then_read: bool = False) -> None:
        """Mark the confirmed rows (and flag the unroutable ones) in one statement. ``then_read`` (the
        batch was full, so the next round starts at once): on PostgreSQL the same statement reads the
        next batch, which the next :meth:`_pending_rows` takes — one round trip a round under a backlog."""
        if not published:
            return
        now = datetime.now(UTC)
        if self.engine.dialect.name == "postgresql":
            values = {"now": now, "published": published, "unroutable": unroutable}
            with self._connection() as connection:
                if then_read:
                    self._prefetched = connection.execute(
                        self._mark_then_select, {**values, "limit": self.batch_size}
                    ).all()
                else:
                    connection.execute(self._mark, values)
            return
        t = self.table
        with self._connection() as connection:
            connection.execute(t.update().where(t.c.id.in_(published)).values(published_at=now))
            if unroutable:
                connection.execute(t.update().where(t.c.id.in_(unroutable)).values(unroutable=True))

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were confirmed (0 when there was nothing)."""
        rows = self._pending_rows()
        if not rows:
            return 0
        messages = [
            Outgoing(
                message_id=row.event_id,
                event_type=row.event_type,
                routing_key=row.routing_key,
                body=row.body.encode("utf-8"),
                cc=tuple(row.cc or ()),
            )
            for row in rows
        ]
        outcomes = self.publisher.publish(messages)
        crash_point("relay.after_confirm")
        published: list[int] = []
        unroutable: list[int] = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if not outcome.confirmed:
                break  # keep order: everything after a nack is published again
            published.append(row.id)
            metrics.EVENTS_PUBLISHED.labels(self.service, row.event_type).inc()
            if outcome.unroutable:
                unroutable.append(row.id)
                metrics.EVENTS_UNROUTABLE.labels(self.service).inc()
        self._mark_published(published, unroutable, len(published) == self.batch_size)
        return len(published)

    def update_gauges(self) -> None:
        t = self.table
        with self._connection() as connection:
            count, oldest = connection.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(t.c.published_at.is_(None))
            ).one()
        metrics.OUTBOX_PENDING.labels(self.service).set(count)
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - oldest).total_seconds()
        else:
            age = 0.0
        metrics.OUTBOX_OLDEST_PENDING.labels(self.service).set(max(age, 0.0))

    def _acquire_leadership(self) -> bool:
        """One relay per database: on PostgreSQL an advisory lock elects it among replicas
        (shared/leadership.py). Each round's statements run on the lock connection, so each success
        re-proves the lead; a failure stands the relay down (the loop's database-error path)."""
        return self.leadership.hold(works_on_lock=True)

    def run(self) -> None:
        """The relay loop; returns when :meth:`stop` is called."""
        self._running = self._looping = True
        try:
            self._loop()
        finally:
            # Only this thread uses the lock connection: closing it under a query would hang.
            self._looping = False
            self._release_lock()

    def _loop(self) -> None:
        while self._running:
            try:
                if not self._acquire_leadership():
                    self._drop_gauges()
                    self._wait(5 * self.poll_seconds)
                    continue
                sent = self.relay_once()
                if time.monotonic() >= self._next_gauges:
                    # Two aggregate queries: at most once a second, however busy the relay is.
                    self.update_gauges()
                    self._next_gauges = time.monotonic() + 1.0
                self._backoff = self.poll_seconds
                if sent < self.batch_size:
                    idle_from = time.monotonic()
                    self._wait(self.poll_seconds)
                    self._linger(time.monotonic() - idle_from)
            except BrokerUnavailable as exc:
                log.warning(
                    "outbox relay of %s: broker unavailable (%s); retrying in %.1fs",
                    self.service,
                    exc,
                    self._backoff,
                )
                self._safe_gauges()
                self._wait(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)
            except Exception as exc:
                # A database error, or any failure of the infrastructure (shared/transient.py): this
                # thread runs for the life of the service, and nameko stops the whole service when a
                # managed thread ends with an error. Only a bug (anything else) is let through.
                if not (isinstance(exc, sa.exc.SQLAlchemyError) or is_transient(exc)):
                    raise
                log.error("outbox relay of %s: database error (%s)", self.service, describe(exc))
                self._release_lock()
                self._wait(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)

    def _drop_gauges(self) -> None:
        """A replica that does not relay exports no outbox gauges: the leader's are the database's, and
        a stood-down replica's last values would stay behind (summed twice, or an old age alerting)."""
        for gauge in (metrics.OUTBOX_PENDING, metrics.OUTBOX_OLDEST_PENDING):
            gauge.remove(self.service)

    def _safe_gauges(self) -> None:
        try:
            self.update_gauges()
        except sa.exc.SQLAlchemyError:
            log.exception("cannot read outbox gauges")

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        self._wake.wait(seconds)
        self._wake.clear()

    def _linger(self, idle: float) -> None:
        """Woken by a commit less than ``linger_seconds`` after the last round (the service is busy):
        wait that long, so the commits right behind it go out in the same batch — a round costs the
        same database and broker round trips for one event as for hundreds. On a quiet service an
        event goes out at once."""
        if idle < self.linger_seconds and self._running:
            (self._sleep or time.sleep)(self.linger_seconds)

    def _release_lock(self) -> None:
        self._prefetched = None  # read on the lock connection: whoever leads next reads again
        self.leadership.release()

    def stop(self) -> None:
        self._running = False
        self._wake.set()
        self.publisher.close()
        if not self._looping:
            self._release_lock()
