"""The dossier service's entrypoints: parse, check who may act, call the domain, respond.

Where a dossier's life is decided: :mod:`services.dossier.domain.model`.
Who may do what: :mod:`services.dossier.access`. Body → domain method: :mod:`services.dossier.actions`.
Where its events leave: the outbox of :class:`shared.uow.UnitOfWork`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from services.dossier import access, forms, postal_intake, repository
from services.dossier.actions import Context, audit_reason, perform
from services.dossier.catalogue import Catalogue, Procedure, UnknownProcedure
from services.dossier.dependencies import Lifecycle, WatchBackoffProvider, watch_timer
from services.dossier.domain.model import (
    Action,
    Channel,
    DomainError,
    Dossier,
    InvalidArgument,
    ReturnMethod,
    Status,
    TransitionNotAllowed,
)
from services.dossier.events import collect
from services.dossier.models import SERVICE, pipeline
from services.dossier.openapi import document as openapi_document
from services.dossier.schemas import (
    ACTION_BODIES,
    CHANNELS,
    DOSSIER_CODE,
    FORMS,
    RETURN_METHODS,
    AuditEntrySchema,
    DossierQuerySchema,
    DossierSchema,
    DossierSummarySchema,
    ReceiptRequestSchema,
    RegistrationRequestSchema,
)
from services.dossier.watch_backoff import WATCH_FAILURES
from shared.auth import Auth, Principal
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, dumps, idempotent, page_links, read_json, read_query
from shared.operations import OperationalEndpoints
from shared.problems import Conflict, Forbidden, NotFound, ValidationFailed
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
CATALOGUE = Catalogue.load()

# marshmallow schemas are stateless once built, and building one deep-copies its fields: build each once.
RECEIPT_REQUEST = ReceiptRequestSchema()
REGISTRATION_REQUEST = RegistrationRequestSchema()
DOSSIER_QUERY = DossierQuerySchema()
DOSSIER = DossierSchema()
DOSSIER_SUMMARY = DossierSummarySchema()
AUDIT_ENTRIES = AuditEntrySchema(many=True)
ACTION_SCHEMAS = {action: schema() for action, schema in ACTION_BODIES.items()}
_CODE = re.compile(DOSSIER_CODE)


def _field_error(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        f"{pointer.lstrip('/')}: {detail}", errors=[{"pointer": pointer, "detail": detail}]
    )


@contextmanager
def filing_problems() -> Iterator[None]:
    """A rule of the domain refusing a filing (receipt or registration) is a 4xx, never a 500:
    a bad value is a 422 naming the field, anything else (no appointment computable …) a 409."""
    try:
        yield
    except InvalidArgument as exc:
        raise _field_error(f"/{exc.field}", exc.message) from exc
    except DomainError as exc:
        raise Conflict(f"the dossier cannot be filed: {exc}") from exc


def _request_id(request) -> str:
    given = request.headers.get("X-Request-Id", "")
    return given if 0 < len(given) <= 100 and given.isprintable() else str(uuid.uuid4())


def _action_body(request, schema: Schema) -> dict[str, Any]:
    """An action's JSON body; an action without required fields may be sent with no body at all."""
    if not request.get_data(cache=True) and not request.mimetype:
        try:
            return schema.load({})
        except ValidationError as exc:
            raise ValidationFailed.from_messages(exc.messages) from exc
    return read_json(request, schema)


class DossierService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline)
    auth = Auth()
    units = Units()
    calendar = Calendar()
    lifecycle = Lifecycle()
    watch_backoff = WatchBackoffProvider()

    # --- filing --------------------------------------------------------------------------------

    @api("POST", "/api/v1/dossiers")
    def receive(self, request):
        """Receive a dossier at the desk: code, appointment, ``dossier.received``."""
        principal = self.auth.principal(request)
        principal.require_role("desk_officer")
        body = read_json(request, RECEIPT_REQUEST)
        now = datetime.now(UTC)
        unit, procedure = self._filing_terms(principal, body, now)

        def change(tx):
            with filing_problems():
                dossier = Dossier.receive_at_counter(
                    code=self._next_code(tx, unit, now),
                    procedure=procedure,
                    receiving_unit=unit,
                    channel=Channel(CHANNELS[body["channel"]]),
                    return_method=ReturnMethod(RETURN_METHODS[body["return_method"]]),
                    applicant=body["applicant"],
                    now=now,
                    calendar=self.calendar,
                )
            self._commit(tx, request, principal, dossier, "receive", None, body, now)
            return 201, self._present(dossier, now), {"Location": f"/api/v1/dossiers/{dossier.code}"}

        return idempotent(self.uow, principal.sub, request, change)

    @api("POST", "/api/v1/registrations")
    def register(self, request):
        """Register a dossier filed online (portal) or picked up by post: ``dossier.registered``."""
        principal = self.auth.principal(request)
        principal.require_role(*access.FILING_ROLES)
        body = read_json(request, REGISTRATION_REQUEST)
        now = datetime.now(UTC)
        unit, procedure = self._filing_terms(principal, body, now)

        def change(tx):
            with filing_problems():
                dossier = Dossier.register(
                    code=self._next_code(tx, unit, now),
                    procedure=procedure,
                    receiving_unit=unit,
                    channel=Channel(CHANNELS[body["channel"]]),
                    return_method=ReturnMethod(RETURN_METHODS[body["return_method"]]),
                    applicant=body["applicant"],
                    submitted_by=principal.sub,
                    now=now,
                )
            self._commit(tx, request, principal, dossier, "register", None, body, now)
            return 201, self._present(dossier, now), {"Location": f"/api/v1/dossiers/{dossier.code}"}

        return idempotent(self.uow, principal.sub, request, change)

    # --- the lifecycle -------------------------------------------------------------------------

    @api("POST", "/api/v1/dossiers/<string:code>/actions/<string:action>")
    def act(self, request, code, action):
        """One step of the lifecycle (docs/dossier-events.md); 409 when the rules forbid it now."""
        principal = self.auth.principal(request)
        try:
            action = Action(action)
        except ValueError:
            raise NotFound(f"no action {action!r}; actions: {', '.join(a.value for a in Action)}") from None
        principal.require_role(*access.roles_for(action))
        body = _action_body(request, ACTION_SCHEMAS[action])
        settings = self.lifecycle

        def change(tx):
            dossier = repository.get(tx.session, code, for_update=True) if _CODE.match(code) else None
            if dossier is None:
                raise NotFound(f"no dossier {code}")
            now = datetime.now(UTC)  # read under the row lock, so a dossier's events never go back in time
            role = access.authorise(principal, action, dossier, self.units)
            before = dossier.status
            context = Context(
                now=now, calendar=self.calendar, rules=settings.rules, units=self.units, role=role
            )
            try:
                perform(action, dossier, body, context)
            except TransitionNotAllowed as exc:
                raise Conflict(
                    exc.reason,
                    current_status=int(exc.status),
                    current_status_name=exc.status.label,
                    allowed_actions=dossier.available_actions(settings.rules),
                ) from exc
            except InvalidArgument as exc:
                raise _field_error(f"/{exc.field}", exc.message) from exc
            except DomainError as exc:
                raise Conflict(str(exc)) from exc
            self._commit(tx, request, principal, dossier, action.value, before, body, now)
            return 200, self._present(dossier, now)

        return idempotent(self.uow, principal.sub, request, change)

    # --- reading -------------------------------------------------------------------------------

    @api("GET", "/api/v1/dossiers")
    def list_dossiers(self, request):
        """Search within the caller's jurisdiction (the portal: what it filed), newest first."""
        principal = self.auth.principal(request)
        query = read_query(request, DOSSIER_QUERY)
        now = datetime.now(UTC)
        search = self._search(principal, query)
        page, size = query["page"], query["page_size"]
        with self.uow.transaction() as tx:
            count, found = repository.search(
                tx.session, search, now=now, offset=(page - 1) * size, limit=size
            )
            results = [self._summary(dossier, now) for dossier in found]
        return {"count": count, **page_links(request, page, size, count), "results": results}

    @api("GET", "/api/v1/dossiers/<string:code>")
    def get_dossier(self, request, code):
        principal = self.auth.principal(request)
        now = datetime.now(UTC)
        with self.uow.transaction() as tx:
            dossier = self._readable(tx, principal, code)
            return self._present(dossier, now)

    @api("GET", "/api/v1/dossiers/<string:code>/audit")
    def audit_trail(self, request, code):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            dossier = self._readable(tx, principal, code)
            if not access.can_audit(principal, dossier, self.units):
                raise NotFound(f"no dossier {code}")
            entries = repository.audit_trail(tx.session, code)
        return {"code": code, "entries": AUDIT_ENTRIES.dump(entries)}

    @api("GET", "/api/v1/dossiers/<string:code>/forms/<string:form>")
    def form(self, request, code, form):
        """Forms 01-05 and the process-control slip, as JSON; 404 when the dossier has no such form."""
        principal = self.auth.principal(request)
        if form not in FORMS:
            raise NotFound(f"no form {form!r}; forms: {', '.join(FORMS)}, receipt.pdf")
        return self._form(principal, code, form)

    @api("GET", "/api/v1/dossiers/<string:code>/forms/receipt.pdf")
    def receipt_pdf(self, request, code):
        """Form 01 as a printable PDF with the dossier code as a QR code."""
        principal = self.auth.principal(request)
        slip = self._form(principal, code, "receipt")
        # Imported here: the PDF stack (fonts, fpdf2) loads only when a slip is printed.
        from services.dossier.pdf import render_receipt_pdf

        try:
            document = render_receipt_pdf(slip)
        except ValueError as exc:
            raise Conflict(f"the receipt slip cannot be printed: {exc}") from exc
        return Response(
            document,
            content_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{code}.pdf"'},
        )

    # --- what the postal service tells (services/dossier/postal_intake.py) -------------------------

    @event_consumer(postal_intake.QUEUE, postal_intake.BINDINGS)
    def follow_postal(self, event: Event):
        """Pickups received at the hand-over record's time; results delivered by post are returned."""
        return postal_intake.apply(self.uow, event, self.units, self.calendar, self.lifecycle)

    # --- the overdue watch ---------------------------------------------------------------------

    @watch_timer
    def watch_deadlines(self) -> int:
        """Emit ``due_soon`` / ``overdue`` once per due time; flags commit with the outbox rows."""
        now = datetime.now(UTC)
        settings = self.lifecycle
        with self.uow.transaction() as tx:
            codes = repository.due_for_watch(tx.session, now, settings.watch_batch)
        for code in codes:
            try:
                with self.uow.transaction() as tx:
                    dossier = repository.get(tx.session, code, for_update=True)
                    if dossier is None:
                        continue
                    dossier.watch(now=now, calendar=self.calendar, lead=settings.due_soon_lead)
                    tx.emit(*collect(dossier, self.units))
                    repository.save(tx.session, dossier, self.units, actor=None)
            except Exception:
                # One broken dossier (a unit gone from the map …) must not stop the watch for the
                # others: it goes to the back of the queue with a backoff (watch_backoff.py).
                self._watch_failed(code, now)
            else:
                self.watch_backoff.succeeded(code)
        return len(codes)

    def _watch_failed(self, code: str, now: datetime) -> None:
        delay, first = self.watch_backoff.failed(code)
        WATCH_FAILURES.labels(service=SERVICE).inc()
        if first:
            log.exception("overdue watch: dossier %s failed; retried with a backoff, logged once", code)
        with self.uow.transaction() as tx:
            repository.postpone_watch(tx.session, code, now + delay)

    # --- helpers -------------------------------------------------------------------------------

    def _filing_terms(self, principal: Principal, body: dict, now: datetime) -> tuple[str, Procedure]:
        unit = body["receiving_unit"]
        if unit not in self.units:
            raise _field_error("/receiving_unit", f"unknown unit code {unit!r}")
        if not access.covers(principal, self.units, unit):
            raise Forbidden(f"unit {unit} is outside your jurisdiction")
        try:
            procedure = CATALOGUE.get(body["procedure_code"], at=now)
        except UnknownProcedure as exc:
            raise _field_error("/procedure_code", str(exc)) from exc
        if body["channel"] not in procedure.channels:
            raise _field_error(
                "/channel", f"procedure {procedure.code} is not offered through channel {body['channel']!r}"
            )
        if body["return_method"] == "postal" and not procedure.postal_return:
            raise _field_error(
                "/return_method", f"procedure {procedure.code} does not return results by post"
            )
        return unit, procedure

    def _next_code(self, tx, unit: str, now: datetime) -> str:
        identifier = self.units.get(unit).identifier
        day = now.astimezone(self.calendar.timezone).date()
        return repository.next_dossier_code(tx.session, unit=unit, identifier=identifier, day=day)

    def _commit(
        self,
        tx,
        request,
        principal: Principal,
        dossier: Dossier,
        action: str,
        before: Status | None,
        body: dict,
        now: datetime,
    ) -> None:
        """Store the change, its hand-overs, its audit line and its events in one transaction."""
        dossier.schedule_watch(self.calendar, self.lifecycle.due_soon_lead)
        tx.emit(*collect(dossier, self.units, reason_code=body.get("reason_code")))
        repository.save(tx.session, dossier, self.units, actor=principal.sub)
        details = {k: v for k, v in json.loads(dumps(body)).items() if k != "applicant"}
        repository.audit(
            tx.session,
            dossier.code,
            repository.AuditEntry(
                at=now,
                actor=principal.sub,
                roles=sorted(principal.roles),
                action=action,
                reason=audit_reason(body),
                status_before=None if before is None else int(before),
                status_after=int(dossier.status),
                request_id=_request_id(request),
                details=details,
            ),
        )

    def _readable(self, tx, principal: Principal, code: str) -> Dossier:
        dossier = repository.get(tx.session, code) if _CODE.match(code) else None
        # Outside the caller's jurisdiction a dossier does not exist (CONTRACTS §2).
        if dossier is None or not access.can_read(principal, dossier, self.units):
            raise NotFound(f"no dossier {code}")
        return dossier

    def _present(self, dossier: Dossier, now: datetime) -> dict[str, Any]:
        return {
            **DOSSIER.dump(dossier),
            "overdue": dossier.is_overdue(now),
            "allowed_actions": dossier.available_actions(self.lifecycle.rules),
        }

    def _summary(self, dossier: Dossier, now: datetime) -> dict[str, Any]:
        return {**DOSSIER_SUMMARY.dump(dossier), "overdue": dossier.is_overdue(now)}

    def _search(self, principal: Principal, query: dict) -> repository.Search:
        if access.is_staff(principal):
            scope: dict[str, Any] = {
                "jurisdiction": tuple(self.units.routing_path(u) for u in principal.units if u in self.units)
            }
        elif principal.has_role(*access.FILING_ROLES):
            scope = {"submitted_by": principal.sub}
        else:
            raise Forbidden("listing dossiers needs a staff role, or the portal role for its own filings")
        unit = query.get("unit")
        if unit is not None:
            if unit not in self.units:
                raise _field_error("/unit", f"unknown unit code {unit!r}")
            if access.is_staff(principal) and not access.covers(principal, self.units, unit):
                raise Forbidden(f"unit {unit} is outside your jurisdiction")
        zone = self.calendar.timezone
        start, end = query.get("received_from"), query.get("received_to")
        return repository.Search(
            **scope,
            unit_path=None if unit is None else self.units.routing_path(unit),
            statuses=tuple(query.get("status", ())),
            overdue=query.get("overdue"),
            procedure=query.get("procedure"),
            field=query.get("field"),
            channel=CHANNELS[query["channel"]] if "channel" in query else None,
            received_from=None if start is None else datetime.combine(start, time(), tzinfo=zone),
            received_before=None
            if end is None
            else datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
        )

    def _form(self, principal: Principal, code: str, form: str) -> dict[str, Any]:
        with self.uow.transaction() as tx:
            dossier = self._readable(tx, principal, code)
            trail = repository.audit_trail(tx.session, code)
            handovers = repository.handovers(tx.session, code) if form == "process_control" else []
        try:
            return forms.build(
                form,
                dossier=dossier,
                procedure=CATALOGUE.get_version(dossier.procedure_code, dossier.procedure_version),
                units=self.units,
                trail=trail,
                handovers=handovers,
                zone=self.calendar.timezone,
            )
        except forms.FormNotIssued as exc:
            raise NotFound(str(exc)) from exc
