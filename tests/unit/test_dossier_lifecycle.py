"""The dossier state machine (docs/domain.md §5, §6) as plain Python: no broker, no database."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.dossier.actions import REGISTRY, Context, agency_unit
from services.dossier.catalogue_files import load_catalogue
from services.dossier.domain.model import (
    DEFAULT_RULES,
    TRANSITIONS,
    Action,
    DomainError,
    Dossier,
    InvalidArgument,
    Rules,
    TransitionNotAllowed,
)
from services.dossier.domain.timing import step_due_times, warning_time
from shared.timeliness import judge_timeliness
from shared.units import EXAMPLE_3LEVEL_FILE, UnitRegistry
from shared.vocabulary import FINAL, TIMELINESS, Channel, Decision, ReturnMethod, Status
from shared.workcalendar import Duration, WorkingCalendar
from tests.support.fakes import Step

EARLY, ON_TIME, LATE = "early", "on_time", "late"  # the contract's timeliness values

CAL = WorkingCalendar()
VN = CAL.timezone
# Monday 2 March 2026, 09:00 in Hanoi: an ordinary working day before the cut-off.
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=VN).astimezone(UTC)
LEAD = timedelta(hours=8)
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "079203001234", "phone": "0901234567"}


@dataclass(frozen=True)
class Procedure:
    code: str = "9.000001"
    version: int = 1
    field: str = "land"
    duration: str = "10 working_days"
    online_level: str | None = "partial"
    steps: tuple[Step, ...] = (
        Step("receive", "Tiếp nhận", "receiving_unit", "same_day"),
        Step("appraise", "Thẩm định", "province:A", "3 working_days"),
        Step("transfer", "Cơ quan thuế", "tax", "3 working_days"),
        Step("approve", "Phê duyệt", "province:A", "3 working_days"),
        Step("stamp", "Đóng dấu", "province:A", "1 working_days"),
        Step("return", "Trả kết quả", "receiving_unit", "same_day"),
    )


INTERLINKED = Procedure()
SHORT = Procedure(
    duration="3 working_days",
    steps=(
        Step("receive", "Tiếp nhận", "receiving_unit", "same_day"),
        Step("appraise", "Thẩm định", "commune", "2 working_days"),
        Step("sign", "Ký", "commune", "1 working_days"),
        Step("return", "Trả kết quả", "receiving_unit", "same_day"),
    ),
)


def at(days: float = 0, hours: float = 0) -> datetime:
    return MONDAY + timedelta(days=days, hours=hours)


def received(procedure: Procedure = INTERLINKED, now: datetime = MONDAY) -> Dossier:
    return Dossier.receive_at_counter(
        code="000.00.31.H01-260302-0001",
        procedure=procedure,
        receiving_unit="D1",
        channel=Channel.COUNTER,
        return_method=ReturnMethod.COUNTER,
        applicant=dict(APPLICANT),
        now=now,
        calendar=CAL,
    )


def registered(channel: Channel = Channel.ONLINE) -> Dossier:
    return Dossier.register(
        code="D1-260302-0001",
        procedure=INTERLINKED,
        receiving_unit="D1",
        channel=channel,
        return_method=ReturnMethod.POSTAL,
        applicant=dict(APPLICANT),
        submitted_by="portal@79",
        now=MONDAY,
    )


# The units the lifecycle tests hand dossiers between.
UNITS = UnitRegistry(
    [
        {"code": "P", "name": "Tỉnh", "level": "province"},
        {"code": "D1", "name": "Xã Một", "level": "commune", "parent": "P"},
        *({"code": code, "name": code, "level": "agency", "parent": "P"} for code in ("A", "TAX")),
    ]
)


def attempt(
    dossier: Dossier, action: Action, now: datetime, *, rules: Rules = DEFAULT_RULES, **given
) -> None:
    """Perform ``action`` through its registry entry, as the service does, with a plausible body
    (``given`` overrides it)."""
    due = dossier.due_at or now
    plausible = {
        Action.REFUSE: {"reason": given.get("reason", "Hồ sơ giả mạo")},
        Action.START_PROCESSING: {"handling_unit": given.get("to_unit", "A")},
        Action.REQUEST_SUPPLEMENT: {
            "items": given.get("items", ["Bản sao sổ hộ khẩu", "Tờ khai có chữ ký"]),
            "reason": "Thiếu giấy tờ",
        },
        Action.REQUEST_PAYMENT: {"amount_vnd": given.get("amount", 500_000)},
        Action.TRANSFER: {"to_unit": given.get("to_unit", "TAX")},
        Action.DECIDE: {
            "decision": given.get("decision", Decision.APPROVED),
            "reason": given.get("reason", "Đủ điều kiện"),
        },
        Action.WITHDRAW: {"reason": "Công dân xin rút"},
        Action.STOP: {"reason": "Chờ kết quả xác minh"},
        Action.APOLOGIZE: {
            "reason": "Cần xác minh thêm",
            "new_due_at": given.get("new_due_at", max(due, now) + timedelta(days=3)),
        },
    }
    context = Context(now=now, calendar=CAL, rules=rules, units=UNITS, role="leader")
    REGISTRY[action].handler(dossier, plausible.get(action, {}), context)


def drive(dossier: Dossier, *steps: tuple[Action, datetime] | Action, **given) -> Dossier:
    for step in steps:
        action, now = step if isinstance(step, tuple) else (step, at(hours=1))
        attempt(dossier, action, now, **given)
    return dossier


def in_status(status: Status) -> Dossier:
    """A dossier brought to ``status`` through legal transitions."""
    if status is Status.REGISTERED:
        return registered()
    if status is Status.REFUSED:
        return drive(registered(), Action.REFUSE)
    dossier = received()
    paths = {
        Status.RECEIVED: (),
        Status.PROCESSING: (Action.START_PROCESSING,),
        Status.SUPPLEMENT_REQUESTED: (Action.START_PROCESSING, Action.REQUEST_SUPPLEMENT),
        Status.AWAITING_PAYMENT: (Action.START_PROCESSING, Action.REQUEST_PAYMENT),
        Status.WITHDRAWN: (Action.WITHDRAW,),
        Status.STOPPED: (Action.START_PROCESSING, Action.STOP),
        Status.RESOLVED: (
            Action.START_PROCESSING,
            Action.APPRAISE,
            Action.DECIDE,
            Action.SIGN,
            Action.STAMP,
            Action.RESOLVE,
        ),
    }
    if status is Status.RETURNED:
        return drive(in_status(Status.RESOLVED), Action.RETURN)
    return drive(dossier, *paths[status])


def snapshot(dossier: Dossier) -> dict:
    return copy.deepcopy(dataclasses.asdict(dossier))


# --- statuses and the transition table ----------------------------------------------------------


def test_the_ten_portal_statuses_and_their_names():
    assert [(int(s), s.label) for s in Status] == [
        (1, "registered"),
        (2, "received"),
        (3, "refused"),
        (4, "processing"),
        (5, "supplement_requested"),
        (6, "awaiting_payment"),
        (7, "withdrawn"),
        (8, "stopped"),
        (9, "resolved"),
        (10, "returned"),
    ]
    assert {Status.REFUSED, Status.WITHDRAWN, Status.RETURNED} == FINAL


@pytest.mark.parametrize("status", list(Status))
def test_each_status_is_reachable(status):
    assert in_status(status).status is status


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (status, action)
        for status in Status
        for action in Action
        if status not in TRANSITIONS[action].allowed_from
    ],
)
def test_an_illegal_transition_changes_nothing_and_says_what_is_allowed(status, action):
    dossier = in_status(status)
    before = snapshot(dossier)
    with pytest.raises(TransitionNotAllowed) as raised:
        attempt(dossier, action, at(days=1))
    assert raised.value.status is status and raised.value.action is action
    assert raised.value.allowed == dossier.available_actions()
    assert action.value not in raised.value.allowed
    assert snapshot(dossier) == before


@pytest.mark.parametrize("status", sorted(FINAL))
def test_final_statuses_allow_nothing(status):
    assert in_status(status).available_actions() == []


def test_available_actions_per_status():
    assert in_status(Status.REGISTERED).available_actions() == ["receive", "refuse", "withdraw"]
    assert in_status(Status.RECEIVED).available_actions() == [
        "start_processing",
        "request_supplement",
        "withdraw",
        "stop",
        "apologize",
    ]
    assert in_status(Status.RESOLVED).available_actions() == ["return"]
    assert in_status(Status.STOPPED).available_actions() == ["withdraw", "resume"]


# --- registration and receipt ---------------------------------------------------------------------


def test_registration_online_or_by_post_has_no_appointment_yet():
    for channel in (Channel.ONLINE, Channel.POSTAL):
        dossier = registered(channel)
        assert dossier.status is Status.REGISTERED and dossier.submitted_by == "portal@79"
        assert dossier.received_at is None and dossier.due_at is None
        [event] = dossier.events
        assert event.name == "registered" and event.data["received_at"] is None
        assert event.data["channel"] == int(channel)


def test_registration_at_the_counter_is_not_a_thing():
    with pytest.raises(InvalidArgument) as raised:
        registered(Channel.COUNTER)
    assert raised.value.field == "channel"


def test_receipt_computes_the_appointment_and_the_step_plan():
    dossier = received()
    assert dossier.status is Status.RECEIVED and dossier.received_at == MONDAY
    assert dossier.due_at == CAL.deadline(MONDAY, Duration.parse("10 working_days"))
    assert dossier.original_due_at == dossier.due_at
    dues = [step.due_at for step in dossier.plan]
    assert dues == sorted(dues) and dues[-1] == dossier.due_at
    # Cumulative allotments: appraisal 3 days, tax 3 more, approval 3 more, stamping the last day.
    assert dues[1] == CAL.deadline(MONDAY, "3 working_days")
    assert dues[2] == CAL.deadline(MONDAY, "6 working_days")
    assert [step.stage for step in dossier.plan] == [0, 1, 2, 3, 3, 4]


def test_receiving_a_registered_dossier_starts_the_clock_then():
    dossier = registered()
    dossier.receive(now=at(days=1), calendar=CAL)
    assert dossier.status is Status.RECEIVED and dossier.received_at == at(days=1)
    assert dossier.due_at == CAL.deadline(at(days=1), "10 working_days")
    assert [e.name for e in dossier.events] == ["registered", "received"]


def test_refusal_needs_a_reason_and_is_final():
    dossier = registered()
    with pytest.raises(InvalidArgument):
        dossier.refuse(reason="  ", now=at(hours=1))
    assert dossier.status is Status.REGISTERED
    dossier.refuse(reason="Không thuộc thẩm quyền", now=at(hours=1))
    assert dossier.status is Status.REFUSED
    assert dossier.events[-1].data["reason"] == "Không thuộc thẩm quyền"


# --- supplement ------------------------------------------------------------------------------------


def test_a_supplement_is_requested_once_listing_every_item():
    dossier = in_status(Status.PROCESSING)
    dossier.request_supplement(items=["Bản sao CCCD", "Sơ đồ thửa đất"], reason="Thiếu", now=at(days=1))
    assert dossier.events[-1].data["items"] == ["Bản sao CCCD", "Sơ đồ thửa đất"]
    dossier.supplement(now=at(days=2), calendar=CAL)
    before = snapshot(dossier)
    with pytest.raises(TransitionNotAllowed) as raised:
        dossier.request_supplement(items=["Một thứ khác"], reason="Quên", now=at(days=3))
    assert "already requested" in raised.value.reason
    assert "request_supplement" not in raised.value.allowed
    assert snapshot(dossier) == before


def test_the_once_rule_is_a_setting():
    dossier = in_status(Status.PROCESSING)
    rules = Rules(supplement_once=False)
    for day in (1, 3):
        dossier.request_supplement(items=["CCCD"], reason="Thiếu", now=at(days=day), rules=rules)
        dossier.supplement(now=at(days=day + 1), calendar=CAL)
    assert dossier.supplement_count == 2
    assert "request_supplement" in dossier.available_actions(rules)
    assert "request_supplement" not in dossier.available_actions()


@pytest.mark.parametrize("items", [[], ["  "], ["CCCD", "CCCD"]])
def test_a_supplement_request_lists_distinct_items(items):
    dossier = in_status(Status.PROCESSING)
    with pytest.raises(InvalidArgument) as raised:
        dossier.request_supplement(items=items, reason="Thiếu", now=at(days=1))
    assert raised.value.field == "items" and dossier.status is Status.PROCESSING
    assert dossier.supplement_count == 0


def test_a_completed_supplement_resets_filing_time_and_the_full_duration():
    dossier = in_status(Status.PROCESSING)
    dossier.request_supplement(items=["CCCD"], reason="Thiếu", now=at(days=1))
    assert dossier.clock_stopped_at == at(days=1)
    thursday = at(days=3, hours=1)
    dossier.supplement(now=thursday, calendar=CAL)
    assert dossier.status is Status.PROCESSING and dossier.clock_stopped_at is None
    assert dossier.received_at == thursday
    # Thu 5 Mar 10:00 is the new filing time; 10 working days after Thu 5: Fri 6 (1),
    # Mon 9 - Fri 13 (2-6), Mon 16 - Thu 19 (7-10) -> Thu 19 Mar 17:00
    assert dossier.due_at == dossier.original_due_at == datetime(2026, 3, 19, 17, tzinfo=VN)
    assert dossier.plan[-1].due_at == dossier.due_at


def test_a_supplement_completed_after_the_cutoff_counts_from_the_next_working_day():
    dossier = received(SHORT, now=datetime(2026, 12, 1, 9, tzinfo=VN))
    assert dossier.due_at == datetime(2026, 12, 4, 17, tzinfo=VN)  # Tue 1 Dec + 3: Wed, Thu, Fri 4
    dossier.start_processing(now=datetime(2026, 12, 1, 10, tzinfo=VN), calendar=CAL, to_unit="D1")
    dossier.request_supplement(items=["CCCD"], reason="Thiếu", now=datetime(2026, 12, 2, 9, tzinfo=VN))
    # complete on Thu 3 Dec at 16:00, after the cut-off: start Fri 4; Mon 7, Tue 8, Wed 9 -> Wed 9 Dec
    dossier.supplement(now=datetime(2026, 12, 3, 16, tzinfo=VN), calendar=CAL)
    assert dossier.due_at == dossier.original_due_at == datetime(2026, 12, 9, 17, tzinfo=VN)
    assert dossier.plan[-1].due_at == dossier.due_at


def test_a_supplement_requested_at_the_desk_hands_the_dossier_over_when_complete():
    dossier = in_status(Status.RECEIVED)
    dossier.request_supplement(items=["CCCD"], reason="Thiếu", now=at(hours=1))
    dossier.supplement(now=at(days=1), calendar=CAL)
    assert dossier.stage == 1 and [h.action for h in dossier.handovers] == ["supplement"]


# --- clock stops ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "restart"), [(Action.REQUEST_PAYMENT, Action.RECORD_PAYMENT), (Action.STOP, Action.RESUME)]
)
def test_payment_and_stop_shift_every_due_time_by_the_paused_office_time(stop, restart):
    dossier = in_status(Status.PROCESSING)
    plan = list(dossier.plan)
    # Received Mon 2 Mar 09:00, 10 working days -> Mon 16 Mar; steps: same day Mon 2, +3 Thu 5,
    # +3 Tue 10, +3 Fri 13, +1 Mon 16, same day Mon 16 (the last step's due is the dossier's)
    march = [datetime(2026, 3, day, 17, tzinfo=VN) for day in (2, 5, 10, 13, 16, 16)]
    assert [s.due_at for s in plan] == march and dossier.due_at == dossier.original_due_at == march[-1]
    # stopped Tue 3 Mar 09:00, resumed Tue 10 Mar 09:00: Wed 4, Thu 5, Fri 6, Mon 9, Tue 10 = 5
    # working days, so every due date ahead moves 5 working days, still at close of office
    stopped, resumed = at(days=1), at(days=8)
    attempt(dossier, stop, stopped)
    assert dossier.clock_stopped_at == stopped
    attempt(dossier, restart, resumed)
    assert dossier.status is Status.PROCESSING and dossier.clock_stopped_at is None
    moved = [datetime(2026, 3, day, 17, tzinfo=VN) for day in (12, 17, 20, 23, 23)]
    assert dossier.due_at == dossier.original_due_at == moved[-1]
    assert dossier.plan[0] == plan[0]  # the desk's stage was over before the stop
    assert [s.due_at for s in dossier.plan[1:]] == moved
    assert dossier.paused_seconds == CAL.working_time_between(stopped, resumed).total_seconds()


def test_working_days_exclude_the_clock_stops():
    dossier = in_status(Status.PROCESSING)
    drive(dossier, (Action.STOP, at(days=1)), (Action.RESUME, at(days=2)), (Action.APPRAISE, at(days=2)))
    drive(dossier, (Action.DECIDE, at(days=2)), (Action.SIGN, at(days=2)), (Action.STAMP, at(days=2)))
    dossier.resolve(now=at(days=3), calendar=CAL)
    office = CAL.working_time_between(MONDAY, at(days=3)) - CAL.working_time_between(at(days=1), at(days=2))
    assert dossier.working_days == round(office / CAL.day_length, 3) == 2.0


# --- apology --------------------------------------------------------------------------------------


def test_an_apology_moves_the_appointment_but_the_dossier_still_counts_late():
    dossier = in_status(Status.PROCESSING)
    original = dossier.original_due_at
    new_due = dossier.due_at + timedelta(days=5)
    dossier.apologize(reason="Cần xác minh", new_due_at=new_due, now=at(days=1))
    assert dossier.due_at == new_due and dossier.original_due_at == original
    assert dossier.status is Status.PROCESSING
    event = dossier.events[-1]
    assert event.name == "apologized" and event.data["new_due_at"] == new_due
    drive(dossier, Action.APPRAISE, Action.DECIDE, Action.SIGN, Action.STAMP)
    dossier.resolve(now=at(days=2), calendar=CAL)  # well before the original appointment
    assert dossier.timeliness == LATE


@pytest.mark.parametrize("offset", [timedelta(days=-30), timedelta(0), timedelta(hours=-1)])
def test_an_apology_must_extend_the_appointment_into_the_future(offset):
    dossier = in_status(Status.PROCESSING)
    with pytest.raises(InvalidArgument) as raised:
        dossier.apologize(reason="x", new_due_at=dossier.due_at + offset, now=at(hours=2))
    assert raised.value.field == "new_due_at" and dossier.apology_count == 0


# --- withdrawal, stop -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(TRANSITIONS[Action.WITHDRAW].allowed_from))
def test_withdrawal_any_time_before_the_result(status):
    dossier = in_status(status)
    dossier.withdraw(reason="Công dân xin rút", now=at(days=1))
    assert dossier.status is Status.WITHDRAWN and dossier.available_actions() == []


def test_no_withdrawal_once_resolved():
    assert Status.RESOLVED not in TRANSITIONS[Action.WITHDRAW].allowed_from
    with pytest.raises(TransitionNotAllowed):
        in_status(Status.RESOLVED).withdraw(reason="muộn", now=at(days=5))


@pytest.mark.parametrize(
    "done", [(Action.DECIDE,), (Action.DECIDE, Action.SIGN), (Action.DECIDE, Action.SIGN, Action.STAMP)]
)
def test_no_withdrawal_once_the_result_is_decided(done):
    dossier = drive(in_status(Status.PROCESSING), Action.APPRAISE, *done)
    assert dossier.status is Status.PROCESSING and "withdraw" not in dossier.available_actions()
    with pytest.raises(TransitionNotAllowed) as raised:
        dossier.withdraw(reason="Công dân xin rút", now=at(days=2))
    assert "already decided" in raised.value.reason and dossier.status is Status.PROCESSING
    # appraised but not decided yet: still possible
    undecided = drive(in_status(Status.PROCESSING), Action.APPRAISE)
    undecided.withdraw(reason="Công dân xin rút", now=at(days=2))
    assert undecided.status is Status.WITHDRAWN


# --- processing: appraise, transfer, decide, sign, stamp ---------------------------------------------


def test_the_interlinked_path_hands_over_stage_by_stage():
    dossier = received()
    dossier.start_processing(now=at(hours=2), calendar=CAL, to_unit="A")
    dossier.appraise(now=at(hours=3), calendar=CAL)
    dossier.transfer(to_unit="TAX", now=at(days=1), calendar=CAL)
    assert dossier.handling_unit == "TAX" and dossier.receiving_unit == "D1"
    event = dossier.events[-1]
    assert event.name == "transferred"
    assert (event.data["from_unit"], event.data["to_unit"]) == ("A", "TAX")
    assert event.data["step"] == "transfer" and event.data["finished_step"] == "appraise"
    assert event.data["step_due_at"] == dossier.plan[2].due_at
    # plan dues (see the stop test): Mon 2, Thu 5, Tue 10, Fri 13, Mon 16, Mon 16 March
    assert event.data["step_timeliness"] == EARLY  # Tue 3, the appraisal was due Thu 5
    dossier.transfer(to_unit="A", now=at(days=9), calendar=CAL)  # Wed 11, the tax step was due Tue 10
    assert dossier.events[-1].data["step_timeliness"] == LATE
    with pytest.raises(TransitionNotAllowed) as raised:
        dossier.transfer(to_unit="B", now=at(days=9), calendar=CAL)
    assert "no further agency" in raised.value.reason
    drive(dossier, Action.APPRAISE, Action.DECIDE, Action.SIGN, Action.STAMP)
    dossier.resolve(now=at(days=10), calendar=CAL)
    dossier.delivered_by_post(now=at(days=11), calendar=CAL)
    rows = [(h.action, h.from_unit, h.to_unit, h.step, h.timeliness) for h in dossier.handovers]
    assert rows == [
        ("start_processing", "D1", "A", "receive", ON_TIME),
        ("transfer", "A", "TAX", "appraise", EARLY),
        ("transfer", "TAX", "A", "transfer", LATE),
        ("resolve", "A", "D1", "stamp", EARLY),  # Thu 12, due Mon 16
        ("return", "D1", None, "return", EARLY),  # Fri 13, due Mon 16
    ]
    for handover in dossier.handovers:
        last_of_stage = [step for step in dossier.plan if step.stage == handover.stage][-1]
        assert (handover.step, handover.step_due_at) == (last_of_stage.code, last_of_stage.due_at)
    assert dossier.events[-1].data["method"] == "postal" and dossier.status is Status.RETURNED


def test_a_transfer_goes_somewhere_else():
    dossier = in_status(Status.PROCESSING)
    with pytest.raises(InvalidArgument) as raised:
        dossier.transfer(to_unit="A", now=at(days=1), calendar=CAL)
    assert raised.value.field == "to_unit" and dossier.handling_unit == "A"


def test_a_single_agency_plan_has_nothing_to_transfer_to():
    dossier = received(SHORT)
    dossier.start_processing(now=at(hours=1), calendar=CAL, to_unit="D1")
    assert "transfer" not in dossier.available_actions()


def test_the_order_appraise_decide_sign_stamp_resolve():
    dossier = in_status(Status.PROCESSING)
    for action, why in [
        (Action.DECIDE, "appraised before"),
        (Action.SIGN, "no decision"),
        (Action.STAMP, "signed"),
        (Action.RESOLVE, "no decision"),
    ]:
        with pytest.raises(TransitionNotAllowed) as raised:
            attempt(dossier, action, at(days=1))
        assert why in raised.value.reason
    drive(dossier, Action.APPRAISE, Action.DECIDE)
    with pytest.raises(TransitionNotAllowed, match="signed and stamped"):
        dossier.resolve(now=at(days=1), calendar=CAL)
    with pytest.raises(TransitionNotAllowed, match="already decided"):
        dossier.appraise(now=at(days=1), calendar=CAL)
    drive(dossier, Action.SIGN)
    with pytest.raises(TransitionNotAllowed, match="already signed"):
        dossier.sign(signer_role="leader", now=at(days=1))
    drive(dossier, Action.STAMP, Action.RESOLVE)
    assert dossier.status is Status.RESOLVED and dossier.decision == "approved"


def test_a_rejection_is_reasoned_signed_and_sealed_before_it_is_resolved():
    dossier = drive(in_status(Status.PROCESSING), Action.APPRAISE)
    with pytest.raises(InvalidArgument):
        dossier.decide(decision=Decision.REJECTED, reason=None, now=at(days=1))
    dossier.decide(decision=Decision.REJECTED, reason="Không đủ điều kiện", now=at(days=1))
    assert Action.RESOLVE.value not in dossier.available_actions()
    with pytest.raises(TransitionNotAllowed, match="a rejection must be signed and stamped"):
        dossier.resolve(now=at(days=1), calendar=CAL)
    dossier.sign(signer_role="leader", now=at(days=1))
    with pytest.raises(TransitionNotAllowed, match="a rejection must be signed and stamped"):
        dossier.resolve(now=at(days=1), calendar=CAL)
    assert dossier.status is Status.PROCESSING
    dossier.stamp(now=at(days=1))
    dossier.resolve(now=at(days=1), calendar=CAL)
    assert dossier.events[-1].data["decision"] == "rejected" and dossier.status is Status.RESOLVED


@pytest.mark.parametrize(
    ("resolved_at", "expected"),
    [
        (datetime(2026, 3, 4, 16, 0, tzinfo=VN), EARLY),  # Wednesday, due Thursday
        (datetime(2026, 3, 5, 16, 59, tzinfo=VN), ON_TIME),
        (datetime(2026, 3, 5, 17, 0, tzinfo=VN), ON_TIME),  # close of office is still on time
        (datetime(2026, 3, 5, 17, 30, tzinfo=VN), ON_TIME),  # so is any hour of the due date
        (datetime(2026, 3, 6, 8, 0, tzinfo=VN), LATE),
    ],
)
def test_timeliness_is_judged_on_vietnam_dates_against_the_original_appointment(resolved_at, expected):
    dossier = received(SHORT)
    # Mon 2 Mar 09:00, 3 working days: Tue 3, Wed 4, Thu 5
    assert dossier.due_at == datetime(2026, 3, 5, 17, 0, tzinfo=VN)
    dossier.start_processing(now=at(hours=1), calendar=CAL, to_unit="D1")
    drive(dossier, Action.APPRAISE, Action.DECIDE, Action.SIGN, Action.STAMP)
    dossier.resolve(now=resolved_at.astimezone(UTC), calendar=CAL)
    assert dossier.timeliness == expected
    assert dossier.events[-1].data["timeliness"] == expected


# --- events ---------------------------------------------------------------------------------------


def test_every_event_carries_the_status_facts_and_nothing_personal():
    dossier = in_status(Status.RETURNED)
    assert [e.name for e in dossier.events] == [
        "received",
        "processing_started",
        "appraised",
        "decided",
        "signed",
        "stamped",
        "resolved",
        "returned",
    ]
    assert dossier.event_sequence == len(dossier.events)
    for event in dossier.events:
        for key in (
            "code",
            "status",
            "status_name",
            "received_at",
            "due_at",
            "original_due_at",
            "occurred_at",
        ):
            assert key in event.data
        assert not set(APPLICANT.values()) & {str(v) for v in event.data.values()}
    assert [e.data["status"] for e in dossier.events] == [2, 4, 4, 4, 4, 4, 9, 10]


# --- the overdue watch ------------------------------------------------------------------------------


def watch(dossier: Dossier, now: datetime) -> list[str]:
    before = len(dossier.events)
    dossier.watch(now=now, calendar=CAL, lead=LEAD)
    return [(e.name, e.data.get("step")) for e in dossier.events[before:]]


def test_due_soon_then_overdue_once_each():
    dossier = in_status(Status.PROCESSING)
    dossier.schedule_watch(CAL, LEAD)
    assert dossier.watch_at == dossier.plan[1].due_at + timedelta(microseconds=1)  # the first stage due
    warn = warning_time(CAL, dossier.received_at, dossier.due_at, LEAD)
    assert CAL.working_time_between(warn, dossier.due_at) <= LEAD
    assert watch(dossier, warn - timedelta(minutes=1)) == [("overdue", "appraise")]
    assert watch(dossier, warn) == [("due_soon", None)]
    assert watch(dossier, warn + timedelta(minutes=5)) == []
    assert watch(dossier, dossier.due_at) == []  # a due time at close of office is not passed at 17:00
    assert watch(dossier, dossier.due_at + timedelta(minutes=1)) == [("overdue", None)]
    assert watch(dossier, dossier.due_at + timedelta(days=3)) == []
    assert dossier.watch_at is None
    overdue = dossier.events[-1].data
    assert overdue["overdue_since"] == dossier.due_at and overdue["step_due_at"] is None


def test_an_apology_gives_a_new_due_time_to_watch():
    dossier = in_status(Status.PROCESSING)
    late = dossier.due_at + timedelta(minutes=1)
    watch(dossier, late)
    new_due = dossier.due_at + timedelta(days=5)
    dossier.apologize(reason="Chậm", new_due_at=new_due, now=late)
    assert watch(dossier, new_due + timedelta(minutes=1)) == [("overdue", None)]
    assert dossier.events[-1].data["overdue_since"] == new_due
    assert watch(dossier, new_due + timedelta(days=1)) == []


def test_a_stopped_clock_is_not_watched():
    dossier = in_status(Status.STOPPED)
    assert watch(dossier, dossier.due_at + timedelta(days=30)) == []
    assert dossier.watch_at is None


def test_a_short_procedure_is_warned_half_way_not_at_receipt():
    dossier = received(Procedure(duration="same_day", steps=SHORT.steps[:1] + SHORT.steps[-1:]))
    warn = warning_time(CAL, dossier.received_at, dossier.due_at, LEAD)
    assert warn == CAL.add_working_time(MONDAY, CAL.working_time_between(MONDAY, dossier.due_at) / 2)
    assert watch(dossier, MONDAY + timedelta(minutes=1)) == []


# --- timing helpers, agencies ----------------------------------------------------------------------


def test_step_due_times_follow_cumulative_allotments():
    # Mon 2 Mar: the desk's same-day step closes Mon 2; 2 days after it Wed 4; 1 more Thu 5; the
    # return step the same day, which is also 3 working days after Mon 2 (the dossier's due)
    dues = step_due_times(
        CAL, MONDAY, "3 working_days", ["same_day", "2 working_days", "1 working_days", "same_day"]
    )
    assert dues == [datetime(2026, 3, d, 17, tzinfo=VN) for d in (2, 4, 5, 5)]
    assert dues[-1] == CAL.deadline(MONDAY, "3 working_days")
    hours = step_due_times(CAL, MONDAY, "4 working_hours", ["1 working_hours", "3 working_hours"])
    assert hours == [MONDAY + timedelta(hours=1), datetime(2026, 3, 2, 14, 30, tzinfo=VN)]


HOURLY = Procedure(
    duration="4 working_hours",
    steps=(
        Step("receive", "Tiếp nhận", "receiving_unit", "1 working_hours"),
        Step("appraise", "Thẩm định", "commune", "3 working_hours"),
    ),
)


@pytest.mark.parametrize(
    ("resolved_at", "expected"),
    [
        (datetime(2026, 3, 2, 14, 30, tzinfo=VN), ON_TIME),  # at the due instant
        (datetime(2026, 3, 2, 15, 0, tzinfo=VN), LATE),  # same date, after the due instant
    ],
)
def test_an_hour_based_dossier_is_judged_by_the_due_instant(resolved_at, expected):
    dossier = received(HOURLY)
    # Mon 2 Mar 09:00 + 4 working hours: 09:00-11:30 (2.5 h), 13:00-14:30 (1.5 h) -> 14:30
    assert dossier.due_at == datetime(2026, 3, 2, 14, 30, tzinfo=VN)
    dossier.start_processing(now=at(hours=0.5), calendar=CAL, to_unit="D1")
    drive(dossier, *[(a, at(hours=1)) for a in (Action.APPRAISE, Action.DECIDE, Action.SIGN, Action.STAMP)])
    dossier.resolve(now=resolved_at.astimezone(UTC), calendar=CAL)
    assert dossier.timeliness == expected
    assert judge_timeliness(resolved_at, dossier.original_due_at, "working_hours", VN) == expected


def test_plan_agencies_resolve_to_units_of_the_map():
    units = UnitRegistry.from_file(EXAMPLE_3LEVEL_FILE)
    assert agency_unit(units, "30280", "receiving_unit") == "30280"
    assert agency_unit(units, "30280", "commune") == "30280"
    assert agency_unit(units, "30280", "district") == "883"
    assert agency_unit(units, "30280", "district:TNMT") == "883-TNMT"
    assert agency_unit(units, "30280", "province:STP") == "89-STP"
    assert agency_unit(units, "30280", "province:VPDKDD") == "89"  # no such office in the map
    assert agency_unit(units, "30280", "tax") == "89-CT"
    assert agency_unit(units, "30280", "police") is None  # a different organisation: never guessed


def test_the_real_interlinked_birth_procedure_runs_through():
    procedure = load_catalogue().get("1.012766", at=MONDAY)
    dossier = received(procedure)
    dossier.start_processing(now=at(hours=1), calendar=CAL, to_unit="C1")
    dossier.appraise(now=at(hours=2), calendar=CAL)
    dossier.transfer(to_unit="POLICE", now=at(days=1), calendar=CAL)
    dossier.transfer(to_unit="BHXH", now=at(days=1, hours=2), calendar=CAL)
    assert "transfer" not in dossier.available_actions()
    drive(dossier, Action.DECIDE, Action.SIGN, Action.STAMP, Action.RESOLVE)
    assert dossier.timeliness == EARLY and dossier.handovers[-1].to_unit == "D1"


# --- random sequences -------------------------------------------------------------------------------

ENDINGS = {Action.WITHDRAW.value, Action.REFUSE.value}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.sampled_from(["registered", "received"]), data=st.data())
def test_random_action_sequences_keep_the_invariants(start, data):
    dossier = registered() if start == "registered" else received()
    now = MONDAY
    for _ in range(data.draw(st.integers(min_value=0, max_value=40), label="steps")):
        now += timedelta(minutes=data.draw(st.integers(min_value=0, max_value=6 * 24 * 60), label="minutes"))
        # Mostly what the rules allow (so sequences get deep), sometimes anything (so refusals are tried).
        mode = data.draw(st.sampled_from(["allowed", "allowed", "allowed", "any", "watch"]), label="mode")
        allowed = dossier.available_actions()
        onward = [Action(a) for a in allowed if a not in ENDINGS] or [Action(a) for a in allowed]
        if mode == "allowed" and onward:
            action = data.draw(st.sampled_from(onward), label="action")
        elif mode == "watch":
            action = "watch"
        else:
            action = data.draw(st.sampled_from(list(Action)), label="action")
        before, events_before = snapshot(dossier), len(dossier.events)
        original_due = dossier.original_due_at
        if action == "watch":
            dossier.watch(now=now, calendar=CAL, lead=LEAD)
        else:
            try:
                attempt(
                    dossier,
                    action,
                    now,
                    decision=data.draw(st.sampled_from(list(Decision)), label="decision"),
                    to_unit=data.draw(st.sampled_from(["A", "TAX", "B"]), label="unit"),
                )
            except (TransitionNotAllowed, InvalidArgument):
                assert snapshot(dossier) == before, f"{action} failed but changed the dossier"
                continue
            assert action.value in allowed, f"{action} succeeded though not allowed"
            assert before["status"] not in FINAL, f"{action} changed a final dossier"
            assert len(dossier.events) > events_before, f"{action} recorded no event"
            if action is Action.APOLOGIZE:
                assert dossier.original_due_at == original_due
        assert dossier.status in Status
        assert dossier.event_sequence == len(dossier.events)
        new_statuses = [e.data["status"] for e in dossier.events[events_before:]]
        assert new_statuses == [int(dossier.status)] * len(new_statuses)
        assert dossier.supplement_count <= 1
        if dossier.due_at is not None:
            assert dossier.original_due_at is not None and dossier.due_at >= dossier.original_due_at
        if dossier.timeliness is not None:
            assert dossier.timeliness in TIMELINESS
            resolved_day = dossier.resolved_at.astimezone(VN).date()
            due_day = dossier.original_due_at.astimezone(VN).date()
            if dossier.timeliness == EARLY:
                assert resolved_day < due_day and not dossier.apology_count
            elif dossier.timeliness == ON_TIME:
                assert resolved_day == due_day and not dossier.apology_count
            else:
                assert dossier.apology_count or dossier.resolved_at > dossier.original_due_at
        for event in dossier.events:
            assert APPLICANT["id_number"] not in str(event.data)


# --- no 500 for a domain error at filing -----------------------------------------------------------


def test_no_appointment_computable_is_a_domain_error_not_a_crash():
    # the calendar covers up to 9998: ten working days after 31 Dec 9998 cannot be computed
    with pytest.raises(DomainError, match="no appointment can be computed"):
        received(now=datetime(9998, 12, 31, 9, tzinfo=VN))


def test_filing_problems_are_4xx():
    from shared.http import problem_for

    with pytest.raises(DomainError) as raised:
        received(now=datetime(9998, 12, 31, 9, tzinfo=VN))
    problem = problem_for(raised.value)
    assert problem.status == 409 and "no appointment" in problem.detail
    with pytest.raises(InvalidArgument) as invalid:
        registered(channel=Channel.COUNTER)
    problem = problem_for(invalid.value)
    assert problem.status == 422 and problem.errors[0]["pointer"] == "/channel"
