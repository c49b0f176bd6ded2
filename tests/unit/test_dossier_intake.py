"""What a filing tells Decision 766 (docs/domain.md §12): counts of components and the VNeID flag on
the filing's events, and whether the result was sealed digitally on ``stamped``. Plain Python."""

from __future__ import annotations

import pytest

from services.dossier.domain.model import Action, Dossier, Intake, InvalidArgument
from shared.vocabulary import Channel, ReturnMethod, Status
from tests.unit.test_dossier_lifecycle import APPLICANT, CAL, INTERLINKED, MONDAY, at, drive, in_status

INTAKE_FIELDS = ("components_digitised", "components_reused", "components_national", "vneid_verified")


def test_a_counter_filing_says_what_the_desk_digitised_reused_and_took_from_national_databases():
    dossier = Dossier.receive_at_counter(
        code="D1-260302-0001",
        procedure=INTERLINKED,
        receiving_unit="D1",
        channel=Channel.COUNTER,
        return_method=ReturnMethod.COUNTER,
        applicant=dict(APPLICANT),
        now=MONDAY,
        calendar=CAL,
        intake=Intake(digitised=3, reused=1, national=2),
    )
    data = dossier.events[-1].data
    assert [data[name] for name in INTAKE_FIELDS] == [3, 1, 2, False]
    # never the papers nor the identity: the applicant's number is nowhere on the event
    assert APPLICANT["id_number"] not in repr(data)


def test_an_online_registration_carries_its_flags_into_the_receipt():
    dossier = Dossier.register(
        code="D1-260302-0002",
        procedure=INTERLINKED,
        receiving_unit="D1",
        channel=Channel.ONLINE,
        return_method=ReturnMethod.COUNTER,
        applicant=dict(APPLICANT),
        submitted_by="portal@79",
        now=MONDAY,
        intake=Intake(reused=2, national=1, vneid_verified=True),
    )
    dossier.receive(now=at(hours=1), calendar=CAL)
    registered, received = (event.data for event in dossier.events)
    assert registered["vneid_verified"] is received["vneid_verified"] is True
    assert [received[name] for name in INTAKE_FIELDS[:3]] == [0, 2, 1]


def test_a_filing_that_says_nothing_counts_nothing():
    data = in_status(Status.RECEIVED).events[0].data
    assert [data[name] for name in INTAKE_FIELDS] == [0, 0, 0, False]


def test_a_negative_count_is_refused_naming_the_field():
    with pytest.raises(InvalidArgument) as refused:
        Intake(reused=-1)
    assert refused.value.field == "components.reused"


@pytest.mark.parametrize("digital", [True, False])
def test_the_seal_says_whether_the_result_was_issued_digitally(digital):
    dossier = drive(in_status(Status.PROCESSING), Action.APPRAISE, Action.DECIDE, Action.SIGN)
    dossier.stamp(now=at(days=1), digital=digital)
    assert dossier.events[-1].name == "stamped" and dossier.events[-1].data["digital"] is digital
