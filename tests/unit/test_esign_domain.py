"""The signing request's rules (services/esign/domain/model.py), derived from the issue and Decree 30:
the leader of the handling unit signs first, a clerk of the issuing organisation seals after; the
wrong role is refused (403), acting out of turn is a conflict (409), a refused request is never
signed, and every change leaves one domain event. (The unit: the use case's jurisdiction check,
tests/unit/test_esign_service_layer.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.esign.domain.model import (
    DocumentNumber,
    Refused,
    Sealed,
    Signed,
    Signer,
    SigningRequest,
    Stage,
    register_year,
)
from shared.domain import Conflict, Forbidden, Invalid

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
UNIT = "26734"
LEADER = Signer("leader.an", frozenset({"leader"}), "Nguyễn Văn An")
CLERK = Signer("clerk.binh", frozenset({"clerk"}), "Trần Thị Bình")
NUMBER = DocumentNumber(2026, 1, "KQ-26734")


def request() -> SigningRequest:
    return SigningRequest(
        id="r1",
        dossier_code="G01-261130-0001",
        decision="approved",
        reason=None,
        procedure_code="1.001193",
        receiving_unit=UNIT,
        handling_unit=UNIT,
        issuing_unit=UNIT,
        created_at=NOW,
        document_sha256="a" * 64,
    )


def test_signers_are_ordered_leader_then_clerk():
    slots = request().signers
    assert [(s.role, s.unit, s.purpose) for s in slots] == [
        ("leader", UNIT, "signature"),
        ("clerk", UNIT, "seal"),
    ]


def test_leader_signs_then_clerk_seals_each_leaving_one_event():
    r = request()
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    assert r.stage is Stage.AWAITING_SEAL and r.document_sha256 == "b" * 64
    assert r.document_number is None  # the leader signs a draft: the number comes at issue
    r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=NUMBER)
    assert r.stage is Stage.SEALED
    assert (r.document_number, r.register_year, r.register_number) == ("01/KQ-26734", 2026, 1)
    assert [type(e) for e in r.events] == [Signed, Sealed]
    assert [e.signer_sub for e in r.events] == ["leader.an", "clerk.binh"]


@pytest.mark.parametrize("signer", [CLERK, Signer("desk", frozenset({"desk_officer"}), "x")])
def test_the_signature_needs_a_leader(signer):
    r = request()
    with pytest.raises(Forbidden):
        r.sign(signer, now=NOW, document_sha256="b" * 64)
    assert r.stage is Stage.AWAITING_LEADER and r.events == []


def test_the_seal_needs_a_clerk():
    r = request()
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(Forbidden):
        r.seal(LEADER, now=NOW, document_sha256="c" * 64, number=NUMBER)
    assert r.stage is Stage.AWAITING_SEAL


def test_sealing_before_the_leader_signs_is_a_conflict():
    with pytest.raises(Conflict, match="leader has not signed"):
        request().seal(CLERK, now=NOW, document_sha256="c" * 64, number=NUMBER)


def test_signing_twice_and_sealing_twice_are_conflicts():
    r = request()
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(Conflict, match="signed once"):
        r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=NUMBER)
    with pytest.raises(Conflict, match="sealed once"):
        r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=NUMBER)
    assert len(r.events) == 2


def test_a_refused_request_cannot_be_signed_or_sealed():
    r = request()
    r.refuse(LEADER, now=NOW, reason="  Cần thẩm định lại  ")
    assert r.stage is Stage.REFUSED and r.refusal_reason == "Cần thẩm định lại"
    assert [type(e) for e in r.events] == [Refused]
    with pytest.raises(Conflict, match="refused"):
        r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(Conflict, match="refused"):
        r.seal(CLERK, now=NOW, document_sha256="b" * 64, number=NUMBER)
    with pytest.raises(Conflict):
        r.refuse(LEADER, now=NOW, reason="again")


def test_a_refusal_states_its_reason_and_comes_before_signing():
    r = request()
    with pytest.raises(Invalid):
        r.refuse(LEADER, now=NOW, reason="   ")
    with pytest.raises(Forbidden):
        r.refuse(CLERK, now=NOW, reason="not mine to refuse")
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(Conflict, match="already signed"):
        r.refuse(LEADER, now=NOW, reason="too late")


def test_the_reason_codes_printed_are_the_dossier_services_codes():
    """The codes the dossier events carry instead of an officer's text (issue 11) each have a label."""
    from services.dossier.schemas import REASON_CODES
    from services.esign.document import REASON_LABELS

    assert set(REASON_LABELS) == set(REASON_CODES)


@pytest.mark.parametrize(
    ("moment", "year"),
    [
        (datetime(2026, 12, 31, 16, 59, 59, tzinfo=UTC), 2026),  # 23:59:59 on 31 December in Vietnam
        (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), 2027),  # midnight in Vietnam, 17:00 in UTC
        (datetime(2026, 12, 31, 17, 30, tzinfo=UTC), 2027),
        (datetime(2027, 1, 1, 6, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")), 2027),
        (datetime(2027, 1, 1, 1, 0, tzinfo=ZoneInfo("America/Los_Angeles")), 2027),  # 16:00 in Vietnam
    ],
)
def test_the_register_is_the_vietnam_local_year_of_issue(moment, year):
    assert register_year(moment) == year


@pytest.mark.parametrize(
    ("number", "text"), [(1, "01/KQ-26734"), (9, "09/KQ-26734"), (10, "10/KQ-26734"), (123, "123/KQ-26734")]
)
def test_numbers_below_ten_take_a_leading_zero(number, text):
    assert DocumentNumber(2027, number, "KQ-26734").text == text


def test_a_document_is_numbered_once_in_the_register_of_its_day_of_issue():
    r = request()
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(ValueError, match="numbered once"):
        r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=None)
    new_year = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="another register"):
        r.seal(CLERK, now=new_year, document_sha256="c" * 64, number=NUMBER)
    assert r.stage is Stage.AWAITING_SEAL and r.document_number is None
    r.seal(
        CLERK,
        now=new_year,
        document_sha256="c" * 64,
        number=DocumentNumber(2027, 1, "KQ-26734"),
    )
    assert (r.document_number, r.register_year) == ("01/KQ-26734", 2027)


def test_a_request_numbered_at_its_opening_keeps_its_number():
    """Requests opened before numbering moved to the seal already print their number."""
    r = request()
    r.document_number = "5/KQ-26734"
    r.sign(LEADER, now=NOW, document_sha256="b" * 64)
    with pytest.raises(ValueError, match="numbered once"):
        r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=NUMBER)
    r.seal(CLERK, now=NOW, document_sha256="c" * 64, number=None)
    assert r.document_number == "5/KQ-26734" and r.stage is Stage.SEALED
