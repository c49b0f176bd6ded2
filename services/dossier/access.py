"""Who may see and do what with a dossier (docs/contracts.md §2): roles, and the side of the dossier they
act on.

* The desk (``desk_officer``) acts on dossiers of its **receiving** unit; agencies (``handling_officer``,
  ``leader``, ``clerk``) on dossiers their unit is **handling**; a unit covers its descendants.
* ``portal`` / ``postal_operator`` file dossiers and see only the ones they filed (their token ``sub``).
* ``auditor`` reads everything in its jurisdiction and changes nothing.
* Reads outside the jurisdiction answer 404 (existence is not revealed), actions 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from services.dossier.domain.model import Action, Dossier
from shared.auth import Principal
from shared.domain import Forbidden
from shared.units import UnitRegistry

STAFF_ROLES = ("desk_officer", "handling_officer", "leader", "clerk", "auditor", "admin")
FILING_ROLES = ("portal", "postal_operator")
# A service, not a person: the national portal sync reads the applicant's contact for the portal.
PORTAL_SYNC = "portal_sync"
# A service, not a person: the payment service records a payment the national payment platform confirmed,
# and reads what a dossier owes (services/payment).
PAYMENT_SERVICE = "payment_service"
# A service too: the notifier reads the applicant's consent and contact when it sends a message.
NOTIFIER = "notifier"
RECEIVING, HANDLING = "receiving", "handling"

DESK_OFFICER, HANDLING_OFFICER, LEADER, CLERK = "desk_officer", "handling_officer", "leader", "clerk"


class Actors(Protocol):
    """What authorisation needs of an action's registry entry (services/dossier/actions.py)."""

    action: Action
    actors: tuple[tuple[str, str], ...]  # (role, side of the dossier) pairs that may perform it
    filer_may: bool  # and the portal that filed the dossier


def roles_for(entry: Actors) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(role for role, _ in entry.actors))
    return roles + (FILING_ROLES if entry.filer_may else ())


def is_staff(principal: Principal) -> bool:
    return principal.has_role(*STAFF_ROLES)


def filed_by(principal: Principal, dossier: Dossier) -> bool:
    return principal.has_role(*FILING_ROLES) and dossier.submitted_by == principal.sub


def can_read(principal: Principal, dossier: Dossier, units: UnitRegistry) -> bool:
    if filed_by(principal, dossier):
        return True
    return is_staff(principal) and (
        principal.covers(units, dossier.receiving_unit) or principal.covers(units, dossier.handling_unit)
    )


def can_audit(principal: Principal, dossier: Dossier, units: UnitRegistry) -> bool:
    """The audit trail names officers: staff of the jurisdiction only."""
    return is_staff(principal) and can_read(principal, dossier, units)


def may_withdraw_consent(principal: Principal, dossier: Dossier, units: UnitRegistry) -> bool:
    """The applicant withdraws their consent to messages at the desk (its officer) or through the portal
    that filed the dossier."""
    if filed_by(principal, dossier):
        return True
    return principal.has_role(DESK_OFFICER) and principal.covers(units, dossier.receiving_unit)


def authorise(principal: Principal, entry: Actors, dossier: Dossier, units: UnitRegistry) -> str:
    """The role the caller acts in; Forbidden when no role of the caller may act on this dossier."""
    for role, side in entry.actors:
        unit = dossier.receiving_unit if side == RECEIVING else dossier.handling_unit
        if principal.has_role(role) and principal.covers(units, unit):
            return role
    if entry.filer_may and filed_by(principal, dossier):
        return next(role for role in FILING_ROLES if principal.has_role(role))
    needed = ", ".join(f"{role} of the {side} unit" for role, side in entry.actors)
    raise Forbidden(f"'{entry.action.value}' on dossier {dossier.code} needs: {needed}")


def reported_by(source: str, service: str, role: str) -> Callable[[Dossier, UnitRegistry], str]:
    """The actor check of another service's report: the event comes from ``service``, whose reports the
    intake applies, trusted on the whole map (its own service checked who may do it); it acts as ``role``."""

    def authorise(dossier: Dossier, units: UnitRegistry) -> str:
        if source != service:
            raise Forbidden(f"{source} does not report {service} events on dossier {dossier.code}")
        return role

    return authorise
