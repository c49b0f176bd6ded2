"""The metrics service layer's rating rules (docs/domain.md §10: one rating per returned dossier, at
the desk that received it, within SATISFACTION_WINDOW_DAYS of the return) and the SLA report's terms,
on an in-memory projection."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.metrics import service_layer
from services.metrics.projection import DossierFacts, Period, Tally
from services.metrics.report import SlaReport
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, Invalid, NotFound
from shared.vocabulary import Channel, ReturnMethod, Status
from tests.support.fakes import CALENDAR, MONDAY, UNIT, UNITS, FakeRatings

DESK = Principal("tablet@26740", frozenset({"desk_officer"}), (UNIT,))
RETURNED = DossierFacts(
    code="H29-260302-0001",
    receiving_unit=UNIT,
    handling_unit=UNIT,
    procedure_code="1.001193",
    procedure_field="civil_status",
    channel=Channel.COUNTER,
    return_method=ReturnMethod.COUNTER,
    status=Status.RETURNED,
    received_at=MONDAY,
    returned_at=MONDAY + timedelta(days=3),
)


def desk(ratings: FakeRatings, days_after_return: float) -> service_layer.Desk:
    moment = RETURNED.returned_at + timedelta(days=days_after_return)
    return service_layer.Desk(
        units=UNITS,
        calendar=CALENDAR,
        window=timedelta(days=30),
        clock=lambda: moment,
        projection=lambda tx: ratings,
    )


def rate(
    ratings: FakeRatings, days_after_return: float = 1, principal: Principal = DESK, code: str = RETURNED.code
):
    return service_layer.rate(
        service_layer.Rate(principal, code, "satisfied"), None, desk(ratings, days_after_return)
    )


def test_a_returned_dossier_is_rated_once():
    ratings = FakeRatings(RETURNED)
    answer = rate(ratings)
    assert (answer["dossier_code"], answer["rating"], answer["unit"]) == (RETURNED.code, "satisfied", UNIT)
    with pytest.raises(Conflict, match="already been rated"):
        rate(ratings)
    assert ratings.ratings[RETURNED.code][0] == "satisfied"


def test_the_window_closes_thirty_days_after_the_return():
    assert rate(FakeRatings(RETURNED), days_after_return=30)["rating"] == "satisfied"  # the last moment
    with pytest.raises(Conflict, match="window"):
        rate(FakeRatings(RETURNED), days_after_return=30.001)


def test_no_rating_before_the_result_is_returned_or_for_an_unknown_dossier():
    with pytest.raises(Conflict, match="no result returned"):
        rate(FakeRatings(replace(RETURNED, returned_at=None, status=Status.RESOLVED)))
    with pytest.raises(NotFound):
        rate(FakeRatings(RETURNED), code="nope")
    with pytest.raises(NotFound):  # registered, never received: not a dossier of the desk yet
        rate(FakeRatings(replace(RETURNED, received_at=None, returned_at=None, status=Status.REGISTERED)))


def test_only_the_receiving_jurisdiction_rates():
    elsewhere = Principal("tablet@01", frozenset({"desk_officer"}), (UNITS.children("01")[0].code,))
    ratings = FakeRatings(RETURNED)
    with pytest.raises(Forbidden):
        rate(ratings, principal=elsewhere)
    assert ratings.ratings == {}


class Tallies:
    """The projection's report query in memory: what it was asked, and two procedures' tallies."""

    def __init__(self) -> None:
        self.asked: list[tuple[frozenset[str], Period, str]] = []

    def report_tallies(self, units, period: Period, now, group_by: str):
        self.asked.append((frozenset(units), period, group_by))
        return [("1.001193", Tally(received=2, returned=1)), ("1.000001", Tally(received=1))]


def report(principal: Principal, unit: str, tallies: Tallies, **period) -> SlaReport:
    context = service_layer.Desk(
        units=UNITS,
        calendar=CALENDAR,
        window=timedelta(days=30),
        clock=lambda: MONDAY,  # 2 March 2026, 08:30 in Vietnam
        projection=lambda tx: tallies,
    )
    command = service_layer.MakeReport(
        principal, unit, period.get("first"), period.get("last"), group_by="procedure"
    )
    return service_layer.sla_report(command, None, context)


def test_the_sla_report_covers_the_units_subtree_for_this_month_so_far_by_default():
    tallies = Tallies()
    made = report(DESK, UNIT, tallies)
    [(units, period, group_by)] = tallies.asked
    assert units == frozenset(UNITS.descendants(UNIT)) and group_by == "procedure"
    assert (period.first, period.last) == (date(2026, 3, 1), date(2026, 3, 2))
    assert [(g.key, g.tally.received) for g in made.groups] == [("1.000001", 1), ("1.001193", 2)]
    assert made.total.received == 3


def test_the_sla_report_of_an_unknown_unit_is_invalid_and_outside_the_jurisdiction_forbidden():
    with pytest.raises(Invalid) as unknown:
        report(DESK, "no-such-unit", Tallies())
    assert unknown.value.field == "unit"
    tallies = Tallies()
    with pytest.raises(Forbidden, match="outside your jurisdiction"):
        report(DESK, "79", tallies)  # the province above the desk's commune
    assert tallies.asked == []  # refused before any query
