"""The projection and the SQL report on both databases, without the broker.

Events reach the consumer's own method (``MetricsService.project`` through nameko's worker_factory,
with the real unit of work): shuffled across and within dossiers, some delivered twice. The report
is then compared, figure by figure, with the oracle's recomputation from the ground truth; a province
with the sum of its units; and the projection with its own rebuild from the event log.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from nameko.testing.services import worker_factory

from services.metrics import repository
from services.metrics.dependencies import Projection
from services.metrics.exposition import SlaCollector, UnitLabels, families, snapshot
from services.metrics.models import event_log, pipeline, totals
from services.metrics.projection import FIGURES, GROUPINGS, Period, StreamEvent, fold
from services.metrics.rebuild import rebuild
from services.metrics.report import assemble
from services.metrics.service import QUEUE, MetricsService
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.uow import UnitOfWorkFactory
from shared.verification import EventRejected
from shared.vocabulary import RATINGS
from shared.workcalendar import WorkingCalendar
from tests.support.metrics_oracle import assert_same_figures, oracle_report
from tests.support.metrics_streams import simulate_period

pytestmark = pytest.mark.integration

VN = ZoneInfo("Asia/Ho_Chi_Minh")
REGISTRY = UnitRegistry.default()
PROVINCE = "79"
COMMUNES = [unit.code for unit in REGISTRY.children(PROVINCE)[:5]]
DAY_LENGTH = WorkingCalendar().day_length


@pytest.fixture
def metrics_db(database_url):
    upgrade("metrics", database_url)
    engine = create_engine(database_url)
    yield database_url, UnitOfWorkFactory(engine, pipeline, None, "amqp://unused")
    engine.dispose()


def consumer(uow):
    """The consumer's entrypoint method with the real projection (call it with a batch of events)."""
    projection = Projection(uow.engine, VN, QUEUE)
    return worker_factory(MetricsService, uow=uow, calendar=WorkingCalendar(), projector=projection)


def report(uow, unit, period, now, group_by) -> dict[str, dict]:
    with uow.transaction() as tx:
        rows = repository.report_tallies(tx.session, REGISTRY.descendants(unit), period, now, group_by)
    answer = assemble(
        rows, unit=unit, first=period.first, last=period.last, group_by=group_by, as_of=now, registry=REGISTRY
    ).as_dict()
    return {"total": answer["total"], **{group["key"]: group for group in answer["groups"]}}


def everything(uow, period, now) -> dict:
    """Everything the projection answers: the report in every grouping, the totals, the metrics."""
    with uow.engine.connect() as connection:
        rows = sorted(tuple(row) for row in connection.execute(sa.select(totals)))
        waiting = (
            connection.execute(sa.select(event_log.c.event_id).where(event_log.c.waiting)).scalars().all()
        )
    collector = SlaCollector(
        uow.engine, UnitLabels(REGISTRY, 2), timedelta(hours=24), DAY_LENGTH, clock=lambda: now
    )
    metrics = sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value) for f in collector.collect() for s in f.samples
    )
    reports = {g: report(uow, PROVINCE, period, now, g) for g in GROUPINGS}
    return {"totals": rows, "waiting": sorted(waiting), "metrics": metrics, "reports": reports}


def write_batches(projection, deliveries, sizes, in_flight: int) -> list[bool]:
    """The deliveries in batches of ``sizes``, as the consumer hands them over: one after another, or
    ``in_flight`` transactions at once (replicas sharing the queue, or batches overlapped), answers
    in order."""
    batches, start = [], 0
    for size in sizes:
        batches.append(deliveries[start : start + size])
        start += size
    if in_flight == 1:
        return [answer for batch in batches for answer in projection.write(batch)]
    with ThreadPoolExecutor(in_flight) as pool:
        return [answer for answers in pool.map(projection.write, batches) for answer in answers]


@pytest.mark.parametrize("in_flight", [1, 3])
def test_shuffled_redelivered_month_matches_the_oracle_and_survives_a_rebuild(metrics_db, in_flight):
    url, uow = metrics_db
    if in_flight > 1 and url.startswith("sqlite"):
        pytest.skip("one process per SQLite database: its batches run one at a time")
    now = datetime.now(UTC)
    first = (now - timedelta(days=30)).astimezone(VN).date()
    last = now.astimezone(VN).date()
    truths = simulate_period(11, REGISTRY, [PROVINCE, *COMMUNES], first - timedelta(days=5), 35, 350, now)
    rng = random.Random(11)
    deliveries = [event for truth in truths for event in truth.events]
    twice = rng.sample(deliveries, len(deliveries) // 20)  # at-least-once: some come twice
    deliveries += twice
    rng.shuffle(deliveries)  # and in any order, within a dossier too
    # Written as the projector writes them: batches of any size, a duplicate possibly in the same one
    # or in a batch in flight at the same time; a dossier's events possibly in batches in flight at once.
    projection = Projection(uow.engine, VN, QUEUE)
    sizes: list[int] = []
    while sum(sizes) < len(deliveries):
        sizes.append(rng.choice((1, 2, 7, 40, 150)))
    outcomes = write_batches(projection, deliveries, sizes, in_flight)
    assert len(outcomes) == len(deliveries)
    assert outcomes.count(False) == len(twice)

    ratings = {}
    for truth in truths:
        if truth.returned_at and rng.random() < 0.5:
            ratings[truth.code] = rng.choice(RATINGS)
            with uow.transaction() as tx:
                facts = repository.load_facts(tx.session, truth.code)
                assert repository.add_rating(tx.session, facts, ratings[truth.code], now, "tablet")

    period = Period(first, last, VN)
    for unit in (PROVINCE, COMMUNES[0]):
        for group_by in GROUPINGS:
            expected = oracle_report(truths, ratings, REGISTRY, unit, first, last, group_by, now)
            assert_same_figures(report(uow, unit, period, now, group_by), expected)

    # A province's figures are exactly the sum of its units' figures: each commune's group is that
    # commune's own report, and the province's own desk is the rest.
    by_unit = report(uow, PROVINCE, period, now, "unit")
    communes = [key for key in by_unit if key not in ("total", PROVINCE)]
    assert len(communes) == len(COMMUNES) and PROVINCE in by_unit
    own_reports = {key: report(uow, key, period, now, "unit")["total"] for key in communes}
    for key in communes:
        assert {n: own_reports[key][n] for n in FIGURES} == {n: by_unit[key][n] for n in FIGURES}
    counts = [name for name in FIGURES if isinstance(by_unit["total"][name], int)]
    for name in counts:
        summed = sum(own_reports[key][name] for key in communes) + by_unit[PROVINCE][name]
        assert by_unit["total"][name] == summed, name

    before = everything(uow, period, now)
    assert before["totals"] and before["waiting"] == []
    assert rebuild(url, VN) == len([t for t in truths if t.events])
    assert everything(uow, period, now) == before


def test_an_event_after_a_gap_waits_and_the_rebuild_keeps_it_waiting(metrics_db):
    url, uow = metrics_db
    now = datetime.now(UTC)
    first = (now - timedelta(days=20)).astimezone(VN).date()
    truth = next(
        t
        for t in simulate_period(3, REGISTRY, COMMUNES, first, 10, 40, now)
        if len(t.events) >= 4 and t.events[0].name == "received"
    )
    service = consumer(uow)
    one, two, three = truth.events[:3]
    assert service.project([one]) == [True] and service.project([three]) == [True]
    with uow.transaction() as tx:
        assert repository.load_facts(tx.session, truth.code).last_sequence == 1
    before = everything(uow, Period(first, now.astimezone(VN).date(), VN), now)
    assert before["waiting"] == [three.id]
    rebuild(url, VN)
    assert everything(uow, Period(first, now.astimezone(VN).date(), VN), now) == before
    assert service.project([two]) == [True]
    with uow.transaction() as tx:
        assert repository.load_facts(tx.session, truth.code).last_sequence == 3
    assert everything(uow, Period(first, now.astimezone(VN).date(), VN), now)["waiting"] == []


def test_a_second_event_claiming_a_taken_sequence_changes_nothing(metrics_db):
    _url, uow = metrics_db
    now = datetime.now(UTC)
    truth = simulate_period(5, REGISTRY, COMMUNES, (now - timedelta(days=10)).date(), 5, 5, now)[0]
    service = consumer(uow)
    assert service.project([truth.events[0]]) == [True]
    impostor = type(truth.events[0])(
        **{**truth.events[0].__dict__, "id": "00000000-0000-4000-8000-000000000001"}
    )
    # Refused with the reason (the consumer dead-letters it), never acked as if it were a duplicate.
    with pytest.raises(EventRejected, match=f"sequence 1 is already held by event {truth.events[0].id}"):
        service.project([impostor])
    with uow.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(event_log)).scalar_one() == 1
    assert service.project([truth.events[0]]) == [False]  # the genuine one, redelivered: a duplicate


def test_counters_come_from_the_totals_and_gauges_from_the_clock(metrics_db):
    _url, uow = metrics_db
    now = datetime.now(UTC)
    truths = simulate_period(9, REGISTRY, COMMUNES, (now - timedelta(days=40)).date(), 40, 120, now)
    service = consumer(uow)
    for truth in truths:
        service.project(list(truth.events))
    with uow.engine.connect() as connection:
        backlog = repository.backlog_rows(connection, now, timedelta(hours=24))
        table = repository.totals_rows(connection)
    labels = UnitLabels(REGISTRY, 1)
    by_name = {f.name: f for f in families(snapshot(table, backlog, 0, labels, DAY_LENGTH))}
    received = sum(s.value for s in by_name["motcua_dossiers_received"].samples)
    assert received == sum(1 for t in truths if t.first_received_at)
    in_process = sum(1 for t in truths if t.first_received_at and t.status in (2, 4, 5, 6, 8))
    assert by_name["motcua_dossiers_in_process"].samples[0].value == in_process
    # Judged against the original appointment: an apology's new one does not count (shared/timeliness.py).
    overdue = sum(
        1
        for t in truths
        if t.first_received_at
        and t.status in (2, 4, 5, 6, 8)
        and t.original_due_at < (t.clock_stopped_at or now)
    )
    assert sum(s.value for s in by_name["motcua_dossiers_overdue"].samples) == overdue
    # A week on, with no event at all, more of them are overdue.
    with uow.engine.connect() as connection:
        later = repository.backlog_rows(connection, now + timedelta(days=7), timedelta(hours=24))
    later_overdue = sum(row.overdue for row in later)
    assert later_overdue == sum(
        1
        for t in truths
        if t.first_received_at
        and t.status in (2, 4, 5, 6, 8)
        and t.original_due_at < (t.clock_stopped_at or now + timedelta(days=7))
    )
    assert later_overdue > overdue


# -- batches: what one write of several events must keep (services/metrics/repository.py) -------------


def stream(events) -> list[StreamEvent]:
    return [StreamEvent(e.name, e.sequence, e.time, e.data) for e in sorted(events, key=lambda e: e.sequence)]


def received_total(uow) -> int:
    with uow.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.coalesce(sa.func.sum(totals.c.received), 0))).scalar_one()


def table_count(uow, table) -> int:
    with uow.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def long_histories(seed: int, count: int) -> list:
    """``count`` dossiers with at least four events each, the first a receipt."""
    now = datetime.now(UTC)
    truths = simulate_period(seed, REGISTRY, COMMUNES, (now - timedelta(days=30)).date(), 25, 120, now)
    found = [t for t in truths if len(t.events) >= 4 and t.events[0].name == "received"][:count]
    assert len(found) == count
    return found


def test_a_dossiers_events_in_one_batch_are_applied_in_sequence_order_whatever_their_order(metrics_db):
    _url, uow = metrics_db
    one, two = long_histories(21, 2)
    # Both dossiers' histories in one batch: one backwards, the other in order, interleaved.
    backwards, forwards = list(reversed(one.events)), list(two.events)
    batch = [e for pair in zip(backwards, forwards, strict=False) for e in pair]
    batch += backwards[len(forwards) :] + forwards[len(backwards) :]
    projection = Projection(uow.engine, VN, QUEUE)
    assert projection.write(batch) == [True] * len(batch)
    with uow.transaction() as tx:
        for truth in (one, two):
            # The facts are those of the whole history folded in order: nothing waits, nothing is lost.
            assert repository.load_facts(tx.session, truth.code) == fold(None, stream(truth.events), VN)
    assert table_count(uow, event_log) == len(batch)
    with uow.engine.connect() as connection:
        assert repository.waiting_count(connection) == 0
    assert received_total(uow) == 2


def test_a_duplicate_counts_once_in_the_same_batch_and_in_a_later_one(metrics_db):
    _url, uow = metrics_db
    (truth,) = long_histories(22, 1)
    first, second, third, fourth = truth.events[:4]
    projection = Projection(uow.engine, VN, QUEUE)
    # In the same batch: the second copy is answered False (acked as a duplicate) and changes nothing.
    assert projection.write([first, second, first, second]) == [True, True, False, False]
    # In a later batch, beside a new event; and a redelivered event that is still waiting for its turn.
    assert projection.write([fourth]) == [True]
    assert projection.write([second, fourth, first, third, fourth]) == [False, False, False, True, False]
    with uow.transaction() as tx:
        facts = repository.load_facts(tx.session, truth.code)
    assert facts == fold(None, stream([first, second, third, fourth]), VN)
    assert received_total(uow) == 1
    assert table_count(uow, event_log) == 4
    with uow.engine.connect() as connection:
        assert repository.waiting_count(connection) == 0
        supplements = connection.execute(sa.select(sa.func.sum(totals.c.supplements))).scalar_one()
    assert supplements == facts.supplements


def test_a_bad_event_fails_its_batch_whole_so_each_event_can_be_handled_alone(metrics_db):
    """The batch consumer handles a failed batch again one event per call (shared/consumer.py): that is
    only right if the failed batch left nothing behind — no inbox claim, no log row, no count."""
    _url, uow = metrics_db
    one, two = long_histories(23, 2)
    impostor = type(one.events[0])(**{**one.events[0].__dict__, "id": "00000000-0000-4000-8000-000000000002"})
    projection = Projection(uow.engine, VN, QUEUE)
    batch = [one.events[0], two.events[0], impostor, two.events[1]]
    with pytest.raises(EventRejected, match="sequence 1 is already held"):
        projection.write(batch)
    assert table_count(uow, pipeline.inbox) == 0
    assert table_count(uow, event_log) == 0
    assert received_total(uow) == 0
    # One by one, as the consumer then does: the good ones count, the impostor alone is refused.
    assert projection.write([one.events[0]]) == [True]
    assert projection.write([two.events[0]]) == [True]
    with pytest.raises(EventRejected):
        projection.write([impostor])
    assert projection.write([two.events[1]]) == [True]
    assert received_total(uow) == 2
    with uow.transaction() as tx:
        assert repository.load_facts(tx.session, two.code) == fold(None, stream(two.events[:2]), VN)
