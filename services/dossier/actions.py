"""The action registry: one entry per lifecycle action, everything the service and its documents need
about it (who, body, handler, event, summary; its rule is on its domain method).

Also the one place that turns a plan's agency (``province:STP``, ``police``) into a unit code of the
map, for hand-overs whose body does not name the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import Schema

from services.dossier import access, schemas
from services.dossier.domain import events
from services.dossier.domain.events import DossierEvent
from services.dossier.domain.model import TRANSITIONS, Action, Dossier, InvalidArgument, Rules, Transition
from shared.units import UnitRegistry
from shared.vocabulary import Decision
from shared.workcalendar import WorkingCalendar

# Vertically organised agencies hang under the province in the unit map by this suffix convention
# (shared/data/units-example-3level.yaml: "89-CT" is the provincial tax department).
VERTICAL_AGENCIES = {"tax": "CT", "police": "CA", "social_insurance": "BHXH"}


@dataclass(frozen=True)
class Context:
    """What an action needs besides its body: time, calendar, rules, the map, the acting role."""

    now: datetime
    calendar: WorkingCalendar
    rules: Rules
    units: UnitRegistry
    role: str


def agency_unit(units: UnitRegistry, receiving_unit: str, agency: str | None) -> str | None:
    """The unit of the map that plays ``agency`` for a dossier filed at ``receiving_unit``, if any."""
    if agency is None:
        return None
    if agency == "receiving_unit":
        return receiving_unit
    level, _, office = agency.partition(":")
    on_path = {units.get(code).level: code for code in units.path(receiving_unit)}
    if level in VERTICAL_AGENCIES:
        base, office = on_path.get("province"), VERTICAL_AGENCIES[level]
        candidate = f"{base}-{office}"
        return candidate if base is not None and candidate in units else None
    base = on_path.get(level)
    if base is None:
        return None
    candidate = f"{base}-{office}" if office else base
    return candidate if candidate in units else base


def _unit(units: UnitRegistry, field: str, code: str) -> str:
    if code not in units:
        raise InvalidArgument(field, f"unknown unit code {code!r}")
    return code


def _start_processing(dossier: Dossier, body: Mapping[str, Any], ctx: Context) -> None:
    named = body.get("handling_unit")
    if named is not None:
        to_unit = _unit(ctx.units, "handling_unit", named)
    else:
        to_unit = (
            agency_unit(ctx.units, dossier.receiving_unit, dossier.next_agency()) or dossier.handling_unit
        )
    dossier.start_processing(now=ctx.now, calendar=ctx.calendar, to_unit=to_unit)


def _transfer(dossier: Dossier, body: Mapping[str, Any], ctx: Context) -> None:
    named = body.get("to_unit")
    if named is not None:
        to_unit = _unit(ctx.units, "to_unit", named)
    else:
        agency = dossier.next_agency()
        resolved = agency_unit(ctx.units, dossier.receiving_unit, agency)
        if resolved is None:
            raise InvalidArgument(
                "to_unit", f"name the unit: the plan's next agency ({agency}) has no unit in the map"
            )
        to_unit = resolved
    dossier.transfer(to_unit=to_unit, now=ctx.now, calendar=ctx.calendar)


Handler = Callable[[Dossier, Mapping[str, Any], Context], None]


@dataclass(frozen=True)
class ActionEntry:
    """Everything about one lifecycle action, but its rule: who may do it (``actors``: role and side
    of the dossier), its request ``body``, how the body becomes a domain call (``handler``), the
    ``event`` it publishes and the ``summary`` of its documentation. The statuses it may start from
    and its guard are declared on its domain method (``@transition``) and read through ``rule``."""

    action: Action
    actors: tuple[tuple[str, str], ...]
    body: type[Schema]
    handler: Handler
    event: type[DossierEvent]
    summary: str
    # The applicant may do it through the portal that filed the dossier (withdraw).
    filer_may: bool = False

    @property
    def rule(self) -> Transition:
        return TRANSITIONS[self.action]


def _entries(*entries: ActionEntry) -> dict[Action, ActionEntry]:
    return {entry.action: entry for entry in entries}


DESK, AGENCY = (access.DESK_OFFICER, access.RECEIVING), (access.HANDLING_OFFICER, access.HANDLING)
# The payment service, for the platform's confirmed payments of dossiers received in its jurisdiction.
PAYMENT_PLATFORM = (access.PAYMENT_SERVICE, access.RECEIVING)
LEADER, CLERK = (access.LEADER, access.HANDLING), (access.CLERK, access.HANDLING)

# The registry: one entry per action (tests/unit/test_dossier_service_layer.py fails on a missing one).
REGISTRY: dict[Action, ActionEntry] = _entries(
    ActionEntry(
        Action.RECEIVE,
        actors=(DESK,),
        body=schemas.EmptyActionSchema,
        handler=lambda d, b, c: d.receive(now=c.now, calendar=c.calendar),
        event=events.Received,
        summary="Receive a dossier registered online (one that came by post: its hand-over record)",
    ),
    ActionEntry(
        Action.REFUSE,
        actors=(DESK,),
        body=schemas.ReasonActionSchema,
        handler=lambda d, b, c: d.refuse(reason=b["reason"], now=c.now),
        event=events.Refused,
        summary="Refuse a dossier registered online, with a reason (Form 03)",
    ),
    ActionEntry(
        Action.START_PROCESSING,
        actors=(DESK,),
        body=schemas.StartProcessingSchema,
        handler=_start_processing,
        event=events.ProcessingStarted,
        summary="Hand a received dossier to the handling agency",
    ),
    ActionEntry(
        Action.REQUEST_SUPPLEMENT,
        actors=(DESK, AGENCY),
        body=schemas.SupplementRequestSchema,
        handler=lambda d, b, c: d.request_supplement(
            items=b["items"], reason=b["reason"], now=c.now, rules=c.rules
        ),
        event=events.SupplementRequested,
        summary="Request a supplement listing every missing item (Form 02), once",
    ),
    ActionEntry(
        Action.SUPPLEMENT,
        actors=(DESK,),
        body=schemas.NoteActionSchema,
        handler=lambda d, b, c: d.supplement(now=c.now, calendar=c.calendar),
        event=events.Supplemented,
        summary="Record the completed supplement: filing time reset, full duration again",
    ),
    ActionEntry(
        Action.REQUEST_PAYMENT,
        actors=(AGENCY, DESK),
        body=schemas.PaymentRequestSchema,
        handler=lambda d, b, c: d.request_payment(amount_vnd=b["amount_vnd"], now=c.now),
        event=events.PaymentRequested,
        summary="Ask for fees or taxes; the clock stops",
    ),
    ActionEntry(
        Action.RECORD_PAYMENT,
        actors=(DESK, AGENCY, PAYMENT_PLATFORM),
        body=schemas.PaymentSchema,
        handler=lambda d, b, c: d.record_payment(
            now=c.now, calendar=c.calendar, online=c.role == access.PAYMENT_SERVICE
        ),
        event=events.Paid,
        summary="Record the payment (at the counter, or the payment service's confirmed online payment); "
        "the clock resumes",
    ),
    ActionEntry(
        Action.APPRAISE,
        actors=(AGENCY,),
        body=schemas.AppraisalSchema,
        handler=lambda d, b, c: d.appraise(now=c.now, calendar=c.calendar),
        event=events.Appraised,
        summary="Record the appraisal by the agency holding the dossier",
    ),
    ActionEntry(
        Action.TRANSFER,
        actors=(AGENCY,),
        body=schemas.TransferSchema,
        handler=_transfer,
        event=events.Transferred,
        summary="Transfer an interlinked dossier to the plan's next agency",
    ),
    ActionEntry(
        Action.DECIDE,
        actors=(LEADER,),
        body=schemas.DecisionSchema,
        handler=lambda d, b, c: d.decide(decision=Decision(b["decision"]), reason=b.get("reason"), now=c.now),
        event=events.Decided,
        summary="Approve, or reject with a reason",
    ),
    ActionEntry(
        Action.SIGN,
        actors=(LEADER,),
        body=schemas.EmptyActionSchema,
        handler=lambda d, b, c: d.sign(signer_role=c.role, now=c.now),
        event=events.Signed,
        summary="Sign the result (competent person)",
    ),
    ActionEntry(
        Action.STAMP,
        actors=(CLERK,),
        body=schemas.EmptyActionSchema,
        handler=lambda d, b, c: d.stamp(now=c.now),
        event=events.Stamped,
        summary="Apply the organisation's signature (the seal)",
    ),
    ActionEntry(
        Action.RESOLVE,
        actors=(AGENCY, LEADER, CLERK),
        body=schemas.EmptyActionSchema,
        handler=lambda d, b, c: d.resolve(now=c.now, calendar=c.calendar),
        event=events.Resolved,
        summary="Mark the result ready; timeliness and working days are fixed",
    ),
    ActionEntry(
        Action.RETURN,
        actors=(DESK,),
        body=schemas.ReturnSchema,
        handler=lambda d, b, c: d.return_at_counter(now=c.now, calendar=c.calendar),
        event=events.Returned,
        summary="Hand the result over at the counter (by post: only the operator's delivery returns it)",
    ),
    ActionEntry(
        Action.WITHDRAW,
        actors=(DESK,),
        body=schemas.ReasonActionSchema,
        handler=lambda d, b, c: d.withdraw(reason=b["reason"], now=c.now),
        event=events.Withdrawn,
        summary="Record the applicant's withdrawal (only before the result is decided)",
        filer_may=True,
    ),
    ActionEntry(
        Action.STOP,
        actors=(AGENCY, LEADER),
        body=schemas.ReasonActionSchema,
        handler=lambda d, b, c: d.stop(reason=b["reason"], now=c.now),
        event=events.Stopped,
        summary="Stop processing with a notice (Form 05); the clock stops",
    ),
    ActionEntry(
        Action.RESUME,
        actors=(AGENCY, LEADER),
        body=schemas.NoteActionSchema,
        handler=lambda d, b, c: d.resume(now=c.now, calendar=c.calendar),
        event=events.Resumed,
        summary="Resume processing after a stop",
    ),
    ActionEntry(
        Action.APOLOGIZE,
        actors=(AGENCY, LEADER),
        body=schemas.ApologySchema,
        handler=lambda d, b, c: d.apologize(reason=b["reason"], new_due_at=b["new_due_at"], now=c.now),
        event=events.Apologized,
        summary="Apologise with a new appointment (Form 04); the dossier still counts as late",
    ),
)
