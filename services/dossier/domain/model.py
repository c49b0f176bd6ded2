"""The dossier (hồ sơ) and its life, as plain Python: no framework, no SQL.

Statuses carry the national portal's codes (docs/domain.md §5). Every change of state goes through a method
of :class:`Dossier`, which checks the rule and records a domain event (:mod:`.events`); the unit of
work that loaded the dossier writes those to the outbox at commit.

Where to look:

* ``@transition`` on each action's method of :class:`Dossier` — which statuses the action may start
  from and its extra rule (supplement once, decide after appraisal, sign after deciding …), collected
  in ``TRANSITIONS``; the guards are the plain functions just above the class.
* Time is always passed in (``now``, ``calendar``): the model never reads a clock, so every rule runs
  in a unit test in microseconds.
* The procedure's step plan is grouped into *stages*: consecutive steps done by one agency. A stage
  ends when the dossier changes hands (start of processing, transfer, resolution, return); each
  hand-over is a row of the process-control slip (Phiếu kiểm soát quá trình giải quyết hồ sơ).

To add an action: add it to :class:`Action`, write its method here under ``@transition``, its event in
:mod:`.events`, and its entry in the registry :mod:`services.dossier.actions` (ARCHITECTURE.md).
What another service reports (:class:`PostalReport`, :class:`SignatureReport`) is declared the same way,
without an endpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from services.dossier.domain.events import (
    Apologized,
    Appraised,
    Decided,
    DossierEvent,
    DueSoon,
    Overdue,
    Paid,
    PaymentRequested,
    ProcessingStarted,
    Received,
    Refused,
    Registered,
    Resolved,
    Resumed,
    Returned,
    SentBackForAppraisal,
    Signed,
    Stamped,
    Stopped,
    Supplemented,
    SupplementRequested,
    Transferred,
    Withdrawn,
)
from services.dossier.domain.timing import step_due_times, warning_time
from shared.domain import Aggregate, Conflict, DomainError, InvalidArgument
from shared.timeliness import is_overdue, judge_timeliness
from shared.vocabulary import (
    CLOCK_RUNNING,
    OVERDUE_CANDIDATES,
    Channel,
    Decision,
    ReturnMethod,
    Status,
    StatusFacts,
    Timeliness,
)
from shared.workcalendar import Duration, WorkingCalendar


class Action(StrEnum):
    """What people do to a dossier; each is one method of :class:`Dossier`."""

    RECEIVE = "receive"
    REFUSE = "refuse"
    START_PROCESSING = "start_processing"
    REQUEST_SUPPLEMENT = "request_supplement"
    SUPPLEMENT = "supplement"
    REQUEST_PAYMENT = "request_payment"
    RECORD_PAYMENT = "record_payment"
    APPRAISE = "appraise"
    TRANSFER = "transfer"
    DECIDE = "decide"
    SIGN = "sign"
    STAMP = "stamp"
    RESOLVE = "resolve"
    RETURN = "return"
    WITHDRAW = "withdraw"
    STOP = "stop"
    RESUME = "resume"
    APOLOGIZE = "apologize"


class PostalReport(StrEnum):
    """What the postal service reports about a dossier (services/dossier/postal_intake.py): not desk
    actions — no endpoint, never in ``allowed_actions`` — but their rules are declared the same way.
    A dossier that came by post is filed by its hand-over record only, and a result goes back by post
    only when the operator reports it delivered (Decision 45/2016)."""

    PICKUP_RECEIVED = "pickup_received"  # the desk received it on the pickup's co-signed record
    PICKUP_REFUSED = "pickup_refused"  # the desk refused it on that record (Form 03)
    PICKUP_FAILED = "pickup_failed"  # the pickup was lost or cancelled: it never reached the desk
    DELIVERED = "delivered"  # the result reached the applicant: its return, by post
    DELIVERY_FAILED = "delivery_failed"  # lost, cancelled or sent back: the desk gets a task
    DELIVERY_ORDERED = "delivery_ordered"  # a new delivery answers the desk's task


class SignatureReport(StrEnum):
    """What the e-signature service reports besides the sign and stamp steps it performs digitally
    (services/dossier/esign_intake.py): not a desk action, declared the same way."""

    REFUSED = "signature_refused"  # the leader refused to sign: the dossier goes back to appraisal


# What another service reports about a dossier, through its intake.
Report = PostalReport | SignatureReport

S = Status
# At the applicant's request, any time before the result is decided (guard: no decision yet).
WITHDRAWABLE = {S.REGISTERED, S.RECEIVED, S.PROCESSING, S.SUPPLEMENT_REQUESTED, S.AWAITING_PAYMENT, S.STOPPED}


class TransitionNotAllowed(Conflict):
    """The action is not possible now (a Conflict, HTTP 409); nothing changed. Carries what *is* possible."""

    def __init__(self, action: Action | Report, status: Status, allowed: list[str], reason: str) -> None:
        super().__init__(
            reason, current_status=int(status), current_status_name=status.label, allowed_actions=allowed
        )
        self.action, self.status, self.allowed, self.reason = action, status, allowed, reason


@dataclass(frozen=True)
class Rules:
    """Rules a province may configure (docs/domain.md: *configurable*)."""

    # One supplement request per dossier, listing every item (Decree 61/2018; wording unconfirmed).
    supplement_once: bool = True


DEFAULT_RULES = Rules()


class StepTerms(Protocol):
    code: str
    name: str
    agency: str
    allotment: str


class ProcedureTerms(Protocol):
    """What the lifecycle needs of a procedure version (the catalogue's ``Procedure`` has it)."""

    code: str
    version: int
    field: str
    duration: str
    online_level: str | None

    @property
    def steps(self) -> Sequence[StepTerms]: ...


@dataclass(frozen=True, kw_only=True)
class PlanStep:
    """One step of the dossier's copy of the procedure's plan, with its own due time."""

    code: str
    name: str
    agency: str
    allotment: str
    stage: int
    due_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Handover:
    """A row of the process-control slip: a stage finished and the dossier changed hands."""

    at: datetime
    action: str
    from_unit: str
    to_unit: str | None  # None: handed to the applicant
    stage: int
    step: str  # the last step of the finished stage
    step_name: str
    step_due_at: datetime | None
    timeliness: str | None


@dataclass(frozen=True, kw_only=True)
class Notice:
    """A notice the dossier was given (Form 02 supplement request, 03 refusal, 04 apology, 05 stop):
    what it said, kept on the dossier so the form is built from domain state, not a request's copy."""

    action: Action
    issued_at: datetime
    reason: str
    items: tuple[str, ...] = ()  # Form 02: every missing or wrong item
    new_due_at: datetime | None = None  # Form 04: the new appointment


# Why a delivery of the result ended without reaching the applicant (the desk's task says which).
DELIVERY_TROUBLES = ("delivery_lost", "delivery_cancelled", "returned_to_sender")
# The pickup's ends that close a dossier which never reached the desk (shared.vocabulary's codes).
PICKUP_FAILURES = {
    "pickup_lost": "Bưu chính báo thất lạc hồ sơ trên đường chuyển đến bộ phận một cửa",
    "pickup_cancelled": "Đơn nhận hồ sơ tại nhà qua bưu chính đã bị hủy trước khi hồ sơ đến bộ phận một cửa",
}


@dataclass(frozen=True, kw_only=True)
class Task:
    """Something the desk must act on, opened by another service's report and closed by what answers
    it: a result whose delivery failed is returned at the counter or delivered again."""

    kind: str  # return_result
    cause: str  # one of DELIVERY_TROUBLES
    since: datetime
    shipment_id: str


def _stages(steps: Iterable[StepTerms]) -> list[PlanStep]:
    """Consecutive steps of one agency form a stage: the dossier stays in the same hands."""
    plan: list[PlanStep] = []
    for step in steps:
        stage = 0 if not plan else plan[-1].stage + (plan[-1].agency != step.agency)
        plan.append(
            PlanStep(
                code=step.code, name=step.name, agency=step.agency, allotment=step.allotment, stage=stage
            )
        )
    return plan


Guard = Callable[["Dossier", Rules], "str | None"]


@dataclass(frozen=True)
class Transition:
    """What the lifecycle allows of one action: the statuses it may start from, and the extra rule
    (``guard``) that must hold; ``past`` words the refusal ("… cannot be {past}")."""

    action: Action | Report
    allowed_from: frozenset[Status]
    past: str
    guard: Guard | None = None


# Filled by @transition on the methods of Dossier: one entry per action, next to its method.
TRANSITIONS: dict[Action, Transition] = {}
# The same for what other services report.
REPORT_TRANSITIONS: dict[Report, Transition] = {}


def _rule(action: Action | Report) -> Transition:
    return TRANSITIONS[action] if isinstance(action, Action) else REPORT_TRANSITIONS[action]


def transition(
    action: Action | Report, allowed_from: Iterable[Status], past: str, *, guard: Guard | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare ``action``'s rules on the method that performs it; the method runs only when they hold
    (else TransitionNotAllowed, nothing changed). A ``rules`` argument of the method is the one checked."""

    def declare(method: Callable[..., None]) -> Callable[..., None]:
        table: dict[Any, Transition] = TRANSITIONS if isinstance(action, Action) else REPORT_TRANSITIONS
        if action in table:
            raise ValueError(f"action {action} declared twice")
        table[action] = Transition(action, frozenset(allowed_from), past, guard)

        @functools.wraps(method)
        def checked(self: Dossier, *args: Any, **kwargs: Any) -> None:
            self._check(action, kwargs.get("rules", DEFAULT_RULES))
            return method(self, *args, **kwargs)

        return checked

    return declare


def _not_by_post(dossier: Dossier, rules: Rules) -> str | None:
    if dossier.channel == Channel.POSTAL:
        return (
            "a dossier that came by post is received or refused only on its pickup's hand-over record, "
            "co-signed with the postal worker in the postal service"
        )
    return None


def _by_post(dossier: Dossier, rules: Rules) -> str | None:
    return None if dossier.channel == Channel.POSTAL else "the dossier did not come by post"


def _supplement_once(dossier: Dossier, rules: Rules) -> str | None:
    if rules.supplement_once and dossier.supplement_count:
        return (
            "a supplement was already requested for this dossier; the request must list every "
            "missing item at once, so a second one is not allowed"
        )
    return None


def _withdrawable(dossier: Dossier, rules: Rules) -> str | None:
    # The result is decided once there is a decision: withdrawal comes before that (docs/domain.md §6).
    return (
        "the result is already decided; the dossier can no longer be withdrawn" if dossier.decision else None
    )


def _not_yet_decided(dossier: Dossier, rules: Rules) -> str | None:
    return "the dossier is already decided" if dossier.decision else None


def _has_next_agency(dossier: Dossier, rules: Rules) -> str | None:
    if not dossier.plan or dossier.stage + 1 >= dossier.plan[-1].stage:
        return "the procedure's plan has no further agency to transfer the dossier to"
    return None


def _appraised_not_decided(dossier: Dossier, rules: Rules) -> str | None:
    if dossier.decision:
        return "the dossier is already decided"
    if not dossier.appraisal_count:
        return "the dossier must be appraised before it is decided"
    return None


def _decided_not_signed(dossier: Dossier, rules: Rules) -> str | None:
    if not dossier.decision:
        return "there is no decision to sign yet"
    return "the result is already signed" if dossier.signed_at else None


def _signed_not_stamped(dossier: Dossier, rules: Rules) -> str | None:
    if not dossier.signed_at:
        return "the result must be signed by the competent person before it is stamped"
    return "the result is already stamped" if dossier.stamped_at else None


def _ready(dossier: Dossier, rules: Rules) -> str | None:
    if not dossier.decision:
        return "the dossier has no decision yet"
    # A reasoned rejection is a result document too: signed by the competent person, then sealed.
    if not dossier.stamped_at:
        kind = "an approved result" if dossier.decision == Decision.APPROVED else "a rejection"
        return f"{kind} must be signed and stamped before it is ready"
    return None


@dataclass(frozen=True, kw_only=True)
class Intake:
    """What Decision 766 counts of a filing (docs/domain.md §12): how many of the dossier's components
    (thành phần hồ sơ) were digitised at the desk (số hóa), reused from the store of digitised papers
    (tái sử dụng) or taken from a national database, and whether the filing account is verified with
    VNeID. Counts and a flag: the papers and the identity stay out of it."""

    digitised: int = 0
    reused: int = 0
    national: int = 0
    vneid_verified: bool = False

    def __post_init__(self) -> None:
        for name in ("digitised", "reused", "national"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"components.{name}", "a count of components is never negative")


NO_INTAKE = Intake()


@dataclass(kw_only=True)
class Dossier(Aggregate):
    """A dossier filed with a one-stop desk (receiving unit) and handled by an agency."""

    code: str
    procedure_code: str
    procedure_version: int
    procedure_field: str
    duration: str
    online_level: str | None = None
    receiving_unit: str
    handling_unit: str
    channel: Channel
    return_method: ReturnMethod
    status: Status
    applicant: dict[str, Any]
    created_at: datetime
    submitted_by: str | None = None  # the portal (token sub) that registered it
    # What Decision 766 counts of the filing (docs/domain.md §12): components digitised at the desk,
    # reused from the store, taken from a national database; the filing account verified with VNeID.
    components_digitised: int = 0
    components_reused: int = 0
    components_national: int = 0
    vneid_verified: bool = False
    registered_at: datetime | None = None
    # Filing time: receipt, reset when a requested supplement is complete.
    received_at: datetime | None = None
    # The current appointment (moves with clock stops and apologies).
    due_at: datetime | None = None
    # What timeliness is judged against (moves with clock stops and supplements, never apologies).
    original_due_at: datetime | None = None
    clock_stopped_at: datetime | None = None
    paused_seconds: float = 0.0  # office time the clock stood still since filing
    supplement_count: int = 0
    appraisal_count: int = 0
    apology_count: int = 0
    decision: str | None = None
    decision_reason: str | None = None
    signed_at: datetime | None = None
    stamped_at: datetime | None = None
    resolved_at: datetime | None = None
    returned_at: datetime | None = None
    timeliness: str | None = None
    working_days: float | None = None
    plan: list[PlanStep] = field(default_factory=list)
    stage: int = 0
    watch_flags: list[str] = field(default_factory=list)
    watch_at: datetime | None = None
    event_sequence: int = 0
    events: list[DossierEvent] = field(default_factory=list, repr=False, compare=False)
    handovers: list[Handover] = field(default_factory=list, repr=False, compare=False)
    notices: list[Notice] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)  # open; replaced, never mutated (a JSON column)

    # --- creation ----------------------------------------------------------------------------

    @classmethod
    def _new(
        cls,
        *,
        code: str,
        procedure: ProcedureTerms,
        receiving_unit: str,
        channel: Channel,
        return_method: ReturnMethod,
        applicant: dict[str, Any],
        status: Status,
        now: datetime,
        intake: Intake,
    ) -> Dossier:
        return cls(
            code=code,
            procedure_code=procedure.code,
            procedure_version=procedure.version,
            procedure_field=procedure.field,
            duration=str(Duration.parse(procedure.duration)),
            online_level=procedure.online_level,
            receiving_unit=receiving_unit,
            handling_unit=receiving_unit,
            channel=channel,
            return_method=return_method,
            status=status,
            applicant=applicant,
            created_at=now,
            plan=_stages(procedure.steps),
            components_digitised=intake.digitised,
            components_reused=intake.reused,
            components_national=intake.national,
            vneid_verified=intake.vneid_verified,
        )

    @classmethod
    def register(
        cls,
        *,
        code: str,
        procedure: ProcedureTerms,
        receiving_unit: str,
        channel: Channel,
        return_method: ReturnMethod,
        applicant: dict[str, Any],
        submitted_by: str,
        now: datetime,
        intake: Intake = NO_INTAKE,
    ) -> Dossier:
        """Mới đăng ký: filed online or handed to the postal operator; the desk has not checked it."""
        if channel not in (Channel.ONLINE, Channel.POSTAL):
            raise InvalidArgument("channel", "only online and postal dossiers are registered before receipt")
        dossier = cls._new(
            code=code,
            procedure=procedure,
            receiving_unit=receiving_unit,
            channel=channel,
            return_method=return_method,
            applicant=applicant,
            status=Status.REGISTERED,
            now=now,
            intake=intake,
        )
        dossier.submitted_by = submitted_by
        dossier.registered_at = now
        dossier._record(Registered, now, **dossier._intake())
        return dossier

    @classmethod
    def receive_at_counter(
        cls,
        *,
        code: str,
        procedure: ProcedureTerms,
        receiving_unit: str,
        channel: Channel,
        return_method: ReturnMethod,
        applicant: dict[str, Any],
        now: datetime,
        calendar: WorkingCalendar,
        intake: Intake = NO_INTAKE,
    ) -> Dossier:
        """Tiếp nhận at the desk: complete and valid, received with its appointment (Form 01). A dossier
        that came by post is not: it is registered, then filed by its hand-over record."""
        if channel == Channel.POSTAL:
            raise InvalidArgument(
                "channel",
                "a dossier that came by post is registered by the postal service and filed by its "
                "hand-over record, not received at the desk",
            )
        dossier = cls._new(
            code=code,
            procedure=procedure,
            receiving_unit=receiving_unit,
            channel=channel,
            return_method=return_method,
            applicant=applicant,
            status=Status.RECEIVED,
            now=now,
            intake=intake,
        )
        dossier._file(now, calendar)
        dossier._record(Received, now, **dossier._intake())
        return dossier

    def number(self, code: str) -> None:
        """Give a new dossier its code (mã hồ sơ), once: the last step of its filing, because the
        daily counter it comes from stays locked until the filing commits. The events it recorded
        meanwhile carry the code too."""
        if self.code:
            raise ValueError(f"dossier {self.code} already has its code")
        self.code = code
        self.events = [replace(event, facts=replace(event.facts, code=code)) for event in self.events]

    # --- the desk ----------------------------------------------------------------------------

    @transition(Action.RECEIVE, {S.REGISTERED}, "received", guard=_not_by_post)
    def receive(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """Receive a dossier registered online: the filing time is now."""
        self._receive(now, calendar)

    @transition(
        PostalReport.PICKUP_RECEIVED, {S.REGISTERED}, "received by its hand-over record", guard=_by_post
    )
    def receive_by_record(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """The desk received a picked-up dossier on the co-signed hand-over record: filed at its time."""
        self._receive(now, calendar)

    @transition(Action.REFUSE, {S.REGISTERED}, "refused", guard=_not_by_post)
    def refuse(self, *, reason: str, now: datetime) -> None:
        """Không được tiếp nhận (Form 03): refused at the desk with a reason; final."""
        self._refuse(reason, now)

    @transition(
        PostalReport.PICKUP_REFUSED, {S.REGISTERED}, "refused by its hand-over record", guard=_by_post
    )
    def refuse_by_record(self, *, reason: str, now: datetime) -> None:
        """The desk refused a picked-up dossier on the co-signed hand-over record (Form 03); final."""
        self._refuse(reason, now)

    @transition(PostalReport.PICKUP_FAILED, {S.REGISTERED}, "closed for its pickup", guard=_by_post)
    def pickup_failed(self, *, cause: str, now: datetime) -> None:
        """The operator lost the dossier, or its pickup was cancelled, before it reached the desk: it is
        not received (status 3), and Form 03 tells the applicant why; final. ``cause``: pickup_lost or
        pickup_cancelled (what the event's reason code says)."""
        if cause not in PICKUP_FAILURES:
            raise InvalidArgument("cause", f"not a pickup failure: {cause!r}")
        self._refuse(PICKUP_FAILURES[cause], now)

    def _receive(self, now: datetime, calendar: WorkingCalendar) -> None:
        self._file(now, calendar)
        self.status = Status.RECEIVED
        self._record(Received, now, **self._intake())

    def _refuse(self, reason: str, now: datetime) -> None:
        _require_text("reason", reason)
        self.status = Status.REFUSED
        self._notify(Notice(action=Action.REFUSE, issued_at=now, reason=reason))
        self._record(Refused, now, reason=reason)

    @transition(Action.START_PROCESSING, {S.RECEIVED}, "handed over for processing")
    def start_processing(
        self, *, now: datetime, calendar: WorkingCalendar, to_unit: str | None = None
    ) -> None:
        """The desk hands the dossier to the handling agency: processing starts."""
        self.status = Status.PROCESSING
        self._hand_over(Action.START_PROCESSING, now, calendar, to_unit or self.handling_unit)
        self._record(ProcessingStarted, now, step=self._stage_first_step().code)

    @transition(
        Action.REQUEST_SUPPLEMENT,
        {S.RECEIVED, S.PROCESSING},
        "asked for a supplement",
        guard=_supplement_once,
    )
    def request_supplement(
        self, *, items: Sequence[str], reason: str, now: datetime, rules: Rules = DEFAULT_RULES
    ) -> None:
        """Yêu cầu bổ sung (Form 02): every missing item in one request; the clock stops."""
        items = [item.strip() for item in items]
        if not items or any(not item for item in items):
            raise InvalidArgument("items", "list every missing or wrong item, at least one, none empty")
        if len(set(items)) != len(items):
            raise InvalidArgument("items", "an item is listed twice")
        _require_text("reason", reason)
        self.status = Status.SUPPLEMENT_REQUESTED
        self.supplement_count += 1
        self.clock_stopped_at = now
        self._notify(
            Notice(action=Action.REQUEST_SUPPLEMENT, issued_at=now, reason=reason, items=tuple(items))
        )
        self._record(SupplementRequested, now, items=list(items), reason=reason)

    @transition(Action.SUPPLEMENT, {S.SUPPLEMENT_REQUESTED}, "supplemented")
    def supplement(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """The supplement is complete: filing time is now and the full duration runs again."""
        self.status = Status.PROCESSING
        self.clock_stopped_at = None
        self._file(now, calendar, replan_from=self.stage)
        if self.stage == 0:
            self._hand_over(Action.SUPPLEMENT, now, calendar, self.handling_unit)
        self._record(Supplemented, now)

    @transition(Action.RETURN, {S.RESOLVED}, "returned")
    def return_at_counter(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """Trả kết quả at the counter: the desk hands the result over; final. Whatever was chosen at
        filing, and even while a delivery runs (the postal service cancels it on this event's method),
        a hand-over at the desk is a counter return."""
        self._return(now, calendar, ReturnMethod.COUNTER)

    @transition(PostalReport.DELIVERED, {S.RESOLVED}, "delivered")
    def delivered_by_post(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """The operator delivered the result: the return, by post, at the delivery time; final."""
        self._return(now, calendar, ReturnMethod.POSTAL)

    @transition(PostalReport.DELIVERY_FAILED, {S.RESOLVED}, "given a delivery task")
    def delivery_failed(self, *, cause: str, shipment_id: str, now: datetime) -> None:
        """A delivery of the result was lost, cancelled or sent back: the dossier stays resolved, and
        the desk gets a task — return it at the counter or have it delivered again. One task per
        shipment (its latest trouble)."""
        if cause not in DELIVERY_TROUBLES:
            raise InvalidArgument("cause", f"not a delivery trouble: {cause!r}")
        task = Task(kind="return_result", cause=cause, since=now, shipment_id=shipment_id)
        self.tasks = [*(t for t in self.tasks if t.shipment_id != shipment_id), task]

    @transition(PostalReport.DELIVERY_ORDERED, {S.RESOLVED}, "delivered again")
    def delivery_ordered(self, *, shipment_id: str) -> None:
        """A new delivery of the result was ordered: the tasks of the failed ones are answered."""
        self.tasks = [t for t in self.tasks if t.shipment_id == shipment_id]

    def _return(self, now: datetime, calendar: WorkingCalendar, method: ReturnMethod) -> None:
        self.return_method = method
        self.tasks = []
        self.status = Status.RETURNED
        self.returned_at = now
        last = self._stage_last_step()
        self.handovers.append(
            Handover(
                at=now,
                action=Action.RETURN.value,
                from_unit=self.receiving_unit,
                to_unit=None,
                stage=self.stage,
                step=last.code,
                step_name=last.name,
                step_due_at=last.due_at,
                timeliness=self._judge(calendar, now, last.due_at) if last.due_at else None,
            )
        )
        self._record(Returned, now, method=self.return_method.name.lower(), returned_at=now)

    @transition(Action.WITHDRAW, WITHDRAWABLE, "withdrawn", guard=_withdrawable)
    def withdraw(self, *, reason: str, now: datetime) -> None:
        """Rút hồ sơ at the applicant's request, any time before the result is decided; final."""
        _require_text("reason", reason)
        self.status = Status.WITHDRAWN
        self._record(Withdrawn, now, reason=reason)

    def withdraw_notification_consent(self, *, now: datetime) -> bool:
        """The applicant no longer wants messages about this dossier (personal data, so no event: the
        notifier reads the consent when it sends). False when there was nothing to withdraw."""
        if not self.applicant.get("notification_channels"):
            return False
        # Replaced, not mutated: the repository writes the columns that differ from the stored row.
        self.applicant = {
            **self.applicant,
            "notification_channels": [],
            "notifications_withdrawn_at": now.isoformat(),
        }
        return True

    # --- the handling agency -----------------------------------------------------------------

    @transition(Action.REQUEST_PAYMENT, {S.PROCESSING}, "asked for payment")
    def request_payment(self, *, amount_vnd: int, now: datetime) -> None:
        """Financial obligations (fees, taxes) to pay; the clock stops until they are paid."""
        if isinstance(amount_vnd, bool) or not isinstance(amount_vnd, int) or amount_vnd <= 0:
            raise InvalidArgument("amount_vnd", "the amount must be a positive whole number of đồng")
        self.status = Status.AWAITING_PAYMENT
        self.clock_stopped_at = now
        self._record(PaymentRequested, now, amount_vnd=amount_vnd)

    @transition(Action.RECORD_PAYMENT, {S.AWAITING_PAYMENT}, "marked paid")
    def record_payment(self, *, now: datetime, calendar: WorkingCalendar, online: bool = False) -> None:
        """Paid (``online``: through the national payment platform, else at the counter): processing goes
        on and every due time moves by the office time paused."""
        self._restart_clock(now, calendar)
        self.status = Status.PROCESSING
        self._record(Paid, now, paid_online=online)

    @transition(Action.APPRAISE, {S.PROCESSING}, "appraised", guard=_not_yet_decided)
    def appraise(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """Thẩm định by the agency holding the dossier (each agency of an interlinked plan may)."""
        step = next((s for s in self._stage_steps() if s.code == "appraise"), self._stage_last_step())
        self.appraisal_count += 1
        self._record(
            Appraised,
            now,
            step=step.code,
            step_timeliness=self._judge(calendar, now, step.due_at) if step.due_at else None,
        )

    @transition(Action.TRANSFER, {S.PROCESSING}, "transferred", guard=_has_next_agency)
    def transfer(self, *, to_unit: str, now: datetime, calendar: WorkingCalendar) -> None:
        """Liên thông: hand the dossier to the agency of the plan's next stage."""
        if to_unit == self.handling_unit:
            raise InvalidArgument("to_unit", f"the dossier is already at {to_unit}")
        from_unit = self.handling_unit
        finished = self._stage_last_step()
        timeliness = self._hand_over(Action.TRANSFER, now, calendar, to_unit)
        started = self._stage_first_step()
        self._record(
            Transferred,
            now,
            from_unit=from_unit,
            to_unit=to_unit,
            step=started.code,
            step_due_at=self._stage_last_step().due_at,
            step_timeliness=timeliness,
            finished_step=finished.code,
        )

    @transition(Action.DECIDE, {S.PROCESSING}, "decided", guard=_appraised_not_decided)
    def decide(self, *, decision: Decision, reason: str | None, now: datetime) -> None:
        """Phê duyệt: approve, or reject with the reason, after the appraisal."""
        decision = Decision(decision)
        if decision is Decision.REJECTED:
            _require_text("reason", reason)
        self.decision = decision.value
        self.decision_reason = reason
        self._record(Decided, now, decision=decision.value, reason=reason)

    @transition(Action.SIGN, {S.PROCESSING}, "signed", guard=_decided_not_signed)
    def sign(self, *, signer_role: str, now: datetime) -> None:
        """The competent person signs the result (digitally, later through the e-signature service)."""
        self.signed_at = now
        self._record(Signed, now, signer_role=signer_role)

    @transition(Action.STAMP, {S.PROCESSING}, "stamped", guard=_signed_not_stamped)
    def stamp(self, *, now: datetime, digital: bool = False) -> None:
        """Đóng dấu: the clerk applies the organisation's signature after the leader's; ``digital``
        when it is applied through the e-signature service (the result is issued digitally)."""
        self.stamped_at = now
        self._record(Stamped, now, digital=digital)

    @transition(SignatureReport.REFUSED, {S.PROCESSING}, "sent back for appraisal", guard=_decided_not_signed)
    def send_back_for_appraisal(self, *, reason: str, now: datetime) -> None:
        """The competent person refused to sign the result (through the e-signature service): the
        decision is withdrawn and the dossier goes back to the handling agency, to be appraised and
        decided again. Only a decided, unsigned dossier in processing can be sent back."""
        _require_text("reason", reason)
        self.decision, self.decision_reason, self.appraisal_count = None, None, 0
        self._record(SentBackForAppraisal, now, reason=reason)

    @transition(Action.RESOLVE, {S.PROCESSING}, "resolved", guard=_ready)
    def resolve(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """Đã xử lý xong: the result goes back to the desk; timeliness and working days are fixed."""
        assert self.received_at is not None and self.original_due_at is not None
        # An apology admits the delay: the dossier counts as late whatever the date (docs/domain.md §6).
        self.timeliness = (
            Timeliness.LATE if self.apology_count else self._judge(calendar, now, self.original_due_at)
        )
        office = calendar.working_time_between(self.received_at, now).total_seconds() - self.paused_seconds
        self.working_days = round(max(office, 0.0) / calendar.day_length.total_seconds(), 3)
        self.resolved_at = now
        self.status = Status.RESOLVED
        if self.plan and self.stage < self.plan[-1].stage:
            self._hand_over(Action.RESOLVE, now, calendar, self.receiving_unit, to_stage=self.plan[-1].stage)
        self._record(
            Resolved,
            now,
            decision=self.decision,
            resolved_at=now,
            timeliness=self.timeliness,
            working_days=self.working_days,
        )

    @transition(Action.STOP, {S.RECEIVED, S.PROCESSING}, "stopped")
    def stop(self, *, reason: str, now: datetime) -> None:
        """Dừng xử lý (Form 05): a notice with the reason; the clock stops."""
        _require_text("reason", reason)
        self.status = Status.STOPPED
        self.clock_stopped_at = now
        self._notify(Notice(action=Action.STOP, issued_at=now, reason=reason))
        self._record(Stopped, now, reason=reason)

    @transition(Action.RESUME, {S.STOPPED}, "resumed")
    def resume(self, *, now: datetime, calendar: WorkingCalendar) -> None:
        """Processing goes on after a stop; due times move by the office time paused."""
        self._restart_clock(now, calendar)
        self.status = Status.PROCESSING
        if self.stage == 0:
            self._hand_over(Action.RESUME, now, calendar, self.handling_unit)
        self._record(Resumed, now)

    @transition(Action.APOLOGIZE, {S.RECEIVED, S.PROCESSING}, "given an apology")
    def apologize(self, *, reason: str, new_due_at: datetime, now: datetime) -> None:
        """Thư xin lỗi (Form 04): a reason and a new appointment; the dossier still counts as late."""
        _require_text("reason", reason)
        assert self.due_at is not None
        if new_due_at <= now:
            raise InvalidArgument("new_due_at", "the new appointment must be in the future")
        if new_due_at <= self.due_at:
            raise InvalidArgument(
                "new_due_at", f"the new appointment must be later than the current one ({_iso(self.due_at)})"
            )
        self.apology_count += 1
        self.due_at = new_due_at.astimezone(UTC)
        self._notify(Notice(action=Action.APOLOGIZE, issued_at=now, reason=reason, new_due_at=self.due_at))
        self._record(Apologized, now, reason=reason, new_due_at=self.due_at)

    # --- the overdue watch -------------------------------------------------------------------

    def watch(self, *, now: datetime, calendar: WorkingCalendar, lead: timedelta) -> None:
        """Record ``due_soon`` / ``overdue`` once per due time that is near or passed."""
        for at, key, event, extra in sorted(self._watch_triggers(calendar, lead), key=lambda t: t[0]):
            if at > now or key in self.watch_flags:
                continue
            self.watch_flags = [*self.watch_flags, key]
            if event is DueSoon and self.due_at is not None and now >= self.due_at:
                continue  # too late to warn: the overdue event says it
            self._record(event, now, **extra)
        self.schedule_watch(calendar, lead)

    def schedule_watch(self, calendar: WorkingCalendar, lead: timedelta) -> None:
        """Set ``watch_at``: when the watch next has something to say about this dossier."""
        pending = [at for at, key, *_ in self._watch_triggers(calendar, lead) if key not in self.watch_flags]
        self.watch_at = min(pending) if pending else None

    def _watch_triggers(
        self, calendar: WorkingCalendar, lead: timedelta
    ) -> list[tuple[datetime, str, type[DossierEvent], dict[str, Any]]]:
        if self.status not in CLOCK_RUNNING or self.due_at is None or self.received_at is None:
            return []
        # "Passed" means strictly after: a due time at close of office is still met at 17:00.
        after = timedelta(microseconds=1)
        triggers: list[tuple[datetime, str, type[DossierEvent], dict[str, Any]]] = []
        if self.due_at > self.received_at:
            warn_at = warning_time(calendar, self.received_at, self.due_at, lead)
            left = calendar.working_time_between(warn_at, self.due_at)
            triggers.append(
                (
                    warn_at,
                    f"due_soon@{_iso(self.due_at)}",
                    DueSoon,
                    {"lead_hours": round(left.total_seconds() / 3600, 2)},
                )
            )
        for due in dict.fromkeys(d for d in (self.original_due_at, self.due_at) if d is not None):
            extra = {"overdue_since": due, "step": None, "step_due_at": None}
            triggers.append((due + after, f"overdue@{_iso(due)}", Overdue, extra))
        if self.plan and self.stage < self.plan[-1].stage:
            last = self._stage_last_step()
            if last.due_at is not None:
                triggers.append(
                    (
                        last.due_at + after,
                        f"step_overdue@{self.stage}@{_iso(last.due_at)}",
                        Overdue,
                        {"overdue_since": last.due_at, "step": last.code, "step_due_at": last.due_at},
                    )
                )
        return triggers

    # --- what is possible now ------------------------------------------------------------------

    def available_actions(self, rules: Rules = DEFAULT_RULES) -> list[str]:
        """The actions whose rules allow them now (the 409 answer lists these)."""
        return [action.value for action in Action if self._refusal(action, rules) is None]

    def next_agency(self) -> str | None:
        """The plan's agency for the stage after the current one (``province:STP``, ``police`` …)."""
        upcoming = [step.agency for step in self.plan if step.stage == self.stage + 1]
        return upcoming[0] if upcoming else None

    def is_overdue(self, now: datetime) -> bool:
        """Past the appointment it is judged against, with the clock running (or stopped late)."""
        if self.status not in OVERDUE_CANDIDATES:
            return False
        return is_overdue(self.original_due_at, now, self.clock_stopped_at)

    def _check(self, action: Action | Report, rules: Rules = DEFAULT_RULES) -> None:
        reason = self._refusal(action, rules)
        if reason is not None:
            raise TransitionNotAllowed(action, self.status, self.available_actions(rules), reason)

    def _refusal(self, action: Action | Report, rules: Rules) -> str | None:
        rule = _rule(action)
        if self.status not in rule.allowed_from:
            return f"a dossier that is {self.status.label} cannot be {rule.past}"
        return rule.guard(self, rules) if rule.guard is not None else None

    # --- internals ---------------------------------------------------------------------------

    def _file(self, now: datetime, calendar: WorkingCalendar, replan_from: int = 0) -> None:
        """Set the filing time to ``now`` and lay the appointment and the step plan out from it."""
        try:
            due = calendar.deadline(now, self.duration)
        except ValueError as exc:  # e.g. beyond the calendar's range: no appointment can be given
            raise DomainError(f"no appointment can be computed: {exc}") from exc
        if due <= now:
            raise DomainError("the appointment must come after the filing time")
        self.received_at, self.due_at, self.original_due_at = now, due, due
        self.paused_seconds = 0.0
        dues = step_due_times(calendar, now, self.duration, [step.allotment for step in self.plan])
        self.plan = [
            replace(step, due_at=due_at) if step.stage >= replan_from else step
            for step, due_at in zip(self.plan, dues, strict=True)
        ]

    def _restart_clock(self, now: datetime, calendar: WorkingCalendar) -> None:
        """After a payment or a stop: every due time still ahead moves by the paused office time."""
        stopped = self.clock_stopped_at
        assert stopped is not None and self.due_at is not None and self.original_due_at is not None
        self.due_at = calendar.resume(self.due_at, stopped, now, self.duration)
        self.original_due_at = calendar.resume(self.original_due_at, stopped, now, self.duration)
        self.plan = [
            replace(step, due_at=calendar.resume(step.due_at, stopped, now, self.duration))
            if step.stage >= self.stage and step.due_at is not None
            else step
            for step in self.plan
        ]
        self.paused_seconds += calendar.working_time_between(stopped, now).total_seconds()
        self.clock_stopped_at = None

    def _hand_over(
        self,
        action: Action,
        now: datetime,
        calendar: WorkingCalendar,
        to_unit: str,
        to_stage: int | None = None,
    ) -> str | None:
        """Finish the current stage, move to the next (or ``to_stage``); return its timeliness."""
        if not self.plan:
            self.handling_unit = to_unit
            return None
        last = self._stage_last_step()
        timeliness = self._judge(calendar, now, last.due_at) if last.due_at else None
        self.handovers.append(
            Handover(
                at=now,
                action=action.value,
                from_unit=self.handling_unit,
                to_unit=to_unit,
                stage=self.stage,
                step=last.code,
                step_name=last.name,
                step_due_at=last.due_at,
                timeliness=timeliness,
            )
        )
        self.stage = min(self.stage + 1 if to_stage is None else to_stage, self.plan[-1].stage)
        if action is not Action.RESOLVE:
            self.handling_unit = to_unit
        return timeliness

    def _judge(self, calendar: WorkingCalendar, finished_at: datetime, due_at: datetime) -> str:
        """Timeliness by the one rule (shared/timeliness.py) for this dossier's duration unit."""
        return judge_timeliness(finished_at, due_at, Duration.parse(self.duration).unit, calendar.timezone)

    def _stage_steps(self) -> list[PlanStep]:
        return [step for step in self.plan if step.stage == self.stage]

    def _stage_first_step(self) -> PlanStep:
        return self._stage_steps()[0]

    def _stage_last_step(self) -> PlanStep:
        return self._stage_steps()[-1]

    def latest_notice(self, action: Action) -> Notice | None:
        """The last notice the dossier was given by ``action`` (a form shows the latest)."""
        return next((notice for notice in reversed(self.notices) if notice.action is action), None)

    def _notify(self, notice: Notice) -> None:
        self.notices = [*self.notices, notice]  # replaced, never mutated: the column is JSON

    @property
    def subject(self) -> str:
        return self.code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, self.handling_unit

    def _record(self, event: type[DossierEvent], now: datetime, **extra: Any) -> None:
        """Record a domain event; the unit of work that loaded or added this dossier publishes it."""
        self.record(event(facts=self.status_facts(now), **extra))

    def _intake(self) -> dict[str, Any]:
        """What a filing's event says of the intake (counts and a flag; docs/domain.md §12)."""
        return {
            "components_digitised": self.components_digitised,
            "components_reused": self.components_reused,
            "components_national": self.components_national,
            "vneid_verified": self.vneid_verified,
        }

    def status_facts(self, now: datetime) -> StatusFacts:
        """The minimal, non-personal facts every status event carries (docs/contracts.md §1 Events)."""
        return StatusFacts(
            code=self.code,
            status=self.status,
            procedure_code=self.procedure_code,
            procedure_version=self.procedure_version,
            procedure_field=self.procedure_field,
            receiving_unit=self.receiving_unit,
            handling_unit=self.handling_unit,
            channel=self.channel,
            return_method=self.return_method,
            online_level=self.online_level,
            received_at=self.received_at,
            due_at=self.due_at,
            original_due_at=self.original_due_at,
            occurred_at=now,
        )


def _require_text(name: str, value: str | None) -> None:
    if value is None or not value.strip():
        raise InvalidArgument(name, f"{name} is required and must not be blank")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
