"""The dossier service layer (services/dossier/service_layer.py) on the in-memory unit of work: who may act,
what the rules refuse (409), what a retried request does, and which events leave — no broker, no
database, a few milliseconds a test. The HTTP tests (tests/integration/test_dossier_api.py) keep to
what only HTTP shows: status codes, headers, bodies on the wire."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from marshmallow import Schema
from werkzeug.test import EnvironBuilder

from services.dossier import service_layer
from services.dossier.actions import REGISTRY
from services.dossier.dependencies import _shipped_catalogue, lifecycle_settings
from services.dossier.domain.events import DossierEvent
from services.dossier.domain.model import TRANSITIONS, Action, TransitionNotAllowed
from services.dossier.watch_backoff import WatchBackoff
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, InvalidArgument, NotFound
from shared.http import idempotent, problem_for
from shared.vocabulary import Status
from tests.support.fakes import CALENDAR, MONDAY, UNITS, FakeDossiers, FakeUnitOfWork

COMMUNE, OTHER_COMMUNE, PROVINCE = "26740", UNITS.children("79")[1].code, "79"
# Receipt of a birth-and-residence style procedure whose plan passes through a second agency.
INTERLINKED = "1.012767"


def person(role: str, unit: str, sub: str | None = None) -> Principal:
    return Principal(sub or f"{role}@{unit}", frozenset({role}), (unit,))


DESK = person("desk_officer", COMMUNE)
AGENCY, LEADER, CLERK = (person(role, PROVINCE) for role in ("handling_officer", "leader", "clerk"))
PORTAL = person("portal", PROVINCE)
ACTOR = {
    Action.RECEIVE: DESK,
    Action.REFUSE: DESK,
    Action.START_PROCESSING: DESK,
    Action.REQUEST_SUPPLEMENT: DESK,
    Action.SUPPLEMENT: DESK,
    Action.REQUEST_PAYMENT: AGENCY,
    Action.RECORD_PAYMENT: DESK,
    Action.APPRAISE: AGENCY,
    Action.TRANSFER: AGENCY,
    Action.DECIDE: LEADER,
    Action.SIGN: LEADER,
    Action.STAMP: CLERK,
    Action.RESOLVE: AGENCY,
    Action.RETURN: DESK,
    Action.WITHDRAW: PORTAL,
    Action.STOP: AGENCY,
    Action.RESUME: AGENCY,
    Action.APOLOGIZE: LEADER,
}


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def office() -> service_layer.Office:
    return service_layer.Office(
        units=UNITS,
        calendar=CALENDAR,
        catalogue=_shipped_catalogue(),
        settings=lifecycle_settings({}),
        clock=Clock(),
        repository=FakeDossiers,
    )


def filing(channel: str = "counter") -> dict:
    return {
        "procedure_code": INTERLINKED,
        "receiving_unit": COMMUNE,
        "channel": channel,
        "return_method": "counter",
        "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
    }


def receive(uow, office, principal: Principal = DESK) -> str:
    with uow.transaction() as tx:
        return service_layer.receive(service_layer.Receive(principal, filing(), "req-1"), tx, office).code


def register(uow, office) -> str:
    with uow.transaction() as tx:
        return service_layer.register(
            service_layer.Register(PORTAL, filing("online"), "req-1"), tx, office
        ).code


def act(uow, office, code: str, action: Action, body: dict | None = None, principal: Principal | None = None):
    with uow.transaction() as tx:
        command = service_layer.Act(principal or ACTOR[action], code, action, body or {}, "req-2")
        return service_layer.act(command, tx, office)


def status(uow, code: str) -> Status:
    return uow.state.dossiers[code].status


# --- the registry --------------------------------------------------------------------------------


def test_every_action_has_one_registry_entry_and_one_rule():
    assert set(REGISTRY) == set(Action), f"missing from the registry: {set(Action) - set(REGISTRY)}"
    assert set(TRANSITIONS) == set(Action), f"no @transition for: {set(Action) - set(TRANSITIONS)}"
    for action, entry in REGISTRY.items():
        assert entry.action is action and entry.rule is TRANSITIONS[action]
        assert issubclass(entry.body, Schema) and issubclass(entry.event, DossierEvent)
        assert entry.actors and entry.summary and entry.rule.allowed_from


def test_each_action_publishes_the_event_its_entry_names(uow, office):
    """A whole interlinked life, every action once: each publishes exactly its registry event."""
    code = register(uow, office)
    assert uow.published_names() == ["registered"]
    life = [
        (Action.RECEIVE, {}),
        (Action.START_PROCESSING, {}),
        (Action.REQUEST_SUPPLEMENT, {"items": ["Bản sao CCCD"], "reason": "thiếu giấy tờ"}),
        (Action.SUPPLEMENT, {}),
        (Action.REQUEST_PAYMENT, {"amount_vnd": 50_000}),
        (Action.RECORD_PAYMENT, {}),
        (Action.STOP, {"reason": "chờ xác minh"}),
        (Action.RESUME, {}),
        (Action.APPRAISE, {}),
        (Action.TRANSFER, {"to_unit": PROVINCE}),
        (Action.APOLOGIZE, {"reason": "cần xác minh thêm"}),
        (Action.DECIDE, {"decision": "approved"}),
        (Action.SIGN, {}),
        (Action.STAMP, {}),
        (Action.RESOLVE, {}),
        (Action.RETURN, {}),
    ]
    for action, body in life:
        if action is Action.APOLOGIZE:
            body = {**body, "new_due_at": uow.state.dossiers[code].due_at + timedelta(days=3)}
        before = len(uow.published)
        act(uow, office, code, action, body)
        assert uow.published_names()[before:] == [REGISTRY[action].event.name], action
    assert status(uow, code) is Status.RETURNED
    # One sequence per dossier, without a gap: the unit of work collected every event.
    assert [event.sequence for event in uow.published] == list(range(1, len(life) + 2))
    # The other three ends: refusal and withdrawal.
    refused, withdrawn = register(uow, office), receive(uow, office)
    act(uow, office, refused, Action.REFUSE, {"reason": "hồ sơ giả"})
    act(uow, office, withdrawn, Action.WITHDRAW, {"reason": "công dân xin rút"}, principal=DESK)
    assert uow.published_names()[-2:] == ["refused", "withdrawn"]


# --- authorisation -------------------------------------------------------------------------------


def test_a_desk_outside_the_receiving_unit_may_not_act_and_nothing_changes(uow, office):
    code = receive(uow, office)
    stranger = person("desk_officer", OTHER_COMMUNE)
    with pytest.raises(Forbidden, match="desk_officer of the receiving unit"):
        act(uow, office, code, Action.START_PROCESSING, principal=stranger)
    assert status(uow, code) is Status.RECEIVED and uow.published_names() == ["received"]


def test_a_role_not_named_by_the_entry_may_not_act(uow, office):
    code = receive(uow, office)
    with pytest.raises(Forbidden):  # the clerk stamps; it does not hand dossiers over
        act(uow, office, code, Action.START_PROCESSING, principal=person("clerk", COMMUNE))


def test_the_portal_withdraws_what_it_filed_and_nothing_else(uow, office):
    mine, theirs = register(uow, office), receive(uow, office)
    with pytest.raises(Forbidden):
        act(uow, office, theirs, Action.WITHDRAW, {"reason": "xin rút"}, principal=PORTAL)
    act(uow, office, mine, Action.WITHDRAW, {"reason": "xin rút"}, principal=PORTAL)
    assert status(uow, mine) is Status.WITHDRAWN and status(uow, theirs) is Status.RECEIVED


def test_filing_outside_the_jurisdiction_or_with_an_unknown_procedure_is_refused(uow, office):
    with pytest.raises(Forbidden, match="outside your jurisdiction"):
        receive(uow, office, person("desk_officer", OTHER_COMMUNE))
    with pytest.raises(InvalidArgument) as refused, uow.transaction() as tx:
        body = {**filing(), "procedure_code": "9.999999"}
        service_layer.receive(service_layer.Receive(DESK, body, "req"), tx, office)
    assert refused.value.field == "procedure_code"
    assert uow.published == [] and uow.state.dossiers == {}


def test_a_dossier_outside_the_jurisdiction_does_not_exist_for_a_reader(uow, office):
    code = receive(uow, office)
    with pytest.raises(NotFound), uow.transaction() as tx:
        service_layer.readable(service_layer.Read(person("auditor", OTHER_COMMUNE), code), tx, office)
    with uow.transaction() as tx:
        assert (
            service_layer.readable(service_layer.Read(person("auditor", PROVINCE), code), tx, office).code
            == code
        )


def test_the_portal_record_is_for_the_portal_sync_of_the_receiving_jurisdiction_only(uow, office):
    code = receive(uow, office)
    with uow.transaction() as tx:
        record = service_layer.portal_record(
            service_layer.Read(person("portal_sync", PROVINCE), code), tx, office
        )
    assert record["applicant"] == {"full_name": "Trần Thị Bình", "phone": None, "email": None}
    assert record["procedure_name"] and record["field_name"]
    # The documents and fees the receipt lists for 1.012767 (civil-status.yaml, by hand): a death
    # registration is free of charge (Luật Hộ tịch, Điều 11); nothing asked for or sealed yet.
    assert record["documents"] == [
        {"name": "Tờ khai liên thông (theo mẫu)", "original": 1, "copies": 0},
        {"name": "Giấy báo tử hoặc giấy tờ thay thế Giấy báo tử", "original": 1, "copies": 0},
    ]
    assert record["fees"] == [{"name": "Lệ phí đăng ký khai tử đúng hạn", "amount_vnd": 0}]
    assert record["payments"] == [] and record["results"] == []
    # Staff read the whole dossier elsewhere; this narrow read is the sync service's only.
    with pytest.raises(Forbidden), uow.transaction() as tx:
        service_layer.portal_record(service_layer.Read(person("auditor", PROVINCE), code), tx, office)
    with pytest.raises(NotFound), uow.transaction() as tx:
        service_layer.portal_record(
            service_layer.Read(person("portal_sync", OTHER_COMMUNE), code), tx, office
        )


def test_the_portal_record_lists_the_payments_asked_for_and_the_result_once_sealed(uow, office):
    code = receive(uow, office)
    act(uow, office, code, Action.START_PROCESSING)
    act(uow, office, code, Action.REQUEST_PAYMENT, {"amount_vnd": 120_000})
    act(uow, office, code, Action.RECORD_PAYMENT, {"receipt_number": "BL-1"})
    for action, body in ((Action.APPRAISE, {}), (Action.DECIDE, {"decision": "rejected", "reason": "thiếu"})):
        act(uow, office, code, action, body)
    act(uow, office, code, Action.SIGN)
    read = service_layer.Read(person("portal_sync", PROVINCE), code)
    with uow.transaction() as tx:
        signed = service_layer.portal_record(read, tx, office)
    act(uow, office, code, Action.STAMP)
    act(uow, office, code, Action.REQUEST_PAYMENT, {"amount_vnd": 30_000})  # a second, not paid yet
    with uow.transaction() as tx:
        sealed = service_layer.portal_record(read, tx, office)
    mine = [e for e in uow.published if e.subject == code]
    times = [datetime.fromisoformat(e.data["occurred_at"]) for e in mine if "payment" in e.type]
    paid = next(datetime.fromisoformat(e.data["occurred_at"]) for e in mine if e.type.endswith(".paid"))
    stamped = next(datetime.fromisoformat(e.data["occurred_at"]) for e in mine if e.type.endswith(".stamped"))
    # Each request with its time, paid when the next payment was recorded; the second still open.
    assert [(p["amount_vnd"], p["requested_at"], p["paid_at"]) for p in sealed["payments"]] == [
        (120_000, times[0], paid),
        (30_000, times[1], None),
    ]
    # Signed is not issued: the result document appears at the seal, a reasoned rejection too, with no
    # number when stamped on paper.
    assert signed["results"] == []
    assert sealed["results"] == [{"decision": "rejected", "number": None, "issued_at": stamped}]


# --- the rules say no: 409 -----------------------------------------------------------------------


def test_a_forbidden_transition_is_a_409_saying_what_is_possible_and_changes_nothing(uow, office):
    code = receive(uow, office)
    with pytest.raises(TransitionNotAllowed) as refused:
        act(uow, office, code, Action.SIGN)
    assert isinstance(refused.value, Conflict)  # the shared vocabulary: problem_for answers it, nothing else
    problem = problem_for(refused.value).to_dict()
    assert problem["status"] == 409 and problem["detail"] == "a dossier that is received cannot be signed"
    assert (problem["current_status"], problem["current_status_name"]) == (2, "received")
    assert "start_processing" in problem["allowed_actions"] and "sign" not in problem["allowed_actions"]
    assert status(uow, code) is Status.RECEIVED and uow.published_names() == ["received"]


def test_the_409_lists_what_the_configured_rules_allow(uow, office):
    """With SUPPLEMENT_ONCE off, a second supplement request is among the allowed actions."""
    lenient = service_layer.Office(
        **{**vars(office), "settings": lifecycle_settings({"SUPPLEMENT_ONCE": "false"})}
    )
    code = receive(uow, lenient)
    act(uow, lenient, code, Action.REQUEST_SUPPLEMENT, {"items": ["a"], "reason": "b"})
    act(uow, lenient, code, Action.SUPPLEMENT)
    with pytest.raises(TransitionNotAllowed) as refused:
        act(uow, lenient, code, Action.RETURN)
    assert "request_supplement" in refused.value.facts["allowed_actions"]


def test_a_bad_value_is_a_422_pointing_at_the_field(uow, office):
    code = receive(uow, office)
    act(uow, office, code, Action.START_PROCESSING)
    with pytest.raises(InvalidArgument) as refused:
        act(uow, office, code, Action.TRANSFER, {"to_unit": "no-such-unit"})
    problem = problem_for(refused.value).to_dict()
    assert problem["status"] == 422 and problem["errors"] == [
        {"pointer": "/to_unit", "detail": "unknown unit code 'no-such-unit'"}
    ]


# --- idempotency and the audit trail ---------------------------------------------------------------


def test_a_retried_request_with_the_same_key_changes_and_publishes_once(uow, office):
    code = receive(uow, office)
    request = EnvironBuilder(
        method="POST",
        path=f"/api/v1/dossiers/{code}/actions/start_processing",
        headers={"Idempotency-Key": "k-1"},
        data=b"{}",
    ).get_request()

    def start(tx):
        command = service_layer.Act(DESK, code, Action.START_PROCESSING, {}, "req-3")
        return 200, {"status": int(service_layer.act(command, tx, office).status)}

    first = idempotent(uow, DESK.sub, request, start)
    again = idempotent(uow, DESK.sub, request, start)
    assert first[:2] == again[:2] == (200, {"status": 4})
    assert again[2] == {"Idempotent-Replayed": "true"}
    assert uow.published_names() == ["received", "processing_started"]


def test_the_audit_trail_names_who_did_what_and_why(uow, office):
    code = receive(uow, office)
    act(uow, office, code, Action.START_PROCESSING)
    act(uow, office, code, Action.STOP, {"reason": "chờ xác minh"})
    with uow.transaction() as tx:
        trail = service_layer.audit_trail(service_layer.Read(person("auditor", PROVINCE), code), tx, office)
    assert [(e.action, e.actor, e.status_before, e.status_after, e.reason) for e in trail] == [
        ("receive", DESK.sub, None, 2, None),
        ("start_processing", DESK.sub, 2, 4, None),
        ("stop", AGENCY.sub, 4, 8, "chờ xác minh"),
    ]
    assert "applicant" not in trail[0].details  # personal data stays on the dossier


# --- the overdue watch ---------------------------------------------------------------------------


def test_the_watch_says_overdue_once_per_due_time(uow, office):
    """A day past the appointment, never handed over: the appointment and the desk's own step are
    overdue, each said once; no due_soon, as it is too late to warn."""
    code = receive(uow, office)
    due = uow.state.dossiers[code].original_due_at
    later = service_layer.Office(**{**vars(office), "clock": lambda: due + timedelta(days=1)})
    backoff = WatchBackoff(timedelta(minutes=1))
    assert service_layer.watch(service_layer.Watch(backoff), uow, later) == 1
    service_layer.watch(service_layer.Watch(backoff), uow, later)
    overdue = [event.data["step"] for event in uow.published if event.name == "overdue"]
    assert sorted(overdue, key=str) == [None, "receive"]
    assert "due_soon" not in uow.published_names()


# --- forms ---------------------------------------------------------------------------------------


def test_forms_02_and_04_say_what_the_dossier_was_told_not_what_a_request_body_held(uow, office):
    code = receive(uow, office)
    act(uow, office, code, Action.START_PROCESSING)
    act(
        uow,
        office,
        code,
        Action.REQUEST_SUPPLEMENT,
        {"items": ["Bản sao CCCD", "Tờ khai"], "reason": "thiếu"},
    )
    act(uow, office, code, Action.SUPPLEMENT)
    new_due = uow.state.dossiers[code].due_at + timedelta(days=3)
    act(uow, office, code, Action.APOLOGIZE, {"reason": "cần xác minh", "new_due_at": new_due})
    # Tomorrow an API field is renamed: the audit rows' copies of the request bodies say nothing more.
    uow.state.audit[code] = [dataclasses.replace(entry, details={}) for entry in uow.state.audit[code]]
    with uow.transaction() as tx:
        supplement = service_layer.form(
            service_layer.ReadForm(AGENCY, code, "supplement_request"), tx, office
        )
        apology = service_layer.form(service_layer.ReadForm(AGENCY, code, "apology"), tx, office)
    assert (supplement["form"], supplement["items"], supplement["reason"]) == (
        "02",
        ["Bản sao CCCD", "Tờ khai"],
        "thiếu",
    )
    assert supplement["officer"] == DESK.sub
    assert (apology["form"], apology["reason"], apology["officer"]) == ("04", "cần xác minh", LEADER.sub)
    assert apology["new_due_at"] == new_due.astimezone(CALENDAR.timezone).isoformat(timespec="seconds")
    with pytest.raises(NotFound, match="no stop notice"), uow.transaction() as tx:
        service_layer.form(service_layer.ReadForm(AGENCY, code, "stop_notice"), tx, office)


def test_a_second_supplement_request_is_a_409_that_no_longer_offers_it(uow, office):
    code = receive(uow, office)
    act(uow, office, code, Action.REQUEST_SUPPLEMENT, {"items": ["Bản sao CCCD"], "reason": "thiếu"})
    act(uow, office, code, Action.SUPPLEMENT)
    with pytest.raises(TransitionNotAllowed, match="already requested") as refused:
        act(uow, office, code, Action.REQUEST_SUPPLEMENT, {"items": ["Khác"], "reason": "quên"})
    assert "request_supplement" not in refused.value.facts["allowed_actions"]
    assert uow.published_names().count("supplement_requested") == 1


# --- consent to messages (docs/notifications.md) -------------------------------------------------

NOTIFIER = person("notifier", PROVINCE)


def receive_with_consent(uow, office, channels: list[str]) -> str:
    body = filing()
    body["applicant"] = {**body["applicant"], "phone": "0912345678", "notification_channels": channels}
    with uow.transaction() as tx:
        return service_layer.receive(service_layer.Receive(DESK, body, "req-1"), tx, office).code


def contact(uow, office, code: str, principal: Principal = NOTIFIER) -> dict:
    with uow.transaction() as tx:
        return service_layer.notification_contact(service_layer.Read(principal, code), tx, office)


def withdraw(uow, office, code: str, principal: Principal = DESK):
    with uow.transaction() as tx:
        command = service_layer.WithdrawConsent(principal, code, "không muốn nhận tin", "req-9")
        return service_layer.withdraw_notification_consent(command, tx, office)


def test_the_notifier_reads_the_consent_and_contact_chosen_at_filing(uow, office):
    code = receive_with_consent(uow, office, ["sms", "zalo"])
    found = contact(uow, office, code)
    assert found["channels"] == ["sms", "zalo"]
    assert (found["phone"], found["email"], found["withdrawn_at"]) == ("0912345678", None, None)
    # Nobody else reads it this way, and outside the notifier's jurisdiction the dossier does not exist.
    with pytest.raises(Forbidden):
        contact(uow, office, code, person("auditor", PROVINCE))
    with pytest.raises(NotFound):
        contact(uow, office, code, person("notifier", OTHER_COMMUNE))


def test_the_consent_is_personal_data_never_on_an_event(uow, office):
    receive_with_consent(uow, office, ["sms"])
    published = uow.published
    assert published and all("notification_channels" not in str(event.data) for event in published)
    assert all("0912345678" not in str(event.data) for event in published)


def test_a_withdrawal_empties_the_consent_at_once_and_is_audited_once(uow, office):
    code = receive_with_consent(uow, office, ["sms"])
    withdraw(uow, office, code)
    found = contact(uow, office, code)
    assert found["channels"] == []
    withdraw(uow, office, code)  # again: nothing more to withdraw, no second line
    with uow.transaction() as tx:
        trail = service_layer.audit_trail(service_layer.Read(DESK, code), tx, office)
    lines = [entry for entry in trail if entry.action == "withdraw_notification_consent"]
    assert len(lines) == 1 and lines[0].actor == DESK.sub and lines[0].reason == "không muốn nhận tin"
    assert found["withdrawn_at"] == lines[0].at.isoformat()


def test_only_the_desk_of_the_receiving_unit_or_the_filing_portal_withdraws(uow, office):
    code = receive_with_consent(uow, office, ["sms"])
    with pytest.raises(Forbidden):
        withdraw(uow, office, code, AGENCY)  # sees the dossier (the province), is not its desk
    with pytest.raises(NotFound):
        withdraw(uow, office, code, person("desk_officer", OTHER_COMMUNE))
    assert contact(uow, office, code)["channels"] == ["sms"]  # nothing changed


@pytest.mark.parametrize(
    ("applicant", "message"),
    [
        ({"notification_channels": ["sms"]}, "phone"),
        ({"notification_channels": ["email"], "phone": "0912345678"}, "email"),
        ({"notification_channels": ["zalo", "zalo"], "phone": "0912345678"}, "each channel once"),
        ({"notification_channels": ["fax"], "phone": "0912345678"}, "Must be one of"),
    ],
)
def test_a_channel_needs_its_contact_at_filing(applicant, message):
    from marshmallow import ValidationError

    from services.dossier.schemas import ReceiptRequestSchema

    body = filing()
    body["applicant"] = {**body["applicant"], **applicant}
    with pytest.raises(ValidationError) as refused:
        ReceiptRequestSchema().load(body)
    assert message in str(refused.value.messages["applicant"])
