"""The e-signature service's entrypoints: parse, call one use case, answer.

Where a signing request's rules live: :mod:`services.esign.domain.model`.
Where the use cases run: :mod:`services.esign.service_layer`. Where signatures are made and checked:
:mod:`services.esign.pades`. Where keys are held: :mod:`services.esign.keys`.
"""

from __future__ import annotations

from nameko.timer import timer
from werkzeug.wrappers import Response

from services.esign import pades, service_layer
from services.esign.dependencies import Signing, VerifyLimits
from services.esign.domain.model import SigningRequest
from services.esign.models import SERVICE, pipeline
from services.esign.openapi import document as openapi_document
from services.esign.schemas import (
    ConfirmSchema,
    OpenRequestSchema,
    RefuseSchema,
    SigningRequestSchema,
    VerificationSchema,
)
from services.esign.service_layer import Confirm, ReadRequest, ReadResult, Refuse, Verify
from shared.auth import Auth
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.problems import PayloadTooLarge, TooManyRequests, UnsupportedMediaType
from shared.uow import UnitOfWork

QUEUE = "esign.dossier-decisions"
UPLOAD_LIMIT_CEILING = 50 * 1024 * 1024
PURGE_SECONDS = 3600


def _as_dict(request: SigningRequest) -> dict:
    body = dict(vars(request))
    body["stage"] = request.stage.value
    body["signers"] = [vars(slot) for slot in request.signers]
    body["document_url"] = f"/api/v1/signing-requests/{request.id}/document"
    return SigningRequestSchema().dump(body)


def _pdf(document: service_layer.Document, name: str) -> Response:
    digest = document.request.document_sha256
    return Response(
        document.data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"', "ETag": f'"{digest}"'},
    )


class EsignService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline)
    auth = Auth()
    signing = Signing()
    verify_limits = VerifyLimits()

    # --- the dossier's decisions open signing requests ------------------------------------------------

    @event_consumer(QUEUE, ["dossier.decided.#"])
    def open_from_decision(self, event: Event) -> bool:
        """A decided dossier (approved, or rejected with its reason) gets its result document."""
        data = event.data
        command = service_layer.Decided(
            dossier_code=data["code"],
            decision=data["decision"],
            reason_code=data.get("reason_code"),
            procedure_code=data["procedure_code"],
            receiving_unit=data["receiving_unit"],
            handling_unit=data["handling_unit"],
        )
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, QUEUE):
                return False
            service_layer.open_from_decision(command, tx, self.signing)
        return True

    # --- signers --------------------------------------------------------------------------------------

    @api("POST", "/api/v1/signing-requests")
    def open_request(self, request):
        """Open a signing request by hand (normally the dossier's ``decided`` event does)."""
        principal = self.auth.principal(request)
        command = service_layer.OpenRequest(principal=principal, **read_json(request, OpenRequestSchema()))

        def change(tx):
            opened, created = service_layer.open_request(command, tx, self.signing)
            return (201 if created else 200), _as_dict(opened)

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/signing-requests/<string:request_id>")
    def get_request(self, request, request_id):
        command = ReadRequest(self.auth.principal(request), request_id)
        with self.uow.transaction() as tx:
            return _as_dict(service_layer.read_request(command, tx, self.signing))

    @api("GET", "/api/v1/signing-requests/<string:request_id>/document")
    def get_document(self, request, request_id):
        """The current revision: what a signer looks at, and the signed result to hand over or post."""
        command = ReadRequest(self.auth.principal(request), request_id)
        with self.uow.transaction() as tx:
            document = service_layer.request_document(command, tx, self.signing)
        return _pdf(document, document.request.dossier_code)

    @api("GET", "/api/v1/results/<string:code>/signing-request")
    def get_dossier_request(self, request, code):
        """The latest signing request of a dossier."""
        command = ReadResult(self.auth.principal(request), code)
        with self.uow.transaction() as tx:
            return _as_dict(service_layer.read_result(command, tx, self.signing))

    @api("GET", "/api/v1/results/<string:code>")
    def get_result(self, request, code):
        """The latest result document of a dossier (the desk, the portal, the postal service)."""
        command = ReadResult(self.auth.principal(request), code)
        with self.uow.transaction() as tx:
            document = service_layer.result_document(command, tx, self.signing)
        return _pdf(document, code)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/signature")
    def sign(self, request, request_id):
        """The competent leader confirms the revision they saw; their visible PAdES signature is added."""
        return self._confirm(request, request_id, service_layer.sign)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/seal")
    def seal(self, request, request_id):
        """The clerk applies the organisation's signature in a second revision, after the leader's."""
        return self._confirm(request, request_id, service_layer.seal)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/refusal")
    def refuse(self, request, request_id):
        """The leader declines to sign, with a reason: the dossier goes back for appraisal."""
        principal = self.auth.principal(request)
        command = Refuse(principal, request_id, **read_json(request, RefuseSchema()))
        return idempotent(self.uow, principal.sub, request, self._changes(service_layer.refuse, command))

    # --- anyone: verification -------------------------------------------------------------------------

    @api("POST", "/api/v1/verifications", max_body=UPLOAD_LIMIT_CEILING)
    def verify_upload(self, request):
        """Public: upload a PDF; every signature in it is checked. No token; size- and rate-limited."""
        limits = self.verify_limits
        wait = limits.window.allow(request.remote_addr or "unknown")
        if wait is not None:
            raise TooManyRequests(
                f"at most {limits.window.limit} verifications a minute; retry in {wait:.0f} s"
            )
        if (request.mimetype or "").lower() != "application/pdf":
            raise UnsupportedMediaType("send the PDF itself with 'Content-Type: application/pdf'")
        if (request.content_length or 0) > limits.max_bytes:
            raise PayloadTooLarge(f"the verifier takes PDFs up to {limits.max_bytes} bytes")
        data = request.get_data(cache=False)
        if len(data) > limits.max_bytes:
            raise PayloadTooLarge(f"the verifier takes PDFs up to {limits.max_bytes} bytes")
        return self._verify(Verify(pdf=data))

    @api("GET", "/api/v1/verifications/<string:request_id>")
    def verify_stored(self, request, request_id):
        """Public, the QR code's link: the current revision of a result document, checked."""
        return self._verify(Verify(request_id=request_id))

    @timer(interval=PURGE_SECONDS)
    def purge_expired(self) -> int:
        """Drop the document revisions past their retention."""
        return service_layer.purge_expired(self.uow, self.signing)

    # --- helpers --------------------------------------------------------------------------------------

    def _confirm(self, request, request_id: str, use_case):
        principal = self.auth.principal(request)
        command = Confirm(principal, request_id, **read_json(request, ConfirmSchema()))
        return idempotent(self.uow, principal.sub, request, self._changes(use_case, command))

    def _changes(self, use_case, command):
        def change(tx):
            return 200, _as_dict(use_case(command, tx, self.signing))

        return change

    def _verify(self, command: Verify) -> dict:
        try:
            with self.uow.transaction() as tx:
                report = service_layer.verify(command, tx, self.signing)
        except pades.NotAPdf as exc:  # the upload's body is not a PDF: a request the verifier cannot parse
            raise UnsupportedMediaType(f"the file is not a PDF that can be checked: {exc}") from exc
        return VerificationSchema().dump(report)
