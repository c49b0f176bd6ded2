"""The e-signature service's entrypoints: parse, call the service layer, answer.

Where a signing request's rules live: :mod:`services.esign.domain.model`.
Where the use cases run: :mod:`services.esign.signing`. Where signatures are made and checked:
:mod:`services.esign.pades`. Where keys are held: :mod:`services.esign.keys`.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from nameko.timer import timer
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from werkzeug.wrappers import Response

from services.esign import pades, signing
from services.esign.dependencies import Signing, VerifyLimits
from services.esign.document import REASON_LABELS
from services.esign.domain.model import InvalidArgument, NotPermitted, OutOfTurn, Signer, SigningRequest
from services.esign.models import SERVICE, pipeline
from services.esign.openapi import document as openapi_document
from services.esign.repository import EsignUnitOfWork
from services.esign.schemas import (
    ConfirmSchema,
    OpenRequestSchema,
    RefuseSchema,
    SigningRequestSchema,
    VerificationSchema,
)
from services.esign.storage import sha256_hex
from shared import clock
from shared.auth import Auth, Principal
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.problems import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "esign.dossier-decisions"
# Who may see a request and download its document, given a unit of the dossier in their jurisdiction:
# the signers, the desk that returns the result, the portal that filed it, the postal service.
READ_ROLES = ("leader", "clerk", "handling_officer", "desk_officer", "portal", "postal_operator", "auditor")
OPEN_ROLES = ("handling_officer", "leader", "admin")
UPLOAD_LIMIT_CEILING = 50 * 1024 * 1024
PURGE_SECONDS = 3600


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"
    explanation = (
        "The public verifier takes a limited number of uploads a minute from one address; `detail` says "
        "when to retry."
    )


@contextmanager
def domain_errors():
    """The one place the service layer's errors become HTTP problems."""
    try:
        yield
    except NotPermitted as exc:
        raise Forbidden(str(exc)) from exc
    except OutOfTurn as exc:
        raise Conflict(str(exc)) from exc
    except signing.StaleDocument as exc:
        raise Conflict(str(exc)) from exc
    except InvalidArgument as exc:
        raise ValidationFailed(str(exc), errors=[{"pointer": f"/{exc.field}", "detail": str(exc)}]) from exc
    except signing.RequestNotFound as exc:
        raise NotFound(f"no signing request {exc}") from exc
    except TimestampRequestError as exc:
        raise ServiceUnavailable(
            f"the timestamp authority did not answer ({exc}); nothing was signed"
        ) from exc
    except SigningError as exc:
        log.error("signing failed: %s", exc)
        raise ServiceUnavailable("the signing key could not be used; nothing was signed") from exc


def _as_dict(request: SigningRequest) -> dict:
    body = dict(vars(request))
    body["stage"] = request.stage.value
    body["signers"] = [vars(slot) for slot in request.signers]
    body["document_url"] = f"/api/v1/signing-requests/{request.id}/document"
    return SigningRequestSchema().dump(body)


def _pdf(data: bytes, name: str, digest: str) -> Response:
    return Response(
        data,
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
        # A rejection's text stays in the dossier service; the document states the reason's code.
        reason = (
            REASON_LABELS.get(data.get("reason_code") or "other") if data["decision"] == "rejected" else None
        )
        command = signing.OpenRequest(
            dossier_code=data["code"],
            decision=data["decision"],
            reason=reason,
            procedure_code=data["procedure_code"],
            receiving_unit=data["receiving_unit"],
            handling_unit=data["handling_unit"],
            now=clock.now(),
        )
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, QUEUE):
                return False
            uow = EsignUnitOfWork(tx, self.signing.units)
            signing.open_request(command, uow, self.signing)
            uow.collect()
        return True

    # --- signers --------------------------------------------------------------------------------------

    @api("POST", "/api/v1/signing-requests")
    def open_request(self, request):
        """Open a signing request by hand (normally the dossier's ``decided`` event does)."""
        principal = self.auth.principal(request)
        principal.require_role(*OPEN_ROLES)
        body = read_json(request, OpenRequestSchema())
        units = self.signing.units
        for key in ("receiving_unit", "handling_unit"):
            if body[key] not in units:
                detail = f"unknown unit code {body[key]!r}"
                raise ValidationFailed(detail, errors=[{"pointer": f"/{key}", "detail": detail}])
        if not principal.covers(units, body["handling_unit"]):
            raise Forbidden(f"unit {body['handling_unit']} is outside your jurisdiction")
        if body["decision"] == "rejected" and not (body.get("reason") or "").strip():
            raise ValidationFailed(
                "a rejection states its reason", errors=[{"pointer": "/reason", "detail": "required"}]
            )
        command = signing.OpenRequest(now=clock.now(), **body)

        def change(tx):
            opened, created = signing.open_request(command, EsignUnitOfWork(tx, units), self.signing)
            return (201 if created else 200), _as_dict(opened)

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/signing-requests/<string:request_id>")
    def get_request(self, request, request_id):
        principal = self.auth.principal(request)
        return _as_dict(self._readable(principal, request_id))

    @api("GET", "/api/v1/signing-requests/<string:request_id>/document")
    def get_document(self, request, request_id):
        """The current revision: what a signer looks at, and the signed result to hand over or post."""
        principal = self.auth.principal(request)
        found = self._readable(principal, request_id)
        data = self.signing.store.get(found.document_sha256)
        if data is None:
            raise NotFound(f"the document of request {request_id} is no longer kept")
        return _pdf(data, found.dossier_code, found.document_sha256)

    @api("GET", "/api/v1/results/<string:code>/signing-request")
    def get_dossier_request(self, request, code):
        """The latest signing request of a dossier."""
        return _as_dict(self._readable_dossier(self.auth.principal(request), code))

    @api("GET", "/api/v1/results/<string:code>")
    def get_result(self, request, code):
        """The latest result document of a dossier (the desk, the portal, the postal service)."""
        found = self._readable_dossier(self.auth.principal(request), code)
        data = self.signing.store.get(found.document_sha256)
        if data is None:
            raise NotFound(f"the result document of dossier {code} is no longer kept")
        return _pdf(data, code, found.document_sha256)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/signature")
    def sign(self, request, request_id):
        """The competent leader confirms the revision they saw; their visible PAdES signature is added."""
        return self._confirm(request, request_id, seal=False)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/seal")
    def seal(self, request, request_id):
        """The clerk applies the organisation's signature in a second revision, after the leader's."""
        return self._confirm(request, request_id, seal=True)

    @api("POST", "/api/v1/signing-requests/<string:request_id>/refusal")
    def refuse(self, request, request_id):
        """The leader declines to sign, with a reason: the dossier goes back for appraisal."""
        principal = self.auth.principal(request)
        body = read_json(request, RefuseSchema())
        self._readable(principal, request_id)
        command = signing.Refuse(
            request_id=request_id,
            signer=_signer(principal, body.get("signer_name")),
            units=principal.units,
            reason=body["reason"],
            reason_code=body["reason_code"],
            now=clock.now(),
        )
        return idempotent(self.uow, principal.sub, request, self._run(signing.refuse, command))

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
        return self._report(data)

    @api("GET", "/api/v1/verifications/<string:request_id>")
    def verify_stored(self, request, request_id):
        """Public, the QR code's link: the current revision of a result document, checked."""
        with self.uow.transaction() as tx:
            found = EsignUnitOfWork(tx, self.signing.units).requests.get(request_id)
        data = None if found is None else self.signing.store.get(found.document_sha256)
        if data is None:
            raise NotFound(f"no result document {request_id}")
        return self._report(data)

    @timer(interval=PURGE_SECONDS)
    def purge_expired(self) -> int:
        """Drop the document revisions past their retention."""
        with self.uow.transaction() as tx:
            requests = EsignUnitOfWork(tx, self.signing.units).requests
            expired = requests.expired_documents(clock.now())
            requests.forget_documents(expired)
        return self.signing.store.purge(expired)

    # --- helpers --------------------------------------------------------------------------------------

    def _may_read(self, principal: Principal, found: SigningRequest) -> bool:
        units = self.signing.units
        return principal.has_role(*READ_ROLES) and any(
            principal.covers(units, unit) for unit in (found.receiving_unit, found.handling_unit)
        )

    def _readable(self, principal: Principal, request_id: str) -> SigningRequest:
        with self.uow.transaction() as tx:
            found = EsignUnitOfWork(tx, self.signing.units).requests.get(request_id)
        if found is None or not self._may_read(principal, found):
            raise NotFound(f"no signing request {request_id}")
        return found

    def _readable_dossier(self, principal: Principal, code: str) -> SigningRequest:
        with self.uow.transaction() as tx:
            found = EsignUnitOfWork(tx, self.signing.units).requests.by_dossier(code)
        if found is None or not self._may_read(principal, found):
            raise NotFound(f"no result document for dossier {code}")
        return found

    def _confirm(self, request, request_id: str, *, seal: bool):
        principal = self.auth.principal(request)
        body = read_json(request, ConfirmSchema())
        self._readable(principal, request_id)
        command = signing.Confirm(
            request_id=request_id,
            seal=seal,
            signer=_signer(principal, body.get("signer_name")),
            units=principal.units,
            document_sha256=body["document_sha256"],
            now=clock.now(),
        )
        return idempotent(self.uow, principal.sub, request, self._run(signing.confirm, command))

    def _run(self, use_case, command):
        def change(tx):
            uow = EsignUnitOfWork(tx, self.signing.units)
            with domain_errors():
                changed = use_case(command, uow, self.signing)
            uow.collect()
            return 200, _as_dict(changed)

        return change

    def _report(self, data: bytes) -> dict:
        digest = sha256_hex(data)
        try:
            reports = pades.verify(data, self.signing.keys.trust_roots())
        except pades.NotAPdf as exc:
            raise UnsupportedMediaType(f"the file is not a PDF that can be checked: {exc}") from exc
        with self.uow.transaction() as tx:
            stored = EsignUnitOfWork(tx, self.signing.units).requests.document(digest) is not None
        return VerificationSchema().dump(
            {
                "sha256": digest,
                "size": len(data),
                "stored": stored,
                "verdict": pades.overall(reports),
                "signatures": [r.as_dict() for r in reports],
            }
        )


def _signer(principal: Principal, name: str | None) -> Signer:
    return Signer(sub=principal.sub, roles=principal.roles, name=name or principal.sub)
