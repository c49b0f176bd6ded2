"""The metrics service layer's rating rules (DOMAIN.md: one rating per returned dossier, at the desk
that received it, within SATISFACTION_WINDOW_DAYS of the return) on an in-memory projection."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.metrics import service_layer
from services.metrics.projection import DossierFacts
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, NotFound
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
