"""The dossier service's entrypoints: parse, authenticate, call one use case, respond.

A table of contents: each method is an HTTP route or the timer. Use cases: :mod:`.service_layer` (the
service layer). A dossier's rules: :mod:`.domain.model`. Each action's registry entry: :mod:`.actions`.
Where its events leave: the unit of work's outbox (:mod:`shared.uow`). Domain errors become HTTP
problems in one place (:func:`shared.http.problem_for`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from services.dossier import access, esign_intake, lookup, postal_intake, service_layer
from services.dossier.actions import REGISTRY
from services.dossier.dependencies import Catalogue, Lifecycle, Lookup, WatchBackoffProvider, watch_timer
from services.dossier.domain.model import Action, Dossier
from services.dossier.models import SERVICE, pipeline
from services.dossier.openapi import document as openapi_document
from services.dossier.schemas import (
    FORMS,
    AuditEntrySchema,
    ConsentWithdrawalSchema,
    DossierQuerySchema,
    DossierSchema,
    DossierSummarySchema,
    LookupRequestSchema,
    LookupSchema,
    PaymentDueRequestSchema,
    PaymentDueSchema,
    PortalRecordSchema,
    ReceiptPrintSchema,
    ReceiptRequestSchema,
    RegistrationRequestSchema,
)
from shared.auth import Auth
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, idempotent, page_links, read_json, read_query, request_id
from shared.operations import OperationalEndpoints
from shared.problems import Conflict, NotFound, TooManyRequests, ValidationFailed
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

# marshmallow schemas are stateless once built, and building one deep-copies its fields: build each once.
RECEIPT_REQUEST = ReceiptRequestSchema()
REGISTRATION_REQUEST = RegistrationRequestSchema()
DOSSIER_QUERY = DossierQuerySchema()
DOSSIER = DossierSchema()
DOSSIER_SUMMARY = DossierSummarySchema()
AUDIT_ENTRIES = AuditEntrySchema(many=True)
PORTAL_RECORD = PortalRecordSchema()
LOOKUP_REQUEST = LookupRequestSchema()
LOOKUP = LookupSchema()
PAYMENT_DUE_REQUEST = PaymentDueRequestSchema()
PAYMENT_DUE = PaymentDueSchema()
RECEIPT_PRINT = ReceiptPrintSchema()
CONSENT_WITHDRAWAL = ConsentWithdrawalSchema()
ACTION_SCHEMAS = {action: entry.body() for action, entry in REGISTRY.items()}


def _action_body(request, schema: Schema) -> dict[str, Any]:
    """An action's JSON body; an action without required fields may be sent with no body at all."""
    if not request.get_data(cache=True) and not request.mimetype:
        try:
            return schema.load({})
        except ValidationError as exc:
            raise ValidationFailed.from_messages(exc.messages) from exc
    return read_json(request, schema)


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    """A filing's answer as kept for an Idempotency-Key replay: without the secret, which is kept
    nowhere (a replay says so; the desk issues a new one: POST …/lookup-secret)."""
    return {**body, "lookup": {"secret": None, "url": None}}


class DossierService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline)
    auth = Auth()
    units = Units()
    calendar = Calendar()
    catalogue = Catalogue()
    lifecycle = Lifecycle()
    watch_backoff = WatchBackoffProvider()
    guard = Lookup()

    # --- filing --------------------------------------------------------------------------------

    @api("POST", "/api/v1/dossiers")
    def receive(self, request):
        """Receive a dossier at the desk: code, appointment, ``dossier.received``."""
        principal = self.auth.principal(request)
        principal.require_role(access.DESK_OFFICER)
        command = service_layer.Receive(principal, read_json(request, RECEIPT_REQUEST), request_id(request))
        return self._file(request, service_layer.receive, command)

    @api("POST", "/api/v1/registrations")
    def register(self, request):
        """Register a dossier filed online (portal) or picked up by post: ``dossier.registered``."""
        principal = self.auth.principal(request)
        principal.require_role(*access.FILING_ROLES)
        command = service_layer.Register(
            principal, read_json(request, REGISTRATION_REQUEST), request_id(request)
        )
        return self._file(request, service_layer.register, command)

    # --- the lifecycle -------------------------------------------------------------------------

    @api("POST", "/api/v1/dossiers/<string:code>/actions/<string:action>")
    def act(self, request, code, action):
        """One step of the lifecycle (docs/dossier-events.md); 409 when the rules forbid it now."""
        principal = self.auth.principal(request)
        try:
            action = Action(action)
        except ValueError:
            raise NotFound(f"no action {action!r}; actions: {', '.join(a.value for a in Action)}") from None
        principal.require_role(*access.roles_for(REGISTRY[action]))
        body = _action_body(request, ACTION_SCHEMAS[action])
        command = service_layer.Act(principal, code, action, body, request_id(request))

        def change(tx):
            return 200, self._present(service_layer.act(command, tx, self._office()))

        return idempotent(self.uow, principal.sub, request, change)

    # --- reading -------------------------------------------------------------------------------

    @api("GET", "/api/v1/dossiers")
    def list_dossiers(self, request):
        """Search within the caller's jurisdiction (the portal: what it filed), newest first."""
        principal = self.auth.principal(request)
        query = read_query(request, DOSSIER_QUERY)
        command = service_layer.ListDossiers(principal, query)
        with self.uow.transaction() as tx:
            found = service_layer.list_dossiers(command, tx, self._office())
            results = [
                {**DOSSIER_SUMMARY.dump(d), "overdue": d.is_overdue(found.now)} for d in found.dossiers
            ]
        links = page_links(request, query["page"], query["page_size"], found.count)
        return {"count": found.count, **links, "results": results}

    @api("GET", "/api/v1/dossiers/<string:code>")
    def get_dossier(self, request, code):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            return self._present(
                service_layer.readable(service_layer.Read(principal, code), tx, self._office())
            )

    @api("GET", "/api/v1/dossiers/<string:code>/audit")
    def audit_trail(self, request, code):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            entries = service_layer.audit_trail(service_layer.Read(principal, code), tx, self._office())
        return {"code": code, "entries": AUDIT_ENTRIES.dump(entries)}

    @api("GET", "/api/v1/dossiers/<string:code>/portal-record")
    def portal_record(self, request, code):
        """The national portal sync's read: the applicant's contact, documents, fees, payments and the
        sealed result (role portal_sync only)."""
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            record = service_layer.portal_record(service_layer.Read(principal, code), tx, self._office())
        return PORTAL_RECORD.dump(record)

    @api("GET", "/api/v1/dossiers/<string:code>/notification-contact")
    def notification_contact(self, request, code):
        """The notifier's read of the applicant's consent and contact at send time (role notifier only)."""
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            return service_layer.notification_contact(service_layer.Read(principal, code), tx, self._office())

    @api("POST", "/api/v1/dossiers/<string:code>/notification-consent/withdrawal")
    def withdraw_notification_consent(self, request, code):
        """The applicant withdraws their consent to messages: none is sent from now; audited."""
        principal = self.auth.principal(request)
        body = read_json(request, CONSENT_WITHDRAWAL)
        command = service_layer.WithdrawConsent(principal, code, body.get("reason"), request_id(request))

        def change(tx):
            dossier = service_layer.withdraw_notification_consent(command, tx, self._office())
            return 200, self._present(dossier)

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/dossiers/<string:code>/forms/<string:form>")
    def form(self, request, code, form):
        """Forms 01-05 and the process-control slip, as JSON; 404 when the dossier has no such form."""
        principal = self.auth.principal(request)
        if form not in FORMS:
            raise NotFound(f"no form {form!r}; forms: {', '.join(FORMS)}, receipt.pdf")
        with self.uow.transaction() as tx:
            found = service_layer.form(service_layer.ReadForm(principal, code, form), tx, self._office())
        return {**found, "lookup_url": lookup.link(self.guard.base, code)} if form == "receipt" else found

    @api("GET", "/api/v1/dossiers/<string:code>/forms/receipt.pdf")
    def receipt_pdf(self, request, code):
        """Form 01 as a printable PDF; its QR code opens the lookup page with the code filled in."""
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            slip = service_layer.form(service_layer.ReadForm(principal, code, "receipt"), tx, self._office())
        return self._receipt_pdf(code, {**slip, "lookup_url": lookup.link(self.guard.base, code)})

    @api("POST", "/api/v1/dossiers/<string:code>/forms/receipt.pdf")
    def receipt_pdf_with_secret(self, request, code):
        """Form 01 with the secret given at filing printed on it and in its QR code (checked first)."""
        principal = self.auth.principal(request)
        given = read_json(request, RECEIPT_PRINT)["lookup_secret"]
        command = service_layer.PrintReceipt(principal, code, "receipt", given)
        with self.uow.transaction() as tx:
            slip = service_layer.receipt_with_secret(command, tx, self._office())
        return self._receipt_pdf(code, {**slip, **self._credential(code, given, "lookup_")})

    @api("POST", "/api/v1/dossiers/<string:code>/lookup-secret")
    def reissue_lookup_secret(self, request, code):
        """The desk gives the dossier a new lookup secret (the old one stops working): Form 01 with it."""
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            _, secret = service_layer.reissue_lookup_secret(
                service_layer.Read(principal, code), tx, self._office()
            )
            slip = service_layer.form(service_layer.ReadForm(principal, code, "receipt"), tx, self._office())
        return {**slip, **self._credential(code, secret, "lookup_")}

    # --- the citizen: tra cứu hồ sơ (services/dossier/lookup.py) --------------------------------------

    @api("POST", "/api/v1/lookups")
    def look_up(self, request):
        """Public: a dossier's progress from its code and the receipt's secret (or the identity number)."""
        guard = self.guard
        client = request.remote_addr or "unknown"
        self._limit(guard.per_client, client, "from one address")
        body = read_json(request, LOOKUP_REQUEST)
        self._limit(guard.per_code, body["code"].strip(), "for one dossier code")
        if not guard.captcha.passed(body.get("captcha"), client):
            raise ValidationFailed(
                "captcha: the check was not passed", errors=[{"pointer": "/captcha", "detail": "not passed"}]
            )
        command = service_layer.LookUp(body["code"], body.get("secret"), body.get("id_number"))
        view = service_layer.look_up(command, self.uow, self._office())
        if view["to_do"] is not None and view["to_do"]["kind"] == "payment" and guard.payment_start:
            view["to_do"]["payment_url"] = guard.payment_start
        return LOOKUP.dump(view)

    @api("POST", "/api/v1/dossiers/<string:code>/payment-due")
    def payment_due(self, request, code):
        """What a dossier owes, for the payment service (role payment_service), with the citizen's proof."""
        principal = self.auth.principal(request)
        body = _action_body(request, PAYMENT_DUE_REQUEST)
        command = service_layer.PaymentDue(principal, code, body.get("secret"), body.get("id_number"))
        return PAYMENT_DUE.dump(service_layer.payment_due(command, self.uow, self._office()))

    @api("POST", "/api/v1/lookups/notification-withdrawal")
    def withdraw_notifications_by_lookup(self, request):
        """Public: the applicant stops every message about the dossier, with the lookup's proof."""
        guard = self.guard
        client = request.remote_addr or "unknown"
        self._limit(guard.per_client, client, "from one address")
        body = read_json(request, LOOKUP_REQUEST)
        self._limit(guard.per_code, body["code"].strip(), "for one dossier code")
        if not guard.captcha.passed(body.get("captcha"), client):
            raise ValidationFailed(
                "captcha: the check was not passed", errors=[{"pointer": "/captcha", "detail": "not passed"}]
            )
        command = service_layer.LookUp(
            body["code"],
            body.get("secret"),
            body.get("id_number"),
            withdraw_notifications=True,
            request_id=request_id(request),
        )
        return LOOKUP.dump(service_layer.look_up(command, self.uow, self._office()))

    @api("GET", lookup.PAGE_PATH)
    def lookup_page(self, request):
        """The citizen's lookup page (Vietnamese, no external assets); the QR code's link opens it."""
        page = self.guard.page
        return Response(page.html, content_type="text/html; charset=utf-8", headers=page.headers)

    def _receipt_pdf(self, code: str, slip: dict[str, Any]) -> Response:
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
        return postal_intake.apply(event, self.uow, self._office())

    # --- what the e-signature service tells (services/dossier/esign_intake.py) ----------------------

    @event_consumer(esign_intake.QUEUE, esign_intake.BINDINGS)
    def follow_esign(self, event: Event):
        """The sign and stamp steps from digital signatures; a refusal sends the dossier back."""
        return esign_intake.apply(event, self.uow, self._office())

    # --- the overdue watch ---------------------------------------------------------------------

    @watch_timer
    def watch_deadlines(self) -> int:
        """Emit ``due_soon`` / ``overdue`` once per due time; flags commit with the outbox rows."""
        return service_layer.watch(service_layer.Watch(self.watch_backoff), self.uow, self._office())

    # --- helpers -------------------------------------------------------------------------------

    def _office(self) -> service_layer.Office:
        return service_layer.Office(
            units=self.units,
            calendar=self.calendar,
            catalogue=self.catalogue,
            settings=self.lifecycle,
            lookup=self.guard.settings,
        )

    def _file(self, request, use_case, command: service_layer.Filing):
        """A filing, once per Idempotency-Key; a replay's answer is kept without the secret."""
        return idempotent(
            self.uow,
            command.principal.sub,
            request,
            lambda tx: self._created(use_case, command, tx),
            kept=_without_secret,
        )

    def _created(self, use_case, command, tx) -> tuple[int, dict[str, Any], dict[str, str]]:
        office = self._office()
        dossier = use_case(command, tx, office)
        # Every channel's filing gets its receipt's secret here; this answer is the only one that has it.
        secret = service_layer.issue_lookup_secret(dossier.code, tx, office)
        body = {**self._present(dossier), "lookup": self._credential(dossier.code, secret)}
        return 201, body, {"Location": f"/api/v1/dossiers/{dossier.code}"}

    def _credential(self, code: str, secret: str, prefix: str = "") -> dict[str, str]:
        printed = lookup.printed(lookup.normalised_secret(secret))
        return {f"{prefix}secret": printed, f"{prefix}url": lookup.link(self.guard.base, code, printed)}

    @staticmethod
    def _limit(window, key: str, per: str) -> None:
        wait = window.allow(key)
        if wait is not None:
            raise TooManyRequests(f"at most {window.limit} lookups a minute {per}; retry in {wait:.0f} s")

    def _present(self, dossier: Dossier) -> dict[str, Any]:
        return {
            **DOSSIER.dump(dossier),
            "overdue": dossier.is_overdue(self._office().clock()),
            "allowed_actions": dossier.available_actions(self.lifecycle.rules),
        }
