"""The projection's SQL: folding consumed events in, the queries behind /metrics and the report,
ratings, and the bulk path used by the rebuild.

Events are written in batches, one transaction each (:func:`project_batch`): the consumer's inbox
claims, the event log, the facts and the totals cost a handful of statements per batch rather than
per event.

Ordering (out-of-order arrival): every event goes into the event log. An event whose sequence follows
the dossier's ``last_sequence`` is folded in at once, together with any logged events that were waiting
for it; one that arrives early is logged with ``waiting`` set and folded in when the gap closes. So the
facts of a dossier are always those of a gap-free prefix of its history, never a mix.
Per-dossier exclusion: SQLite transactions are serial (``BEGIN IMMEDIATE``); on PostgreSQL
transaction-scoped advisory locks on the dossier codes (taken in code order) serialise two batches
touching one dossier, so neither can miss the other's log rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.metrics.models import IN_PROCESS_PREDICATE, dossier_facts, event_log, pipeline, ratings, totals
from services.metrics.projection import (
    TOTAL_COLUMNS,
    TOTALS_ROW,
    DossierFacts,
    Period,
    StreamEvent,
    Tally,
    contribution,
    counter_delta,
    counter_key,
    fold,
)
from shared.bulk import execute_rows, insert_rows
from shared.db import UTCDateTime
from shared.events import Event
from shared.uow import claim_first_deliveries
from shared.verification import EventRejected
from shared.vocabulary import IN_PROCESS, Channel, OnlineLevel, Rating, ReturnMethod, Status, Timeliness

log = logging.getLogger(__name__)

_FACT_COLUMNS = tuple(column.name for column in dossier_facts.columns if column.name != "code")
_FACTS_INSERTED = ("code", *_FACT_COLUMNS)
_TOTALS_INSERTED = ("unit", "procedure_field", "channel", *TOTAL_COLUMNS)
_LOG_INSERTED = tuple(column.name for column in event_log.columns)
_log_key = sa.tuple_(event_log.c.subject, event_log.c.sequence)
_REPLAYED = tuple(event_log.c[name] for name in ("subject", "name", "sequence", "time", "data"))


def _insert(connection: Connection | Session, table: sa.Table):
    dialect = (
        connection.get_bind().dialect.name if isinstance(connection, Session) else connection.dialect.name
    )
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _lock_dossiers(session: Session, codes: list[str]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(code, 0))) "
                "FROM unnest(CAST(:codes AS text[])) AS code"
            ),
            {"codes": sorted(codes)},
        )


def load_facts(session: Session | Connection, code: str) -> DossierFacts | None:
    row = session.execute(sa.select(dossier_facts).where(dossier_facts.c.code == code)).mappings().first()
    return None if row is None else DossierFacts(**row)


def _add_to_totals_rows(
    session: Session | Connection, deltas: dict[tuple[str, str, int], dict[str, int]]
) -> None:
    """Add each delta to its totals row, creating rows on first use: one upsert for them all."""
    rows = []
    for (unit, field, channel), delta in sorted(deltas.items()):
        if any(delta.values()):
            row = {"unit": unit, "procedure_field": field, "channel": channel}
            row.update(dict.fromkeys(TOTAL_COLUMNS, 0))
            row.update(delta)
            rows.append(row)
    if not rows:
        return
    statement = insert_rows(session, totals, _TOTALS_INSERTED)
    statement = statement.on_conflict_do_update(
        index_elements=["unit", "procedure_field", "channel"],
        set_={column: totals.c[column] + statement.excluded[column] for column in TOTAL_COLUMNS},
    )
    execute_rows(session, statement, _TOTALS_INSERTED, rows)


def _add_to_totals(session: Session | Connection, key: tuple[str, str, int], delta: dict[str, int]) -> None:
    _add_to_totals_rows(session, {key: delta})


def _stream_event(row: Any) -> StreamEvent:
    return StreamEvent(name=row.name, sequence=row.sequence, time=row.time, data=row.data)


def project_batch(session: Session, events: list[Event], timezone: tzinfo, consumer: str) -> list[bool]:
    """Claim, log and fold a batch of consumed dossier events in the caller's transaction.

    One answer per event: True if it was new (folded in, or logged to wait for an earlier one), False
    for a redelivery or for an event whose dossier sequence number another event already holds.
    """
    first_time = claim_first_deliveries(session, pipeline.inbox, events, consumer) if events else set()
    fresh: dict[str, list[Event]] = defaultdict(list)
    answered: set[str] = set()
    for event in events:
        if event.id in first_time and event.id not in answered:
            fresh[event.subject].append(event)
            answered.add(event.id)
    accepted: set[str] = set()
    if fresh:
        accepted = _fold_in(session, fresh, timezone)
    answers, reported = [], set()
    for event in events:
        answers.append(event.id in accepted and event.id not in reported)
        reported.add(event.id)
    return answers


def _fold_in(session: Session, fresh: dict[str, list[Event]], timezone: tzinfo) -> set[str]:
    codes = sorted(fresh)
    _lock_dossiers(session, codes)
    before = {
        row["code"]: DossierFacts(**row)
        for row in session.execute(sa.select(dossier_facts).where(dossier_facts.c.code.in_(codes))).mappings()
    }
    held: dict[str, dict[int, Any]] = defaultdict(dict)
    for row in session.execute(
        sa.select(*_REPLAYED, event_log.c.event_id).where(event_log.c.subject.in_(codes), event_log.c.waiting)
    ):
        held[row.subject][row.sequence] = row
    _refuse_taken_sequences(session, fresh, before, held)
    now = datetime.now(UTC)
    accepted: set[str] = set()
    log_rows: list[dict[str, Any]] = []
    released: list[tuple[str, int]] = []
    facts_rows: list[dict[str, Any]] = []
    deltas: dict[tuple[str, str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for code in codes:
        facts = before.get(code)
        last = facts.last_sequence if facts else 0
        waiting = held[code]
        arrived: dict[int, Event] = {}
        for event in fresh[code]:
            if event.sequence <= last or event.sequence in waiting or event.sequence in arrived:
                # Logged under this same id (its inbox row pruned since): a redelivery, nothing to do.
                log.info("ignoring event %s: %s #%d is already logged", event.id, code, event.sequence)
                continue
            arrived[event.sequence] = event
        chain: list[StreamEvent] = []
        while (following := last + len(chain) + 1) in waiting or following in arrived:
            if following in waiting:
                chain.append(_stream_event(waiting[following]))
                released.append((code, following))
            else:
                event = arrived[following]
                chain.append(StreamEvent(event.name, event.sequence, event.time, event.data))
        folded_to = last + len(chain)
        for sequence, event in arrived.items():
            accepted.add(event.id)
            log_rows.append(
                {
                    "event_id": event.id,
                    "subject": code,
                    "sequence": sequence,
                    "name": event.name,
                    "time": event.time,
                    "unit_path": event.unit_path,
                    "handling_unit_path": event.handling_unit_path,
                    "data": dict(event.data),
                    "waiting": sequence > folded_to,
                    "logged_at": now,
                }
            )
            if sequence > folded_to:
                log.info("holding %s #%d until #%d arrives", code, sequence, folded_to + 1)
        if chain:
            after = fold(facts, chain, timezone)
            facts_rows.append(after.as_row())
            for column, change in counter_delta(facts, after).items():
                deltas[counter_key(after)][column] += change
    # One statement per table for the whole batch, its rows in one JSON parameter (shared/bulk.py).
    if log_rows:
        append = insert_rows(session, event_log, _LOG_INSERTED).on_conflict_do_nothing()
        appended = execute_rows(session, append.returning(event_log.c.sequence), _LOG_INSERTED, log_rows)
        if len(appended) != len(log_rows):
            raise RuntimeError("event log rows appeared under the dossier lock; the batch is retried")
    if facts_rows:
        statement = insert_rows(session, dossier_facts, _FACTS_INSERTED)
        statement = statement.on_conflict_do_update(
            index_elements=["code"], set_={column: statement.excluded[column] for column in _FACT_COLUMNS}
        )
        execute_rows(session, statement, _FACTS_INSERTED, facts_rows)
    _add_to_totals_rows(session, deltas)
    if released:
        session.execute(event_log.update().where(_log_key.in_(released)).values(waiting=False))
    return accepted


def _refuse_taken_sequences(
    session: Session, fresh: dict[str, list[Event]], before: dict[str, DossierFacts], held: dict
) -> None:
    """Raise EventRejected for an event whose ``(subject, sequence)`` another event id already holds.

    The first event to claim a dossier's sequence number stands; a second one under another id is a
    forgery or a producer's bug, and is dead-lettered with this reason rather than acked as a duplicate.
    """
    holders: dict[tuple[str, int], str] = {}
    folded = [
        (code, event.sequence)
        for code, events in fresh.items()
        for event in events
        if before.get(code) is not None and event.sequence <= before[code].last_sequence
    ]
    if folded:
        holders.update(
            ((row.subject, row.sequence), row.event_id)
            for row in session.execute(
                sa.select(event_log.c.subject, event_log.c.sequence, event_log.c.event_id).where(
                    _log_key.in_(folded)
                )
            )
        )
    for code, rows in held.items():
        holders.update(((code, sequence), row.event_id) for sequence, row in rows.items())
    for code, events in fresh.items():
        for event in events:
            holder = holders.setdefault((code, event.sequence), event.id)
            if holder != event.id:
                raise EventRejected(
                    f"dossier {code} sequence {event.sequence} is already held by event {holder}; "
                    f"event {event.id} ({event.type}) is not applied"
                )


# -- ratings -----------------------------------------------------------------------------------------


def add_rating(session: Session, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool:
    """Record a dossier's one rating and count it; False if it already has one."""
    inserted = session.execute(
        _insert(session, ratings)
        .values(
            dossier_code=facts.code,
            unit=facts.receiving_unit,
            rating=rating,
            rated_at=rated_at,
            rated_by=rated_by,
        )
        .on_conflict_do_nothing()
    )
    if inserted.rowcount != 1:
        return False
    _add_to_totals(session, counter_key(facts), {f"rated_{rating}": 1})
    return True


# -- what /metrics reads -------------------------------------------------------------------------------


def totals_rows(connection: Connection) -> list[tuple]:
    """Every totals row as a plain tuple laid out as ``projection.TOTALS_ROW``."""
    return [tuple(row) for row in connection.execute(sa.select(*(totals.c[name] for name in TOTALS_ROW)))]


def _now(now: datetime):
    return sa.bindparam("now", now, type_=UTCDateTime)


def _overdue(now: datetime):
    facts = dossier_facts.c
    return sa.and_(
        facts.status.in_(sorted(int(s) for s in IN_PROCESS)),
        facts.original_due_at.is_not(None),
        facts.original_due_at < sa.func.coalesce(facts.clock_stopped_at, _now(now)),
    )


def backlog_rows(connection: Connection, now: datetime, due_soon: timedelta) -> list[Any]:
    """Per receiving unit and field: dossiers in process, overdue now, and due within ``due_soon``."""
    facts = dossier_facts.c
    # Within dossiers in process, so only indexed columns are read (the twin of DossierFacts.is_overdue).
    # Judged against the original appointment: an apology's new one does not make a dossier timely.
    overdue = facts.original_due_at < sa.func.coalesce(facts.clock_stopped_at, _now(now))
    soon = sa.and_(
        facts.clock_stopped_at.is_(None),
        facts.original_due_at >= _now(now),
        facts.original_due_at < sa.bindparam("soon", now + due_soon, type_=UTCDateTime),
    )
    return connection.execute(
        sa.select(
            facts.receiving_unit,
            facts.procedure_field,
            sa.func.count().label("in_process"),
            sa.func.sum(sa.case((overdue, 1), else_=0)).label("overdue"),
            sa.func.sum(sa.case((soon, 1), else_=0)).label("due_soon"),
        )
        .where(sa.text(IN_PROCESS_PREDICATE))
        .group_by(facts.receiving_unit, facts.procedure_field)
    ).all()


def waiting_count(connection: Connection) -> int:
    return connection.execute(sa.select(sa.func.count()).where(event_log.c.waiting)).scalar_one()


# -- the report ------------------------------------------------------------------------------------------

GROUP_COLUMNS = {
    "unit": dossier_facts.c.receiving_unit,
    "level": dossier_facts.c.receiving_unit,
    "procedure": dossier_facts.c.procedure_code,
    "field": dossier_facts.c.procedure_field,
    "month": dossier_facts.c.received_on,
}


def report_tallies(
    session: Session | Connection, units: Iterable[str] | None, period: Period, now: datetime, group_by: str
) -> list[tuple[Any, Tally]]:
    """One tally per value of the grouping column, over dossiers received in ``period`` by ``units``
    (None: every unit, for the scorecard gauges).

    The SQL twin of :meth:`projection.Tally.count`; the oracle test holds them to the same answers.
    """
    facts = dossier_facts.c
    column = GROUP_COLUMNS[group_by]
    resolved = facts.resolved_at.is_not(None)
    unresolved = sa.and_(facts.resolved_at.is_(None), facts.status != int(Status.WITHDRAWN))
    online = facts.channel == int(Channel.ONLINE)

    def count(condition) -> sa.ColumnElement:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    query = (
        sa.select(
            column.label("value"),
            sa.func.count().label("received"),
            count(sa.and_(resolved, facts.timeliness == Timeliness.EARLY.value)).label("decided_early"),
            count(
                sa.and_(
                    resolved, sa.or_(facts.timeliness == Timeliness.ON_TIME.value, facts.timeliness.is_(None))
                )
            ).label("decided_on_time"),
            count(sa.and_(resolved, facts.timeliness == Timeliness.LATE.value)).label("decided_late"),
            count(sa.and_(facts.resolved_at.is_(None), facts.status == int(Status.WITHDRAWN))).label(
                "withdrawn"
            ),
            count(sa.and_(unresolved, _overdue(now))).label("in_process_overdue"),
            count(facts.supplements > 0).label("supplemented"),
            count(facts.channel == int(Channel.ONLINE)).label("received_online"),
            count(facts.channel == int(Channel.POSTAL)).label("received_postal"),
            count(facts.returned_at.is_not(None)).label("returned"),
            count(
                sa.and_(facts.returned_at.is_not(None), facts.returned_by == ReturnMethod.POSTAL.label)
            ).label("returned_postal"),
            count(ratings.c.rating.is_not(None)).label("rated"),
            count(ratings.c.rating == Rating.NOT_SATISFIED.value).label("rated_not_satisfied"),
            count(sa.and_(online, facts.online_level == OnlineLevel.FULL.value)).label(
                "received_fully_online"
            ),
            count(sa.and_(online, facts.online_level == OnlineLevel.PARTIAL.value)).label(
                "received_partly_online"
            ),
            count(facts.vneid_verified).label("vneid_verified"),
            count(facts.components_digitised + facts.components_reused + facts.components_national > 0).label(
                "digitised"
            ),
            count(facts.components_reused + facts.components_national > 0).label("reused_data"),
            count(facts.paid).label("paid"),
            count(sa.and_(facts.paid, facts.paid_online)).label("paid_online"),
            count(sa.and_(resolved, facts.result_digital)).label("result_digital"),
            count(sa.and_(resolved, facts.returned_at.is_(None))).label("uncollected"),
        )
        .select_from(dossier_facts.outerjoin(ratings, ratings.c.dossier_code == facts.code))
        .where(
            facts.received_at.is_not(None),
            facts.received_on >= period.first,
            facts.received_on <= period.last,
        )
        .group_by(column)
    )
    if units is not None:
        query = query.where(facts.receiving_unit.in_(sorted(units)))
    tallies = []
    for row in session.execute(query).mappings():
        counts = {key: int(value) for key, value in row.items() if key != "value"}
        # Every received dossier stands in exactly one bucket; "within deadline" is what is left.
        counts["in_process_within_deadline"] = counts["received"] - sum(
            counts[key]
            for key in ("decided_early", "decided_on_time", "decided_late", "withdrawn", "in_process_overdue")
        )
        tallies.append((row["value"], Tally(**counts)))
    return tallies


# -- bulk: the rebuild and synthetic loads -----------------------------------------------------------------


def bulk_insert_facts(connection: Connection, facts: Iterable[DossierFacts], *, chunk: int = 5000) -> int:
    """Insert facts and add what they count to the totals, in chunks; returns how many.

    For an empty projection (the rebuild, synthetic loads): totals are summed in memory and written
    once per row.
    """
    sums: dict[tuple[str, str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    batch: list[dict[str, Any]] = []
    count = 0
    for item in facts:
        count += 1
        batch.append(item.as_row())
        for column, value in contribution(item).items():
            if value:
                sums[counter_key(item)][column] += value
        if len(batch) >= chunk:
            connection.execute(dossier_facts.insert(), batch)
            batch = []
    if batch:
        connection.execute(dossier_facts.insert(), batch)
    _add_to_totals_rows(connection, sums)
    return count


def _replay(
    connection: Connection, timezone: tzinfo, held_back: list[tuple[str, int]]
) -> Iterator[DossierFacts]:
    """Fold the event log, dossier by dossier in sequence order, up to each dossier's first gap.

    The keys of the events beyond a gap are appended to ``held_back``.
    """
    rows = connection.execute(
        sa.select(*_REPLAYED)
        .order_by(event_log.c.subject, event_log.c.sequence)
        .execution_options(yield_per=10_000)
    )
    subject, facts, broken = None, None, False
    for row in rows:
        if row.subject != subject:
            if facts is not None:
                yield facts
            subject, facts, broken = row.subject, None, False
        if broken or row.sequence != (facts.last_sequence if facts else 0) + 1:
            broken = True
            held_back.append((row.subject, row.sequence))
            continue
        facts = fold(facts, [_stream_event(row)], timezone)
    if facts is not None:
        yield facts


def rebuild(connection: Connection, timezone: tzinfo) -> int:
    """Empty the projection and replay the event log into it; ratings are kept and recounted.

    Run it with the service stopped: it rewrites every row the consumer writes. Returns the number
    of dossiers projected.
    """
    connection.execute(totals.delete())
    connection.execute(dossier_facts.delete())
    held_back: list[tuple[str, int]] = []
    count = bulk_insert_facts(connection, _replay(connection, timezone, held_back))
    connection.execute(event_log.update().where(event_log.c.waiting).values(waiting=False))
    for start in range(0, len(held_back), 5000):
        chunk = held_back[start : start + 5000]
        connection.execute(event_log.update().where(_log_key.in_(chunk)).values(waiting=True))
    rated = connection.execute(
        sa.select(
            dossier_facts.c.receiving_unit,
            dossier_facts.c.procedure_field,
            dossier_facts.c.channel,
            ratings.c.rating,
            sa.func.count(),
        )
        .select_from(ratings.join(dossier_facts, dossier_facts.c.code == ratings.c.dossier_code))
        .group_by(
            dossier_facts.c.receiving_unit,
            dossier_facts.c.procedure_field,
            dossier_facts.c.channel,
            ratings.c.rating,
        )
    ).all()
    recounted: dict[tuple[str, str, int], dict[str, int]] = defaultdict(dict)
    for unit, field, channel, rating, n in rated:
        recounted[unit, field, channel][f"rated_{rating}"] = n
    _add_to_totals_rows(connection, recounted)
    return count
