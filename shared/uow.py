"""The unit of work: one database transaction, and the events of every aggregate it has seen.

A service's repository is a :class:`TrackingRepository`: it registers with the transaction, remembers
every aggregate it loads or adds, and at commit stores what they still hold and turns their pending
domain events into envelopes, numbered per dossier, in the outbox of the same transaction. There is no
other way to publish, so no code path can forget an event::

    with self.uow.transaction() as tx:
        dossiers = Dossiers(tx, units, actor)  # a TrackingRepository: registers with tx
        dossier = dossiers.get(code)           # seen
        dossier.receive(...)                   # the aggregate records a domain event
                                               # commit: the event is in the outbox

and a consumer::

    with self.uow.transaction() as tx:
        if not tx.first_delivery(event, "metrics.dossier-events"):
            return False                    # a redelivery: change nothing
        ...

After the commit the outbox relay is woken; if the commit fails, neither the change nor its events
exist. The relay runs inside the service process as a managed thread of this dependency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session, sessionmaker

from shared import config as settings
from shared import deferred, tracing
from shared.bulk import execute_rows, insert_rows
from shared.db import PipelineTables, UTCDateTime, create_engine
from shared.domain import Aggregate, DomainEvent
from shared.events import Event, build_event
from shared.failpoints import crash_point
from shared.outbox import OutboxRelay
from shared.outbox import insert as outbox_insert
from shared.outbox import rows as outbox_rows
from shared.transient import DatabaseUnavailable, describe, is_transient
from shared.units import UnitRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredResponse:
    """The answer to a write, kept with its ``Idempotency-Key`` so that a retry gets it again."""

    method: str
    path: str
    request_hash: str
    status: int
    headers: dict[str, Any]
    body: str  # JSON


@cache
def _claim_statement(inbox: str) -> sa.TextClause:
    # Plain SQL, the same on SQLite and PostgreSQL, and cacheable (the dialect upserts are not).
    return sa.text(
        f"INSERT INTO {inbox} (consumer, event_id, event_type, received_at) "
        "VALUES (:consumer, :event_id, :event_type, :received_at) ON CONFLICT DO NOTHING"
    ).bindparams(sa.bindparam("received_at", type_=UTCDateTime()))


def claim_first_deliveries(session: Session, inbox: sa.Table, events: list[Event], consumer: str) -> set[str]:
    """The inbox for a batch: the ids of ``events`` that ``consumer`` sees for the first time.

    One insert for the batch, its rows in one parameter (shared/bulk.py); a batch consumer uses it where
    :meth:`Transaction.first_delivery` would cost a round trip per event.
    """
    now = datetime.now(UTC)
    # In event id order: two batches claiming the same ids at once (a redelivery while the first is
    # still in flight) then wait on each other in one order, never in a deadlock.
    rows = {
        e.id: {"consumer": consumer, "event_id": e.id, "event_type": e.type, "received_at": now}
        for e in sorted(events, key=lambda e: e.id)
    }
    claim = insert_rows(session, inbox, _INBOX_COLUMNS).on_conflict_do_nothing().returning(inbox.c.event_id)
    return {event_id for (event_id,) in execute_rows(session, claim, _INBOX_COLUMNS, rows.values())}


_INBOX_COLUMNS = ("consumer", "event_id", "event_type", "received_at")


class Transaction:
    """What a handler gets inside ``with uow.transaction()``."""

    def __init__(self, session: Session, tables: PipelineTables) -> None:
        self.session = session
        self.tables = tables
        self._collectors: list[Callable[[], Iterable[Event]]] = []

    def collect_from(self, collector: Callable[[], Iterable[Event]]) -> None:
        """Register a repository's collector (:class:`TrackingRepository` does it): at commit it stores
        what its aggregates still hold and returns their domain events as envelopes, in order."""
        self._collectors.append(collector)

    def collect_events(self) -> list[Event]:
        """Everything this transaction publishes: called once, just before the commit."""
        return [event for collector in self._collectors for event in collector()]

    def recall(self, principal: str, key: str) -> StoredResponse | None:
        """The response stored for ``principal``'s ``Idempotency-Key``, if any."""
        table = self.tables.idempotency_keys
        row = self.session.execute(
            sa.select(table).where(table.c.principal == principal, table.c.key == key)
        ).first()
        if row is None:
            return None
        return StoredResponse(
            row.method, row.path, row.request_hash, row.status, dict(row.headers or {}), row.body
        )

    def remember(self, principal: str, key: str, response: StoredResponse) -> None:
        """Store the response to ``principal``'s ``Idempotency-Key`` with the change it made."""
        self.session.execute(
            self.tables.idempotency_keys.insert().values(
                principal=principal,
                key=key,
                method=response.method,
                path=response.path,
                request_hash=response.request_hash,
                status=response.status,
                headers=response.headers,
                body=response.body,
                created_at=datetime.now(UTC),
            )
        )

    def first_delivery(self, event: Event, consumer: str) -> bool:
        """Claim an event id for a consumer; False when it was already handled (a redelivery)."""
        result = self.session.execute(
            _claim_statement(self.tables.inbox.name),
            {
                "consumer": consumer,
                "event_id": event.id,
                "event_type": event.type,
                "received_at": datetime.now(UTC),
            },
        )
        return result.rowcount == 1


A = TypeVar("A", bound=Aggregate)

# Plain SQL, valid on SQLite (3.35+) and PostgreSQL: the dialect upsert constructs are not cacheable.
_RESERVE_SEQUENCES = (
    "INSERT INTO {table} (subject, last) VALUES (:subject, :count) "
    "ON CONFLICT (subject) DO UPDATE SET last = {table}.last + :count RETURNING last"
)


def reserve_sequences(session: Session, table: sa.Table, subject: str, count: int) -> int:
    """Reserve ``count`` numbers of a dossier's events in a per-source counter table ``(subject,
    last)``; returns the first. The row stays locked until the commit, so numbers follow commit order."""
    statement = sa.text(_RESERVE_SEQUENCES.format(table=table.name))
    last = session.execute(statement, {"subject": subject, "count": count}).scalar_one()
    return last - count + 1


class TrackingRepository(Generic[A]):
    """The base of every service's repository: the aggregates of one unit of work, and their events.

    A subclass loads and adds its aggregates and passes each through :meth:`track`; at commit the
    transaction calls :meth:`_collect`, which for each tracked aggregate, in the order first seen,
    takes its pending events, numbers them (:meth:`first_sequence`), builds their envelopes
    (:meth:`envelope`) and then stores the aggregate (:meth:`store`). A use case never publishes:
    it calls the aggregate's methods, and whatever they recorded is published with the commit.

    ``sequences``: the service's per-dossier counter table (``subject``, ``last``), for a service
    whose events about one dossier come from several aggregates; None when each aggregate counts its
    own events (``Aggregate.event_sequence``, stored with it) and is the only one of its dossier.
    """

    sequences: ClassVar[sa.Table | None] = None

    def __init__(self, tx: Transaction, units: UnitRegistry) -> None:
        self.tx = tx
        self.session = tx.session
        self.units = units
        self.seen: dict[Hashable, A] = {}
        tx.collect_from(self._collect)

    def identity(self, aggregate: A) -> Hashable:
        """What tells two aggregates apart in this repository (their subject, unless overridden)."""
        return aggregate.subject

    def track(self, aggregate: A) -> A:
        """Remember an aggregate loaded or added: one object per identity, published at commit."""
        return self.seen.setdefault(self.identity(aggregate), aggregate)

    def store(self, aggregate: A) -> None:
        """Write what the aggregate changed (called at commit, after its events are taken)."""

    def first_sequence(self, aggregate: A, count: int) -> int:
        """The ``sequence`` of the first of ``count`` pending events of ``aggregate``."""
        if self.sequences is None:
            return aggregate.event_sequence - count + 1
        return reserve_sequences(self.session, self.sequences, aggregate.subject, count)

    def envelope(self, aggregate: A, event: DomainEvent, sequence: int) -> Event:
        """One pending event as published; a subclass may add to its data or its routing."""
        unit, handling = aggregate.routing_units
        return build_event(
            event.source,
            event.name,
            subject=aggregate.subject,
            data=event.data,
            unit_path=self.units.routing_path(unit),
            handling_unit_path=None if handling is None else self.units.routing_path(handling),
            sequence=sequence,
        )

    def _collect(self) -> list[Event]:
        published: list[Event] = []
        for aggregate in self.seen.values():
            pending = aggregate.take_events()
            if pending:
                first = self.first_sequence(aggregate, len(pending))
                published.extend(
                    self.envelope(aggregate, event, first + offset) for offset, event in enumerate(pending)
                )
            self.store(aggregate)
        return published


class DatabaseHealth:
    """What the service last learnt of its database, so requests fail fast while it is down.

    After a transient failure, transactions for the next ``probe_seconds`` raise
    :class:`DatabaseUnavailable` at once (an HTTP 503) instead of each waiting on a dead connection;
    then one is let through to try, and the first success closes the outage.
    """

    def __init__(self, probe_seconds: float = 1.0) -> None:
        self.probe_seconds = probe_seconds
        self.down_since: datetime | None = None
        self.reason = ""
        self._next_try = 0.0

    def check(self) -> None:
        if self.down_since is not None and time.monotonic() < self._next_try:
            raise DatabaseUnavailable(
                f"database unavailable since {self.down_since:%H:%M:%S} UTC ({self.reason})"
            )
        self._next_try = time.monotonic() + self.probe_seconds  # one try per interval while down

    def failed(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
            log.error("database unavailable: %s", describe(exc))
        self.reason = describe(exc)
        self._next_try = time.monotonic() + self.probe_seconds

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.warning("database back after %s", datetime.now(UTC) - self.down_since)
            self.down_since = None


class UnitOfWorkFactory:
    """Opens transactions on a service's database; shared by its workers."""

    def __init__(
        self,
        engine: sa.Engine,
        tables: PipelineTables,
        relay: OutboxRelay | None,
        amqp_uri: str,
        *,
        integer_sequence: bool = False,
    ) -> None:
        self.engine = engine
        self.integer_sequence = integer_sequence
        self.amqp_uri = amqp_uri
        self.tables = tables
        self.relay = relay
        self.health = DatabaseHealth()
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        deferred.install(engine)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction; raises DatabaseUnavailable at once while the database is known down."""
        self.health.check()
        session = self._sessions()
        tx = Transaction(session, self.tables)
        try:
            with session.begin():
                yield tx
                events = tx.collect_events()
                if events:
                    deferred.write(
                        session, outbox_insert(self.tables.outbox), outbox_rows(self._as_sent(events))
                    )
                # The transaction's deferred writes and its events: one round trip on PostgreSQL.
                deferred.flush(session)
        except Exception as exc:
            if is_transient(exc):
                self.health.failed(exc)
            raise
        else:
            self.health.succeeded()
            crash_point("uow.after_commit")
        finally:
            session.close()
        if events and self.relay is not None:
            self.relay.notify()

    def _as_sent(self, events: list[Event]) -> list[Event]:
        """The events as the outbox keeps them: in the trace they were made in (the request's or the
        event's being handled), and with ``sequence`` in the form this service sends."""
        carrier = tracing.current()
        traceparent, tracestate = carrier.get("traceparent"), carrier.get("tracestate")
        if traceparent is None and not self.integer_sequence:
            return events
        return [
            replace(
                event,
                traceparent=event.traceparent or traceparent,
                tracestate=event.tracestate or tracestate,
                integer_sequence=self.integer_sequence,
            )
            for event in events
        ]


class UnitOfWork(DependencyProvider):
    """nameko dependency: a service's database, unit of work and outbox relay.

    Validates the common settings at start, so a wrong setting stops the service with its name.
    """

    def __init__(self, tables: PipelineTables, *, relay: bool = True) -> None:
        self.tables = tables
        self.with_relay = relay
        self.factory: UnitOfWorkFactory | None = None
        self.relay: OutboxRelay | None = None

    def setup(self) -> None:
        conf = settings.validate(self.container.config)
        engine = create_engine(conf["DATABASE_URL"], timeout=conf["DATABASE_TIMEOUT_SECONDS"])
        if self.with_relay:
            self.relay = OutboxRelay(
                engine,
                self.tables.outbox,
                conf["AMQP_URI"],
                service=self.container.service_name,
                batch_size=conf["OUTBOX_BATCH_SIZE"],
                poll_seconds=conf["OUTBOX_POLL_SECONDS"],
            )
        self.factory = UnitOfWorkFactory(
            engine,
            self.tables,
            self.relay,
            conf["AMQP_URI"],
            integer_sequence=conf["EVENT_SEQUENCE_FORMAT"] == "integer",
        )

    def start(self) -> None:
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        if self.factory is not None:
            self.factory.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> UnitOfWorkFactory:
        return self.factory
