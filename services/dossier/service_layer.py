"""The dossier service layer: one plain function per use case, taking a command and a unit of work.

The entrypoints (:mod:`services.dossier.service`) parse, authenticate, build the command, open the
unit of work and call one of these; ``tests/unit/test_dossier_service_layer.py`` calls them on the
in-memory unit of work of ``tests/support/fakes.py``. Here live the application's rules that are not
the dossier's own: who may act (through :mod:`.access`), what a filing must name, what the audit trail
records, what a search may see. Domain errors propagate; shared/http.py answers them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

from services.dossier import access, forms, lookup
from services.dossier.actions import REGISTRY, Context
from services.dossier.catalogue import Catalogue, Procedure, UnknownProcedure
from services.dossier.dependencies import LifecycleSettings
from services.dossier.domain.model import Action, Dossier, Intake, TransitionNotAllowed
from services.dossier.lookup import LookupSettings
from services.dossier.lookup_store import Lookups
from services.dossier.models import SERVICE
from services.dossier.repository import AuditEntry, Dossiers, Search
from services.dossier.schemas import DOSSIER_CODE as DOSSIER_CODE_PATTERN
from services.dossier.watch_backoff import WATCH_FAILURES, WatchBackoff
from shared.auth import Principal
from shared.domain import DomainError, Forbidden, InvalidArgument, NotFound
from shared.events import Event
from shared.jsontext import dumps
from shared.units import UnitRegistry
from shared.uow import Transaction
from shared.usecase import Context as UseCaseContext
from shared.usecase import UnitOfWork
from shared.vocabulary import FINAL, Channel, ReturnMethod, Status

log = logging.getLogger(__name__)
# Who acts when the citizen proves the right to the dossier on the public lookup (no token, no name).
APPLICANT = "applicant"
DOSSIER_CODE = re.compile(DOSSIER_CODE_PATTERN)


@dataclass(frozen=True, kw_only=True)
class Office(UseCaseContext):
    """The dossier service's use-case context (shared/usecase.py): besides the unit map, the working
    calendar and the clock, the procedure catalogue, the configured rules and the dossier repository."""

    catalogue: Catalogue
    settings: LifecycleSettings
    repository: Callable[..., Dossiers] = Dossiers
    lookup: LookupSettings = LookupSettings(key=lookup.DEVELOPMENT_KEY)
    lookups: Callable[[Transaction], Lookups] = Lookups

    def dossiers(self, tx: Transaction, actor: str | None) -> Dossiers:
        """The repository of ``tx``: the dossiers it loads or adds publish their events at commit."""
        return self.repository(tx, self.units, actor=actor)


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filing:
    """A new dossier: who files it, the validated body, the request."""

    principal: Principal
    body: Mapping[str, Any]
    request_id: str


class Receive(Filing):
    """Tiếp nhận at the desk: a validated ReceiptRequestSchema body."""


class Register(Filing):
    """Mới đăng ký through the portal or the postal operator: a validated RegistrationRequestSchema body."""


@dataclass(frozen=True)
class Act:
    """One lifecycle action on a dossier: a body validated by the action's registry entry."""

    principal: Principal
    code: str
    action: Action
    body: Mapping[str, Any]
    request_id: str


@dataclass(frozen=True)
class ListDossiers:
    principal: Principal
    query: Mapping[str, Any]  # a validated DossierQuerySchema


@dataclass(frozen=True)
class Read:
    """A dossier, or its audit trail, as the caller may see it."""

    principal: Principal
    code: str


@dataclass(frozen=True)
class ReadForm:
    principal: Principal
    code: str
    name: str  # a form of services/dossier/forms.py


@dataclass(frozen=True)
class LookUp:
    """Tra cứu hồ sơ, by anyone: the code and one proof, the receipt's secret or the identity number."""

    code: str
    secret: str | None = None
    id_number: str | None = None
    # The applicant, with the same proof, withdraws their consent to messages (docs/notifications.md).
    withdraw_notifications: bool = False
    request_id: str = ""


@dataclass(frozen=True)
class PaymentDue:
    """What a dossier owes, asked by the payment service: with the citizen's proof (secret or identity
    number) when the citizen starts the payment, without when the desk does (the payment service checks
    the desk's jurisdiction itself)."""

    principal: Principal
    code: str
    secret: str | None = None
    id_number: str | None = None


@dataclass(frozen=True)
class PrintReceipt:
    """Form 01 with the secret given at filing, which must be the dossier's."""

    principal: Principal
    code: str
    name: str
    secret: str


@dataclass(frozen=True)
class Found:
    """One page of a search, and the moment it was made (what ``overdue`` is judged at)."""

    count: int
    dossiers: list[Dossier]
    now: datetime


@dataclass(frozen=True)
class Watch:
    """One round of the overdue watch; ``backoff``: what the process remembers of dossiers that failed."""

    backoff: WatchBackoff


# --- filing --------------------------------------------------------------------------------------


def receive(cmd: Receive, tx: Transaction, office: Office) -> Dossier:
    """A dossier received at the desk: code, appointment, ``dossier.received``."""
    cmd.principal.require_role(access.DESK_OFFICER)
    return _file(cmd, tx, office, "receive", partial(Dossier.receive_at_counter, calendar=office.calendar))


def register(cmd: Register, tx: Transaction, office: Office) -> Dossier:
    """A dossier filed online or picked up by post: ``dossier.registered``; the desk receives it later."""
    cmd.principal.require_role(*access.FILING_ROLES)
    return _file(cmd, tx, office, "register", partial(Dossier.register, submitted_by=cmd.principal.sub))


def _file(
    cmd: Filing, tx: Transaction, office: Office, action: str, create: Callable[..., Dossier]
) -> Dossier:
    """What every filing does: check its terms, create it, plan its watch, number and add it, audit it.

    Numbering comes last: the unit's daily code counter stays locked from then until the commit, and
    every other filing of the unit that day waits for it (repository.next_dossier_code)."""
    now = office.clock()
    unit, procedure = _filing_terms(cmd.principal, cmd.body, office, now)
    dossiers = office.dossiers(tx, cmd.principal.sub)
    dossier = create(
        code="",
        procedure=procedure,
        receiving_unit=unit,
        channel=Channel.of(cmd.body["channel"]),
        return_method=ReturnMethod.of(cmd.body["return_method"]),
        applicant=cmd.body["applicant"],
        now=now,
        intake=_intake(cmd.body),
    )
    dossier.schedule_watch(office.calendar, office.settings.due_soon_lead)
    day = now.astimezone(office.calendar.timezone).date()
    dossiers.add(dossier, identifier=office.units.get(unit).identifier, day=day)
    audited = Audited(
        actor=cmd.principal.sub,
        roles=tuple(cmd.principal.roles),
        action=action,
        reason=audit_reason(cmd.body),
        details=audit_details(cmd.body),
        request_id=cmd.request_id,
    )
    _audit(dossiers, dossier, audited, None, now)
    return dossier


def _intake(body: Mapping[str, Any]) -> Intake:
    components = body.get("components") or {}
    return Intake(
        digitised=components.get("digitised", 0),
        reused=components.get("reused", 0),
        national=components.get("national", 0),
        vneid_verified=bool(body.get("vneid_verified", False)),
    )


def _filing_terms(
    principal: Principal, body: Mapping[str, Any], office: Office, now: datetime
) -> tuple[str, Procedure]:
    unit = body["receiving_unit"]
    principal.require_jurisdiction(office.units, unit, field="receiving_unit")
    try:
        procedure = office.catalogue.get(body["procedure_code"], at=now)
    except UnknownProcedure as exc:
        raise InvalidArgument("procedure_code", str(exc)) from exc
    if body["channel"] not in procedure.channels:
        raise InvalidArgument(
            "channel", f"procedure {procedure.code} is not offered through channel {body['channel']!r}"
        )
    if body["return_method"] == "postal" and not procedure.postal_return:
        raise InvalidArgument("return_method", f"procedure {procedure.code} does not return results by post")
    return unit, procedure


# --- the lifecycle: one way to apply a change to a dossier --------------------------------------


def _always(dossier: Dossier) -> bool:
    return True


@dataclass(frozen=True, kw_only=True)
class Audited:
    """What the audit line of a filing or a change says: who (in which roles), what, why, and more."""

    actor: str  # a token's sub, the reporting service, or the person the report names
    roles: tuple[str, ...]
    action: str
    reason: str | None
    details: Mapping[str, Any]
    request_id: str


@dataclass(frozen=True, kw_only=True)
class Change(Audited):
    """One change to one dossier, whoever brings it: a person's action (:func:`act` maps an
    :class:`Act`) or another service's report (its intake maps the event). :func:`apply` applies it."""

    code: str
    authorise: Callable[[Dossier, UnitRegistry], str]  # the role it acts in; Forbidden when none
    perform: Callable[[Dossier, Context], None]  # the one domain method (its @transition) it calls
    at: datetime | None = None  # when the reporting service says it happened; else now, under the lock
    reason_code: str | None = None  # the public code of the reason, on the event
    applies: Callable[[Dossier], bool] = _always  # False: a report that changes nothing for this dossier


def act(cmd: Act, tx: Transaction, office: Office) -> Dossier:
    """One step of the lifecycle, by a person with the role and jurisdiction its registry entry names;
    TransitionNotAllowed (409) when the rules forbid it now."""
    entry = REGISTRY[cmd.action]
    change = Change(
        code=cmd.code,
        actor=cmd.principal.sub,
        roles=tuple(cmd.principal.roles),
        authorise=partial(access.authorise, cmd.principal, entry),
        perform=lambda dossier, context: entry.handler(dossier, cmd.body, context),
        action=cmd.action.value,
        reason=audit_reason(cmd.body),
        details=audit_details(cmd.body),
        request_id=cmd.request_id,
        reason_code=cmd.body.get("reason_code"),
    )
    return apply(change, tx, office)


def apply(change: Change, tx: Transaction, office: Office) -> Dossier:
    """Load and lock the dossier, check the actor, call its one domain method, re-plan the watch and
    write the audit line; the unit of work publishes the events at commit. Raises the domain's errors
    (NotFound, Forbidden, TransitionNotAllowed, Invalid) with nothing changed."""
    dossiers = office.dossiers(tx, change.actor)
    dossiers.reason_code = change.reason_code
    dossier = dossiers.get(change.code, for_update=True) if DOSSIER_CODE.match(change.code) else None
    if dossier is None:
        raise NotFound(f"no dossier {change.code}")
    # Read under the row lock, so a dossier's events never go back in time.
    now = office.clock() if change.at is None else change.at
    role = change.authorise(dossier, office.units)
    if not change.applies(dossier):
        return dossier
    before = dossier.status
    context = Context(
        now=now, calendar=office.calendar, rules=office.settings.rules, units=office.units, role=role
    )
    try:
        change.perform(dossier, context)
    except TransitionNotAllowed as exc:
        # What is possible now, under the configured rules (the domain's default may differ).
        raise TransitionNotAllowed(
            exc.action, exc.status, dossier.available_actions(office.settings.rules), exc.reason
        ) from exc
    dossier.schedule_watch(office.calendar, office.settings.due_soon_lead)
    _audit(dossiers, dossier, change, before, now)
    return dossier


@dataclass(frozen=True)
class Follow:
    """An event of another service, and the change its intake maps it to (None: it changes nothing)."""

    event: Event
    queue: str  # the intake's queue: each event is applied once per queue (the inbox)
    change: Change | None
    log: logging.Logger  # the intake's: what it did not apply is logged under its name


def follow(cmd: Follow, uow: UnitOfWork, office: Office) -> bool | None:
    """Apply another service's event once; False for a redelivery (nothing changes). An event its
    dossier does not allow is logged and acknowledged — at INFO when the dossier is final (the expected
    end of a cancelled order), else at WARNING: retrying cannot make it apply. Any other exception rolls
    back, the inbox claim too, so the consumer retries the event."""
    event = cmd.event
    with uow.transaction() as tx:
        if not tx.first_delivery(event, cmd.queue):
            return False
        if cmd.change is None:
            return None
        try:
            apply(cmd.change, tx, office)
        except NotFound:
            cmd.log.warning("%s for unknown dossier %s: ignored", event.type, event.subject)
        except DomainError as exc:
            status = exc.facts.get("current_status")
            level = logging.INFO if status is not None and Status(status) in FINAL else logging.WARNING
            cmd.log.log(
                level, "%s for dossier %s not applied (status %s): %s", event.type, event.subject, status, exc
            )
    return None


def _audit(
    dossiers: Dossiers, dossier: Dossier, audited: Audited, before: Status | None, at: datetime
) -> None:
    """The audit line of a filing or a change (who, what, when, why, before → after)."""
    dossiers.audit(
        dossier.code,
        AuditEntry(
            at=at,
            actor=audited.actor,
            roles=sorted(audited.roles),
            action=audited.action,
            reason=audited.reason,
            status_before=None if before is None else int(before),
            status_after=int(dossier.status),
            request_id=audited.request_id,
            details=dict(audited.details),
        ),
    )


def audit_details(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a request body adds to its audit line: all of it, as JSON, but the applicant's data."""
    return {k: v for k, v in json.loads(dumps(body)).items() if k != "applicant"}


def audit_reason(body: Mapping[str, Any]) -> str | None:
    """The "why" of the audit trail: whatever explanation the action's body carries."""
    for key in ("reason", "opinion", "note"):
        if body.get(key):
            return body[key]
    return None


# --- reading -------------------------------------------------------------------------------------


def readable(cmd: Read | ReadForm, tx: Transaction, office: Office) -> Dossier:
    """A dossier the caller may see; outside its jurisdiction it does not exist (docs/contracts.md §2)."""
    code = cmd.code
    dossier = office.dossiers(tx, None).read(code) if DOSSIER_CODE.match(code) else None
    if dossier is None or not access.can_read(cmd.principal, dossier, office.units):
        raise NotFound(f"no dossier {code}")
    return dossier


def portal_record(cmd: Read, tx: Transaction, office: Office) -> dict[str, Any]:
    """What the national portal needs and no event carries: the applicant's name, phone and email, the
    procedure's names, the documents and fees the receipt (Form 01) lists, the payments asked for and
    when they were paid, and the result document once sealed (its number when the e-signature service
    issued it). Only the portal sync service (role portal_sync), for dossiers received in its
    jurisdiction; any other dossier does not exist for it."""
    cmd.principal.require_role(access.PORTAL_SYNC)
    code = cmd.code
    dossier = office.dossiers(tx, None).read(code) if DOSSIER_CODE.match(code) else None
    if dossier is None or not cmd.principal.covers(office.units, dossier.receiving_unit):
        raise NotFound(f"no dossier {code}")
    procedure = office.catalogue.get_version(dossier.procedure_code, dossier.procedure_version)
    applicant = dossier.applicant
    payments: list[dict[str, Any]] = []
    number = None
    for entry in office.dossiers(tx, None).audit_trail(code):
        if entry.action == Action.REQUEST_PAYMENT.value and "amount_vnd" in entry.details:
            payments.append(
                {"amount_vnd": entry.details["amount_vnd"], "requested_at": entry.at, "paid_at": None}
            )
        elif entry.action == Action.RECORD_PAYMENT.value and payments and payments[-1]["paid_at"] is None:
            payments[-1]["paid_at"] = entry.at
        elif entry.action == Action.STAMP.value:
            number = entry.details.get("document_number")  # sealed through the e-signature service
    sealed = dossier.stamped_at is not None and dossier.decision is not None
    return {
        "code": code,
        "applicant": {key: applicant.get(key) for key in ("full_name", "phone", "email")},
        "procedure_name": procedure.name,
        "field_name": procedure.field_name,
        "documents": [
            {"name": doc.name, "original": doc.original, "copies": doc.copies}
            for doc in procedure.required_documents
        ],
        "fees": [{"name": fee.name, "amount_vnd": fee.amount_vnd} for fee in procedure.fees],
        "payments": payments,
        "results": [{"decision": dossier.decision, "number": number, "issued_at": dossier.stamped_at}]
        if sealed
        else [],
    }


def notification_contact(cmd: Read, tx: Transaction, office: Office) -> dict[str, Any]:
    """What the notifier reads when it is about to send: the channels the applicant consented to (none
    once withdrawn) and the contact. Role notifier only, for dossiers received in its jurisdiction; any
    other dossier does not exist for it. Read at each send, so a withdrawal stops the next message."""
    cmd.principal.require_role(access.NOTIFIER)
    code = cmd.code
    dossier = office.dossiers(tx, None).read(code) if DOSSIER_CODE.match(code) else None
    if dossier is None or not cmd.principal.covers(office.units, dossier.receiving_unit):
        raise NotFound(f"no dossier {code}")
    procedure = office.catalogue.get_version(dossier.procedure_code, dossier.procedure_version)
    applicant = dossier.applicant
    supplement = dossier.latest_notice(Action.REQUEST_SUPPLEMENT)
    return {
        "code": code,
        "channels": list(applicant.get("notification_channels") or []),
        "phone": applicant.get("phone"),
        "email": applicant.get("email"),
        "withdrawn_at": applicant.get("notifications_withdrawn_at"),
        "procedure_name": procedure.name,
        # Form 02's items, which the event only counts: what a supplement message lists.
        "supplement_items": list(supplement.items) if supplement else [],
    }


@dataclass(frozen=True)
class WithdrawConsent:
    """The applicant withdraws their consent to messages about a dossier (at the desk, or the portal)."""

    principal: Principal
    code: str
    reason: str | None
    request_id: str


def withdraw_notification_consent(cmd: WithdrawConsent, tx: Transaction, office: Office) -> Dossier:
    """No more messages about the dossier, from now: the consent is emptied and the audit trail says who
    and when. Withdrawing again changes nothing (and writes no second line). A dossier the caller may
    not see does not exist; one it sees but may not act for is Forbidden."""
    dossiers = office.dossiers(tx, cmd.principal.sub)
    dossier = dossiers.get(cmd.code, for_update=True) if DOSSIER_CODE.match(cmd.code) else None
    if dossier is None or not access.can_read(cmd.principal, dossier, office.units):
        raise NotFound(f"no dossier {cmd.code}")
    if not access.may_withdraw_consent(cmd.principal, dossier, office.units):
        raise Forbidden(
            f"withdrawing the consent to messages about {dossier.code} needs: desk_officer of the "
            "receiving unit, or the portal that filed it"
        )
    now = office.clock()
    if dossier.withdraw_notification_consent(now=now):
        audited = Audited(
            actor=cmd.principal.sub,
            roles=tuple(cmd.principal.roles),
            action="withdraw_notification_consent",
            reason=cmd.reason,
            details={},
            request_id=cmd.request_id,
        )
        _audit(dossiers, dossier, audited, dossier.status, now)
    return dossier


def audit_trail(cmd: Read, tx: Transaction, office: Office) -> list[AuditEntry]:
    dossier = readable(cmd, tx, office)
    if not access.can_audit(cmd.principal, dossier, office.units):
        raise NotFound(f"no dossier {cmd.code}")
    return office.dossiers(tx, None).audit_trail(cmd.code)


def form(cmd: ReadForm, tx: Transaction, office: Office) -> dict[str, Any]:
    """Form ``cmd.name`` of the dossier, as JSON; NotFound when the dossier has no such form."""
    dossier = readable(cmd, tx, office)
    dossiers = office.dossiers(tx, None)
    code, name = cmd.code, cmd.name
    try:
        return forms.build(
            name,
            dossier=dossier,
            procedure=office.catalogue.get_version(dossier.procedure_code, dossier.procedure_version),
            units=office.units,
            trail=dossiers.audit_trail(code),
            handovers=dossiers.handovers(code) if name == "process_control" else [],
            zone=office.calendar.timezone,
        )
    except forms.FormNotIssued as exc:
        raise NotFound(str(exc)) from exc


def list_dossiers(cmd: ListDossiers, tx: Transaction, office: Office) -> Found:
    """One page of what the caller may see, newest first, and how many match in all."""
    now = office.clock()
    search = search_terms(cmd, office)
    page, size = cmd.query["page"], cmd.query["page_size"]
    count, found = office.dossiers(tx, None).search(search, now=now, offset=(page - 1) * size, limit=size)
    return Found(count, found, now)


def search_terms(cmd: ListDossiers, office: Office) -> Search:
    """What the caller may list: staff their jurisdiction, the portal what it filed."""
    principal, query, units = cmd.principal, cmd.query, office.units
    if access.is_staff(principal):
        scope: dict[str, Any] = {
            "jurisdiction": tuple(units.routing_path(u) for u in principal.units if u in units)
        }
    elif principal.has_role(*access.FILING_ROLES):
        scope = {"submitted_by": principal.sub}
    else:
        raise Forbidden("listing dossiers needs a staff role, or the portal role for its own filings")
    unit = query.get("unit")
    if unit is not None and access.is_staff(principal):
        principal.require_jurisdiction(units, unit, field="unit")
    elif unit is not None and unit not in units:
        raise InvalidArgument("unit", f"unknown unit code {unit!r}")
    zone = office.calendar.timezone
    start, end = query.get("received_from"), query.get("received_to")
    return Search(
        **scope,
        unit_path=None if unit is None else units.routing_path(unit),
        statuses=tuple(query.get("status", ())),
        overdue=query.get("overdue"),
        procedure=query.get("procedure"),
        field=query.get("field"),
        channel=Channel.of(query["channel"]) if "channel" in query else None,
        received_from=None if start is None else datetime.combine(start, time(), tzinfo=zone),
        received_before=None
        if end is None
        else datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    )


# --- the citizen's status lookup (services/dossier/lookup.py) -----------------------------------------


def issue_lookup_secret(code: str, tx: Transaction, office: Office) -> str:
    """A new secret for dossier ``code`` (the old one stops working), returned this once: only its HMAC
    is kept. Called when a dossier is filed, whoever filed it, and when the desk prints a new receipt."""
    secret = lookup.new_secret()
    office.lookups(tx).set_secret(code, lookup.digest(office.lookup.key, "secret", secret))
    return secret


def reissue_lookup_secret(cmd: Read, tx: Transaction, office: Office) -> tuple[Dossier, str]:
    """The desk gives a dossier a new secret (a lost receipt, a dossier filed before secrets existed)."""
    cmd.principal.require_role(access.DESK_OFFICER)
    dossier = readable(cmd, tx, office)
    return dossier, issue_lookup_secret(dossier.code, tx, office)


def receipt_with_secret(cmd: PrintReceipt, tx: Transaction, office: Office) -> dict[str, Any]:
    """Form 01 of a dossier the caller may see, to print with ``cmd.secret``: Invalid unless it is the
    dossier's secret (a receipt never carries a secret that would not open the dossier)."""
    slip = form(ReadForm(cmd.principal, cmd.code, "receipt"), tx, office)
    guesses = office.lookups(tx).get(cmd.code)
    if not lookup.proven(office.lookup, guesses, None, secret=cmd.secret, id_number=None):
        raise InvalidArgument("lookup_secret", "not this dossier's secret; issue a new one (lookup-secret)")
    return slip


def look_up(cmd: LookUp, uow: UnitOfWork, office: Office) -> dict[str, Any]:
    """The citizen's view of a dossier (lookup.citizen_view), or NotFound with one same answer whatever
    failed: no such code, a wrong proof, a locked code. A wrong guess is counted in its own transaction,
    which commits before the refusal."""
    now, settings = office.clock(), office.lookup
    code = cmd.code.strip()
    well_formed = DOSSIER_CODE.match(code) is not None
    with uow.transaction() as tx:
        dossier = office.dossiers(tx, None).read(code) if well_formed else None
        rows = office.lookups(tx)
        guesses = rows.get(code) if well_formed else None
        right = lookup.proven(settings, guesses, dossier, secret=cmd.secret, id_number=cmd.id_number)
        if right and dossier is not None and not (guesses is not None and guesses.locked(now)):
            rows.succeeded(code)
            if cmd.withdraw_notifications:
                dossier = _withdrawn_by_the_applicant(code, cmd.request_id, tx, office, now)
            return _citizen_view(dossier, tx, office)
        if well_formed and not (guesses is not None and guesses.locked(now)):
            rows.failed(code, max_failures=settings.max_failures, until=now + settings.lock)
    raise NotFound(lookup.REFUSAL)


def _withdrawn_by_the_applicant(code: str, request_id: str, tx: Transaction, office: Office, now) -> Dossier:
    """The consent to messages withdrawn by the applicant themselves, who proved it with the receipt's
    secret or their identity number; the audit line's actor is the applicant (no name)."""
    dossiers = office.dossiers(tx, APPLICANT)
    dossier = dossiers.get(code, for_update=True)
    if dossier.withdraw_notification_consent(now=now):
        audited = Audited(
            actor=APPLICANT,
            roles=(APPLICANT,),
            action="withdraw_notification_consent",
            reason="by the applicant, with the receipt's proof (tra cứu hồ sơ)",
            details={},
            request_id=request_id,
        )
        _audit(dossiers, dossier, audited, dossier.status, now)
    return dossier


def payment_due(cmd: PaymentDue, uow: UnitOfWork, office: Office) -> dict[str, Any]:
    """What dossier ``cmd.code`` owes (the last amount the agency asked for, while it awaits payment),
    with what the payment platform's receipt names: procedure, unit, the catalogue's fee lines. Only the
    payment service (role payment_service), for dossiers received in its jurisdiction. A proof given is
    checked as the lookup checks it (wrong guesses count towards the same lock-out); one same NotFound
    for an unknown code, a wrong proof, a locked code."""
    cmd.principal.require_role(access.PAYMENT_SERVICE)
    now, code = office.clock(), cmd.code.strip()
    well_formed = DOSSIER_CODE.match(code) is not None
    with uow.transaction() as tx:
        dossier = office.dossiers(tx, None).read(code) if well_formed else None
        if cmd.secret is None and cmd.id_number is None:
            right = dossier is not None
        else:
            rows = office.lookups(tx)
            guesses = rows.get(code) if well_formed else None
            proven = lookup.proven(
                office.lookup, guesses, dossier, secret=cmd.secret, id_number=cmd.id_number
            )
            locked = guesses is not None and guesses.locked(now)
            right = proven and dossier is not None and not locked
            if right:
                rows.succeeded(code)
            elif well_formed and not locked:
                rows.failed(code, max_failures=office.lookup.max_failures, until=now + office.lookup.lock)
        if right and dossier is not None and cmd.principal.covers(office.units, dossier.receiving_unit):
            procedure = office.catalogue.get_version(dossier.procedure_code, dossier.procedure_version)
            amounts = _payment_amounts(dossier, tx, office)
            awaiting = dossier.status is Status.AWAITING_PAYMENT and bool(amounts)
            return {
                "code": dossier.code,
                "status": int(dossier.status),
                "amount_vnd": amounts[-1] if awaiting else None,
                "procedure_code": dossier.procedure_code,
                "procedure_name": procedure.name,
                "receiving_unit": dossier.receiving_unit,
                "receiving_unit_name": lookup.unit_name(office.units, dossier.receiving_unit),
                "fees": [{"name": fee.name, "amount_vnd": fee.amount_vnd} for fee in procedure.fees],
            }
    raise NotFound(lookup.REFUSAL)


def _payment_amounts(dossier: Dossier, tx: Transaction, office: Office) -> list[int]:
    """What the agency asked to be paid, in order (the last request counts)."""
    return [
        entry.details["amount_vnd"]
        for entry in office.dossiers(tx, None).audit_trail(dossier.code)
        if entry.action == Action.REQUEST_PAYMENT.value and "amount_vnd" in entry.details
    ]


# The audit lines of the result's deliveries by post (services/dossier/postal_intake.py: each order and
# each end of a delivery; the delivery itself is the return), whose details carry the consignment.
DELIVERY_LINES = frozenset(
    {
        "postal_delivery_ordered",
        "return",
        "postal_returned_to_sender",
        "postal_delivery_lost",
        "postal_delivery_cancelled",
    }
)


def _tracking_numbers(dossier: Dossier, tx: Transaction, office: Office) -> list[str]:
    """The operator's consignment numbers of the result's deliveries, in order (the last one counts)."""
    return [
        entry.details["consignment"]
        for entry in office.dossiers(tx, None).audit_trail(dossier.code)
        if entry.action in DELIVERY_LINES and entry.details.get("consignment")
    ]


def _citizen_view(dossier: Dossier, tx: Transaction, office: Office) -> dict[str, Any]:
    procedure = office.catalogue.get_version(dossier.procedure_code, dossier.procedure_version)
    amounts = _payment_amounts(dossier, tx, office)
    return lookup.citizen_view(
        dossier,
        procedure_name=procedure.name,
        units=office.units,
        zone=office.calendar.timezone,
        payment_amounts=amounts,
        tracking_numbers=_tracking_numbers(dossier, tx, office),
    )


# --- the overdue watch ---------------------------------------------------------------------------


def watch(cmd: Watch, uow: UnitOfWork, office: Office) -> int:
    """``due_soon`` / ``overdue`` once per due time, a transaction per dossier; returns how many it
    looked at. One broken dossier (a unit gone from the map …) does not stop the watch for the others:
    it goes to the back of the queue with a backoff (watch_backoff.py)."""
    now, backoff = office.clock(), cmd.backoff
    settings = office.settings
    with uow.transaction() as tx:
        codes = office.dossiers(tx, None).due_for_watch(now, settings.watch_batch)
    for code in codes:
        try:
            with uow.transaction() as tx:
                dossier = office.dossiers(tx, None).get(code, for_update=True)
                if dossier is None:
                    continue
                dossier.watch(now=now, calendar=office.calendar, lead=settings.due_soon_lead)
        except Exception:
            _watch_failed(uow, office, backoff, code, now)
        else:
            backoff.succeeded(code)
    return len(codes)


def _watch_failed(uow: UnitOfWork, office: Office, backoff: WatchBackoff, code: str, now: datetime) -> None:
    delay, first = backoff.failed(code)
    WATCH_FAILURES.labels(service=SERVICE).inc()
    if first:
        log.exception("overdue watch: dossier %s failed; retried with a backoff, logged once", code)
    with uow.transaction() as tx:
        office.dossiers(tx, None).postpone_watch(code, now + delay)
