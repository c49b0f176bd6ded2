"""From a validated request body to the domain method of each action (the service's one dispatch table).

Also the one place that turns a plan's agency (``province:STP``, ``police``) into a unit code of the
map, for hand-overs whose body does not name the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.dossier.domain.model import Action, Dossier, InvalidArgument, Rules
from shared.units import UnitRegistry
from shared.vocabulary import Decision, ReturnMethod
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


def _return(dossier: Dossier, body: Mapping[str, Any], ctx: Context) -> None:
    method = body.get("method")
    dossier.return_result(
        now=ctx.now,
        calendar=ctx.calendar,
        method=None if method is None else ReturnMethod.of(method),
    )


Handler = Callable[[Dossier, Mapping[str, Any], Context], None]

HANDLERS: dict[Action, Handler] = {
    Action.RECEIVE: lambda d, b, c: d.receive(now=c.now, calendar=c.calendar),
    Action.REFUSE: lambda d, b, c: d.refuse(reason=b["reason"], now=c.now),
    Action.START_PROCESSING: _start_processing,
    Action.REQUEST_SUPPLEMENT: lambda d, b, c: d.request_supplement(
        items=b["items"], reason=b["reason"], now=c.now, rules=c.rules
    ),
    Action.SUPPLEMENT: lambda d, b, c: d.supplement(now=c.now, calendar=c.calendar),
    Action.REQUEST_PAYMENT: lambda d, b, c: d.request_payment(amount_vnd=b["amount_vnd"], now=c.now),
    Action.RECORD_PAYMENT: lambda d, b, c: d.record_payment(now=c.now, calendar=c.calendar),
    Action.APPRAISE: lambda d, b, c: d.appraise(now=c.now, calendar=c.calendar),
    Action.TRANSFER: _transfer,
    Action.DECIDE: lambda d, b, c: d.decide(
        decision=Decision(b["decision"]), reason=b.get("reason"), now=c.now
    ),
    Action.SIGN: lambda d, b, c: d.sign(signer_role=c.role, now=c.now),
    Action.STAMP: lambda d, b, c: d.stamp(now=c.now),
    Action.RESOLVE: lambda d, b, c: d.resolve(now=c.now, calendar=c.calendar),
    Action.RETURN: _return,
    Action.WITHDRAW: lambda d, b, c: d.withdraw(reason=b["reason"], now=c.now),
    Action.STOP: lambda d, b, c: d.stop(reason=b["reason"], now=c.now),
    Action.RESUME: lambda d, b, c: d.resume(now=c.now, calendar=c.calendar),
    Action.APOLOGIZE: lambda d, b, c: d.apologize(reason=b["reason"], new_due_at=b["new_due_at"], now=c.now),
}


def perform(action: Action, dossier: Dossier, body: Mapping[str, Any], ctx: Context) -> None:
    """Apply ``action`` to ``dossier``; domain errors propagate for the service to answer."""
    HANDLERS[action](dossier, body, ctx)


def audit_reason(body: Mapping[str, Any]) -> str | None:
    """The "why" of the audit trail: whatever explanation the action's body carries."""
    for key in ("reason", "opinion", "note"):
        if body.get(key):
            return body[key]
    return None
