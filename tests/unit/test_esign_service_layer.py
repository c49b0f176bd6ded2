"""The esign service layer (services/esign/service_layer.py) on the in-memory unit of work: a decided
dossier opens its signing request, the leader of the handling unit signs, a clerk of the issuing
unit seals (numbering the document in its unit's register of the Vietnam-local year), a leader
refuses; who may act (403) and see (404), what is out of turn (409), which events leave and their
per-dossier sequence — no broker, no database, no keys, a few milliseconds a test. The HTTP tests
(tests/integration/test_esign_service.py) keep to what only HTTP and real signatures show.

Expected values are written by hand from the rules: the seal gives the number, 01, 02, … from
1 January in Vietnam time (UTC+7), per issuing unit; a refusal takes none; the sequence of the esign
events counts per dossier, across its requests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.esign import service_layer
from services.esign.document import REASON_LABELS
from services.esign.domain.model import Stage
from services.esign.pades import NotAPdf, SigningUnavailable
from services.esign.service_layer import (
    Confirm,
    Decided,
    EsignContext,
    OpenRequest,
    ReadRequest,
    ReadResult,
    Refuse,
    Verify,
)
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, Invalid, NotFound
from shared.http import problem_for
from tests.support.fakes import (
    CALENDAR,
    UNITS,
    FakeDocuments,
    FakeSignatures,
    FakeSigningRequests,
    FakeUnitOfWork,
    render_result,
)

COMMUNE, OTHER_COMMUNE, PROVINCE, OTHER_PROVINCE = "26740", "26526", "79", "01"
MORNING = datetime(2027, 3, 1, 2, tzinfo=UTC)  # 09:00 in Vietnam


def person(role: str, unit: str) -> Principal:
    return Principal(f"{role}@{unit}", frozenset({role}), (unit,))


LEADER, CLERK, DESK = person("leader", COMMUNE), person("clerk", COMMUNE), person("desk_officer", COMMUNE)


class Clock:
    """The context's clock: the test sets ``now``."""

    def __init__(self) -> None:
        self.now = MORNING

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(clock) -> EsignContext:
    return EsignContext(
        units=UNITS,
        calendar=CALENDAR,
        clock=clock,
        signatures=FakeSignatures(),
        documents=FakeDocuments(),
        retention=timedelta(days=30),
        public_url="https://motcua.example.gov.vn/",
        place="Thành phố Hồ Chí Minh",
        leader_title="Chủ tịch",
        render=render_result,
        repository=FakeSigningRequests,
    )


def run(uow, ctx, use_case, command):
    with uow.transaction() as tx:
        return use_case(command, tx, ctx)


def decided(
    code="D-1", decision="approved", reason_code=None, receiving=COMMUNE, handling=COMMUNE
) -> Decided:
    return Decided(code, decision, reason_code, "1.001193", receiving, handling)


def opened(uow, ctx, command: Decided | None = None):
    request, created = run(uow, ctx, service_layer.open_from_decision, command or decided())
    assert created
    return request


def sign(uow, ctx, request, who: Principal = LEADER):
    return run(
        uow, ctx, service_layer.sign, Confirm(who, request.id, request.document_sha256, "Nguyễn Văn An")
    )


def seal(uow, ctx, request, who: Principal = CLERK):
    return run(uow, ctx, service_layer.seal, Confirm(who, request.id, request.document_sha256))


def refuse(uow, ctx, request, who: Principal = LEADER, reason="Cần xác minh thêm"):
    return run(uow, ctx, service_layer.refuse, Refuse(who, request.id, reason, "verification_needed"))


def stored(uow, request_id: str):
    return uow.state.table("esign_signing_requests")[request_id]


def published(uow) -> list[tuple[str, int, str]]:
    return [(e.subject, e.sequence, e.name) for e in uow.published]


# --- opening -------------------------------------------------------------------------------------


def test_a_decision_opens_a_request_with_an_unnumbered_draft_and_publishes_nothing(uow, ctx):
    request = opened(uow, ctx)
    kept = stored(uow, request.id)
    assert (kept.stage, kept.document_number, kept.issuing_unit) == (Stage.AWAITING_LEADER, None, COMMUNE)
    assert [(s.role, s.unit, s.purpose) for s in kept.signers] == [
        ("leader", COMMUNE, "signature"),
        ("clerk", COMMUNE, "seal"),
    ]
    assert ctx.documents.get(kept.document_sha256) == b"%PDF-fake D-1 approved None KQ-26740"
    assert uow.state.table("esign_documents")[kept.document_sha256]["revision"] == "unsigned"
    assert uow.published == []  # opening is not an esign event


def test_a_rejection_states_its_reason_by_code_and_a_redelivered_decision_opens_nothing_new(uow, ctx):
    rejected = decided(decision="rejected", reason_code="incomplete_dossier")
    request = opened(uow, ctx, rejected)
    assert stored(uow, request.id).reason == REASON_LABELS["incomplete_dossier"] == "Hồ sơ chưa đầy đủ"
    again, created = run(uow, ctx, service_layer.open_from_decision, rejected)
    assert (again.id, created) == (request.id, False)
    assert len(uow.state.table("esign_signing_requests")) == 1


def test_after_a_refusal_the_next_decision_opens_a_new_request(uow, ctx, clock):
    first = opened(uow, ctx)
    refuse(uow, ctx, first)
    clock.now += timedelta(days=2)  # appraised and decided again
    second = opened(uow, ctx)
    assert second.id != first.id
    latest = run(uow, ctx, service_layer.read_result, ReadResult(DESK, "D-1"))
    assert latest.id == second.id


def opening(principal: Principal, **overrides) -> OpenRequest:
    fields = {
        "dossier_code": "D-9",
        "decision": "approved",
        "reason": None,
        "procedure_code": "1.001193",
        "receiving_unit": COMMUNE,
        "handling_unit": COMMUNE,
    }
    return OpenRequest(principal, **{**fields, **overrides})


@pytest.mark.parametrize(
    ("principal", "overrides", "status", "pointer"),
    [
        (DESK, {}, 403, None),  # not a role that opens requests
        (person("handling_officer", COMMUNE), {"receiving_unit": "99999"}, 422, "/receiving_unit"),
        (person("handling_officer", COMMUNE), {"handling_unit": "99999"}, 422, "/handling_unit"),
        (person("handling_officer", COMMUNE), {"handling_unit": OTHER_COMMUNE}, 403, None),
        (person("handling_officer", COMMUNE), {"decision": "rejected", "reason": "  "}, 422, "/reason"),
    ],
)
def test_opening_by_hand_needs_the_role_known_units_the_jurisdiction_and_a_rejections_reason(
    uow, ctx, principal, overrides, status, pointer
):
    with pytest.raises((Forbidden, Invalid)) as refused:
        run(uow, ctx, service_layer.open_request, opening(principal, **overrides))
    problem = problem_for(refused.value)
    assert problem.status == status
    if pointer:
        assert [e["pointer"] for e in problem.errors] == [pointer]
    assert uow.state.table("esign_signing_requests") == {} and ctx.documents.files == {}


def test_opening_by_hand_in_the_jurisdiction_creates_then_returns_the_open_request(uow, ctx):
    officer = person("handling_officer", PROVINCE)  # the province covers its communes
    request, created = run(uow, ctx, service_layer.open_request, opening(officer))
    assert created and stored(uow, request.id).handling_unit == COMMUNE
    again, created = run(uow, ctx, service_layer.open_request, opening(officer))
    assert (again.id, created) == (request.id, False)


# --- signing, sealing, refusing --------------------------------------------------------------------


def test_the_leader_signs_then_the_clerk_seals_and_each_publishes_one_event(uow, ctx, clock):
    request = opened(uow, ctx)
    clock.now = MORNING + timedelta(hours=1)
    signed = sign(uow, ctx, request)
    kept = stored(uow, request.id)
    assert (kept.stage, kept.leader_sub, kept.leader_name) == (
        Stage.AWAITING_SEAL,
        "leader@26740",
        "Nguyễn Văn An",
    )
    assert kept.document_sha256 == signed.document_sha256 != request.document_sha256
    assert kept.document_number is None  # the leader signs a draft: the number comes at issue
    clock.now = MORNING + timedelta(hours=2)
    sealed = seal(uow, ctx, signed)
    kept = stored(uow, request.id)
    assert (kept.stage, kept.clerk_sub, kept.document_number) == (Stage.SEALED, "clerk@26740", "01/KQ-26740")
    issued = "sealed by 26740 (Phường Sài Gòn) as 01/KQ-26740 on 2027-03-01T04:00:00+00:00"
    assert ctx.documents.get(kept.document_sha256).decode().endswith(issued)
    assert sealed.events == []  # taken at commit
    signed_event, sealed_event = uow.published
    assert (signed_event.type, signed_event.subject, signed_event.sequence) == (
        "vn.motcua.esign.signed",
        "D-1",
        1,
    )
    assert (signed_event.unit_path, signed_event.handling_unit_path) == ("79.26740", "79.26740")
    assert signed_event.data == {
        "code": "D-1",
        "request_id": request.id,
        "receiving_unit": COMMUNE,
        "handling_unit": COMMUNE,
        "issuing_unit": COMMUNE,
        "signer_sub": "leader@26740",
        "signer_name": "Nguyễn Văn An",
        "signer_role": "leader",
        "occurred_at": "2027-03-01T03:00:00+00:00",
        "document_sha256": signed.document_sha256,
    }
    assert (sealed_event.name, sealed_event.sequence) == ("sealed", 2)
    assert sealed_event.data["document_number"] == "01/KQ-26740"
    assert sealed_event.data["signer_role"] == "clerk" and sealed_event.data["signer_name"] == "clerk@26740"
    assert sealed_event.data["document_sha256"] == kept.document_sha256


def test_a_refusal_publishes_its_code_not_its_words_and_ends_the_request(uow, ctx):
    request = opened(uow, ctx)
    refuse(uow, ctx, request, reason="  Cần xác minh thêm  ")
    kept = stored(uow, request.id)
    assert (kept.stage, kept.refusal_reason, kept.refused_by) == (
        Stage.REFUSED,
        "Cần xác minh thêm",
        "leader@26740",
    )
    (event,) = uow.published
    assert (event.name, event.sequence) == ("refused", 1)
    assert (event.data["reason_code"], event.data["has_reason_text"]) == ("verification_needed", True)
    assert "Cần xác minh thêm" not in str(event.data)
    with pytest.raises(Conflict, match="refused"):
        sign(uow, ctx, request)
    with pytest.raises(Conflict, match="refused"):
        seal(uow, ctx, request)
    with pytest.raises(Conflict, match="already refused"):
        refuse(uow, ctx, request)
    assert len(uow.published) == 1


def test_a_refusal_states_its_reason(uow, ctx):
    request = opened(uow, ctx)
    with pytest.raises(Invalid) as refused:
        refuse(uow, ctx, request, reason="   ")
    assert problem_for(refused.value).status == 422
    assert stored(uow, request.id).stage is Stage.AWAITING_LEADER and uow.published == []


def test_out_of_turn_is_a_conflict_and_changes_nothing(uow, ctx):
    request = opened(uow, ctx)
    with pytest.raises(Conflict, match="leader has not signed"):
        seal(uow, ctx, request)
    signed = sign(uow, ctx, request)
    with pytest.raises(Conflict, match="signed once"):
        sign(uow, ctx, signed)
    with pytest.raises(Conflict, match="a signed result is not refused"):
        refuse(uow, ctx, signed)
    sealed = seal(uow, ctx, signed)
    with pytest.raises(Conflict, match="sealed once"):
        seal(uow, ctx, sealed)
    assert published(uow) == [("D-1", 1, "signed"), ("D-1", 2, "sealed")]
    assert problem_for(Conflict("x")).status == 409


def test_the_signer_confirms_the_current_revision(uow, ctx):
    request = opened(uow, ctx)
    stale = Confirm(LEADER, request.id, "0" * 64)
    with pytest.raises(Conflict, match="look at it again"):
        run(uow, ctx, service_layer.sign, stale)
    ctx.documents.files.clear()  # past its retention
    with pytest.raises(NotFound, match="no longer kept"):
        sign(uow, ctx, request)
    assert stored(uow, request.id).stage is Stage.AWAITING_LEADER and uow.published == []


# --- who may act, who may see -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "who",
    [
        CLERK,  # the signature is a leader's
        DESK,
        person("leader", COMMUNE),  # sees the dossier (its receiving unit), but it is handled by the province
    ],
)
def test_the_signature_needs_a_leader_of_the_handling_unit(uow, ctx, who):
    request = opened(uow, ctx, decided(receiving=COMMUNE, handling=PROVINCE))
    with pytest.raises(Forbidden) as refused:
        sign(uow, ctx, request, who)
    assert problem_for(refused.value).status == 403
    assert stored(uow, request.id).stage is Stage.AWAITING_LEADER and uow.published == []
    sign(uow, ctx, request, person("leader", PROVINCE))
    assert published(uow) == [("D-1", 1, "signed")]


def test_outside_the_jurisdiction_the_unit_is_named_and_a_refusal_is_403_too(uow, ctx):
    request = opened(uow, ctx, decided(receiving=COMMUNE, handling=PROVINCE))
    with pytest.raises(Forbidden, match="unit 79 is outside your jurisdiction"):
        sign(uow, ctx, request, LEADER)
    with pytest.raises(Forbidden, match="unit 79 is outside your jurisdiction"):
        refuse(uow, ctx, request, LEADER)
    signed = sign(uow, ctx, request, person("leader", PROVINCE))
    with pytest.raises(Forbidden, match="unit 79 is outside your jurisdiction"):
        seal(uow, ctx, signed, CLERK)  # a clerk of the commune: the province issues
    with pytest.raises(Forbidden, match="given by a clerk"):
        seal(uow, ctx, signed, person("leader", PROVINCE))
    seal(uow, ctx, signed, person("clerk", PROVINCE))
    assert stored(uow, request.id).document_number == "01/KQ-79"


def test_who_cannot_see_the_request_is_told_it_does_not_exist(uow, ctx):
    request = opened(uow, ctx)
    outsiders = [
        person("leader", OTHER_COMMUNE),
        person("leader", OTHER_PROVINCE),
        person("citizen", COMMUNE),
    ]
    for outsider in outsiders:
        with pytest.raises(NotFound):
            sign(uow, ctx, request, outsider)
        with pytest.raises(NotFound):
            run(uow, ctx, service_layer.read_request, ReadRequest(outsider, request.id))
        with pytest.raises(NotFound):
            run(uow, ctx, service_layer.result_document, ReadResult(outsider, "D-1"))
    with pytest.raises(NotFound):
        run(uow, ctx, service_layer.read_request, ReadRequest(LEADER, "no-such-request"))
    # the desk that returns the result, the portal that filed it, the postal operator
    for reader in (DESK, person("portal", PROVINCE), person("postal_operator", COMMUNE)):
        document = run(uow, ctx, service_layer.result_document, ReadResult(reader, "D-1"))
        assert document.data == ctx.documents.get(request.document_sha256)
    assert problem_for(NotFound("x")).status == 404


# --- the register: per issuing unit and Vietnam-local year ------------------------------------------


def issue(uow, ctx, clock, code: str, at: datetime, unit: str = COMMUNE):
    """Opened and signed before, sealed (issued) at ``at``; the number the document took."""
    clock.now = at - timedelta(days=1)
    request = opened(uow, ctx, decided(code, handling=unit, receiving=unit))
    signed = sign(uow, ctx, request, person("leader", unit))
    clock.now = at
    return seal(uow, ctx, signed, person("clerk", unit)).document_number


def test_documents_are_numbered_at_the_seal_per_unit_in_the_register_of_the_vietnam_year(uow, ctx, clock):
    numbers = [
        issue(uow, ctx, clock, "D-1", datetime(2026, 12, 31, 9, tzinfo=UTC)),  # 16:00, 31 December
        issue(uow, ctx, clock, "D-2", datetime(2026, 12, 31, 16, 59, tzinfo=UTC)),  # 23:59: still 2026
        issue(uow, ctx, clock, "D-3", datetime(2026, 12, 31, 17, 30, tzinfo=UTC)),  # 00:30, 1 January 2027
        issue(uow, ctx, clock, "D-4", datetime(2027, 1, 2, 3, tzinfo=UTC)),
        issue(uow, ctx, clock, "D-5", datetime(2027, 1, 2, 3, tzinfo=UTC), unit=OTHER_COMMUNE),
    ]
    assert numbers == ["01/KQ-26740", "02/KQ-26740", "01/KQ-26740", "02/KQ-26740", "01/KQ-26526"]
    registers = uow.state.table("esign_document_counters")
    assert registers == {(COMMUNE, 2026): 2, (COMMUNE, 2027): 2, (OTHER_COMMUNE, 2027): 1}
    assert {
        (r.dossier_code, r.register_year, r.register_number)
        for r in uow.state.table("esign_signing_requests").values()
    } == {
        ("D-1", 2026, 1),
        ("D-2", 2026, 2),
        ("D-3", 2027, 1),
        ("D-4", 2027, 2),
        ("D-5", 2027, 1),
    }


def test_a_refused_request_and_a_failed_seal_take_no_number(uow, ctx, clock):
    refuse(uow, ctx, opened(uow, ctx, decided("D-1")))
    signed = sign(uow, ctx, opened(uow, ctx, decided("D-2")))
    ctx.signatures.failing = SigningUnavailable("the timestamp authority did not answer; nothing was signed")
    with pytest.raises(SigningUnavailable):
        seal(uow, ctx, signed)
    assert stored(uow, signed.id).stage is Stage.AWAITING_SEAL
    assert uow.state.table("esign_document_counters") == {}
    assert published(uow) == [("D-1", 1, "refused"), ("D-2", 1, "signed")]
    ctx.signatures.failing = None
    assert seal(uow, ctx, signed).document_number == "01/KQ-26740"


def test_a_request_numbered_at_its_opening_keeps_its_number_and_takes_none(uow, ctx):
    signed = sign(uow, ctx, opened(uow, ctx))
    stored(uow, signed.id).document_number = "5/KQ-26740"  # opened before numbering moved to the seal
    assert seal(uow, ctx, signed).document_number == "5/KQ-26740"
    assert uow.state.table("esign_document_counters") == {}
    assert uow.published[-1].data["document_number"] == "5/KQ-26740"


# --- the sequence: per dossier, across its requests --------------------------------------------------


def test_the_sequence_counts_per_dossier_across_its_signing_requests(uow, ctx):
    first = opened(uow, ctx, decided("D-1"))
    refuse(uow, ctx, first)
    other = opened(uow, ctx, decided("D-2"))
    seal(uow, ctx, sign(uow, ctx, other))
    second = opened(uow, ctx, decided("D-1", decision="rejected", reason_code="other"))
    seal(uow, ctx, sign(uow, ctx, second))
    assert [(e.subject, e.sequence, e.name, e.data["request_id"]) for e in uow.published] == [
        ("D-1", 1, "refused", first.id),
        ("D-2", 1, "signed", other.id),
        ("D-2", 2, "sealed", other.id),
        ("D-1", 2, "signed", second.id),
        ("D-1", 3, "sealed", second.id),
    ]
    assert uow.state.sequences == {("esign_event_sequences", "D-1"): 3, ("esign_event_sequences", "D-2"): 2}


# --- verification and retention ----------------------------------------------------------------------


def test_the_verifier_says_whether_this_service_issued_the_file(uow, ctx):
    request = opened(uow, ctx)
    mine = run(uow, ctx, service_layer.verify, Verify(request_id=request.id))
    assert (mine["stored"], mine["verdict"], mine["sha256"]) == (
        True,
        "unsigned: the document carries no signature",
        request.document_sha256,
    )
    foreign = run(uow, ctx, service_layer.verify, Verify(pdf=b"%PDF-1.7 someone else's"))
    assert foreign["stored"] is False and foreign["size"] == 23
    with pytest.raises(NotAPdf):
        run(uow, ctx, service_layer.verify, Verify(pdf=b"GIF89a"))
    with pytest.raises(NotFound):
        run(uow, ctx, service_layer.verify, Verify(request_id="no-such-request"))


def test_revisions_past_their_retention_are_purged(uow, ctx, clock):
    request = opened(uow, ctx)
    clock.now = MORNING + timedelta(days=29)
    assert service_layer.purge_expired(uow, ctx) == 0
    clock.now = MORNING + timedelta(days=31)
    assert service_layer.purge_expired(uow, ctx) == 1
    assert ctx.documents.get(request.document_sha256) is None
    assert uow.state.table("esign_documents") == {}
