"""The esign service layer: the use cases behind its entrypoints, as plain functions
``(command, uow, context)`` (shared/usecase.py).

``open_from_decision`` / ``open_request``: a decided dossier's result document and the request to sign
it. ``sign`` / ``seal`` / ``refuse``: the leader's signature, the clerk's seal (the document's number
and date of issue), the leader's refusal. The reads and the public verifier; ``purge_expired``.

The rules of who and when live in the domain (services/esign/domain/model.py); the jurisdiction check
is ``Principal.require_jurisdiction``; errors are the domain's (shared/domain.py), which
shared/http.py ``problem_for`` answers. The signing request's events are published by its repository
(services/esign/repository.py ``SigningRequests``) at commit. The signatures, the document store and
the renderer are adapters in the context (:class:`EsignContext`), so the rules run without them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.esign.document import REASON_LABELS, ResultDocument, render_result
from services.esign.domain.model import DocumentNumber, Signer, SigningRequest, Stage, register_year
from services.esign.pades import SignatureReport, overall
from services.esign.repository import SigningRequests
from services.esign.storage import sha256_hex
from shared.auth import Principal
from shared.domain import Conflict, Invalid, NotFound
from shared.uow import Transaction
from shared.usecase import Context, UnitOfWork

# Who may open a request by hand (the dossier's decided event opens one by itself).
OPEN_ROLES = ("handling_officer", "leader", "admin")
# Who may see a request and download its document, given a unit of the dossier in their jurisdiction:
# the signers, the desk that returns the result, the portal that filed it, the postal service.
READ_ROLES = ("leader", "clerk", "handling_officer", "desk_officer", "portal", "postal_operator", "auditor")


class Signatures(Protocol):
    """What the use cases sign and check with (services/esign/pades.py ``PadesSignatures``)."""

    def sign(self, pdf: bytes, *, signer_sub: str, signer_name: str, now: datetime) -> bytes: ...

    def seal(
        self, pdf: bytes, *, unit: str, unit_name: str, document_number: str, issued_at: datetime
    ) -> bytes: ...

    def verify(self, pdf: bytes) -> list[SignatureReport]: ...


class Documents(Protocol):
    """The content-addressed store of the documents' bytes (services/esign/storage.py)."""

    def put(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes | None: ...

    def purge(self, digests: Iterable[str]) -> int: ...


@dataclass(frozen=True, kw_only=True)
class EsignContext(Context):
    """The esign service's use-case context (shared/usecase.py): besides the unit map, the calendar and
    the clock, the signatures (keys, timestamp authority), the document store and renderer, the
    document settings and the repository of a transaction."""

    signatures: Signatures
    documents: Documents
    retention: timedelta
    public_url: str  # where the QR code points: the public verification page
    place: str
    leader_title: str
    render: Callable[[ResultDocument], bytes] = render_result
    repository: Callable[..., SigningRequests] = SigningRequests

    def requests(self, tx: Transaction) -> SigningRequests:
        """The repository of ``tx``: the requests it loads or adds publish their events at commit."""
        return self.repository(tx, self.units)


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A dossier's decision (its ``dossier.decided`` event): the data the result document states."""

    dossier_code: str
    decision: str
    reason_code: str | None
    procedure_code: str
    receiving_unit: str
    handling_unit: str


@dataclass(frozen=True)
class OpenRequest:
    """A request opened by hand: a validated OpenRequestSchema body."""

    principal: Principal
    dossier_code: str
    decision: str
    reason: str | None
    procedure_code: str
    receiving_unit: str
    handling_unit: str


@dataclass(frozen=True)
class Confirm:
    """A signer confirms the revision they saw (its SHA-256): the leader signs, or the clerk seals."""

    principal: Principal
    request_id: str
    document_sha256: str
    signer_name: str | None = None


@dataclass(frozen=True)
class Refuse:
    principal: Principal
    request_id: str
    reason: str
    reason_code: str = "other"
    signer_name: str | None = None


@dataclass(frozen=True)
class ReadRequest:
    principal: Principal
    request_id: str


@dataclass(frozen=True)
class ReadResult:
    """A dossier's latest signing request, or its result document."""

    principal: Principal
    dossier_code: str


@dataclass(frozen=True)
class Verify:
    """A PDF to check: uploaded (``pdf``) or the stored current revision of ``request_id``."""

    pdf: bytes = b""
    request_id: str | None = None


@dataclass(frozen=True)
class Document:
    request: SigningRequest
    data: bytes


# --- opening -------------------------------------------------------------------------------------


def open_from_decision(cmd: Decided, tx: Transaction, ctx: EsignContext) -> tuple[SigningRequest, bool]:
    """A decided dossier (approved, or rejected with its reason) gets its result document."""
    # A rejection's text stays in the dossier service; the document states the reason's code.
    reason = REASON_LABELS.get(cmd.reason_code or "other") if cmd.decision == "rejected" else None
    return _open(cmd, reason, tx, ctx)


def open_request(cmd: OpenRequest, tx: Transaction, ctx: EsignContext) -> tuple[SigningRequest, bool]:
    """Open a signing request by hand, for a unit in the caller's jurisdiction."""
    cmd.principal.require_role(*OPEN_ROLES)
    if cmd.receiving_unit not in ctx.units:
        raise Invalid("receiving_unit", f"unknown unit code {cmd.receiving_unit!r}")
    cmd.principal.require_jurisdiction(ctx.units, cmd.handling_unit, field="handling_unit")
    if cmd.decision == "rejected" and not (cmd.reason or "").strip():
        raise Invalid("reason", "a rejection states its reason")
    return _open(cmd, cmd.reason, tx, ctx)


def _open(
    cmd: Decided | OpenRequest, reason: str | None, tx: Transaction, ctx: EsignContext
) -> tuple[SigningRequest, bool]:
    """Produce the result document of a decided dossier and the request to sign it.

    Idempotent per decision: an open or completed request for the dossier is returned as it is
    (``False``: nothing new). After a refusal the dossier is appraised and decided again, and the new
    decision gets a new request. The document has no number yet: it takes one when it is issued.
    """
    requests = ctx.requests(tx)
    existing = requests.by_dossier(cmd.dossier_code)
    if existing is not None and existing.stage is not Stage.REFUSED:
        return existing, False
    now, issuing_unit, request_id = ctx.clock(), cmd.handling_unit, str(uuid.uuid4())
    pdf = ctx.render(
        ResultDocument(
            unit_name=_unit_name(ctx, issuing_unit),
            unit_code=issuing_unit,
            series=_series(ctx, issuing_unit),
            drafted_at=now,
            place=ctx.place,
            dossier_code=cmd.dossier_code,
            procedure=cmd.procedure_code,
            applicant_reference=cmd.dossier_code,
            decision=cmd.decision,
            reason=reason,
            verify_url=verify_url(ctx, request_id),
            signer_title=ctx.leader_title,
        )
    )
    digest = _keep(requests, ctx, pdf, request_id, "unsigned", now)
    request = SigningRequest(
        id=request_id,
        dossier_code=cmd.dossier_code,
        decision=cmd.decision,
        reason=reason,
        procedure_code=cmd.procedure_code,
        receiving_unit=cmd.receiving_unit,
        handling_unit=cmd.handling_unit,
        issuing_unit=issuing_unit,
        created_at=now,
        document_sha256=digest,
    )
    requests.add(request)
    return request, True


# --- signing -------------------------------------------------------------------------------------


def sign(cmd: Confirm, tx: Transaction, ctx: EsignContext) -> SigningRequest:
    """The competent leader's signature on the revision they saw (checked before any key is touched)."""
    requests = ctx.requests(tx)
    request, signer = _to_act_on(requests, cmd.principal, cmd.request_id, cmd.signer_name, ctx)
    cmd.principal.require_jurisdiction(ctx.units, request.signers[0].unit)
    request.check_can_sign(signer)
    current = _current(request, cmd.document_sha256, ctx)
    now = ctx.clock()
    signed = ctx.signatures.sign(current, signer_sub=signer.sub, signer_name=signer.name, now=now)
    request.sign(signer, now=now, document_sha256=_keep(requests, ctx, signed, request.id, "signed", now))
    return request


def seal(cmd: Confirm, tx: Transaction, ctx: EsignContext) -> SigningRequest:
    """The clerk issues the document: the organisation's signature, with its number and date.

    The number is the next of the issuing unit's register of the Vietnam-local year of issue; its
    counter row stays locked to the commit, so one unit's seals queue and the register has no gap.
    """
    requests = ctx.requests(tx)
    request, signer = _to_act_on(requests, cmd.principal, cmd.request_id, cmd.signer_name, ctx)
    cmd.principal.require_jurisdiction(ctx.units, request.signers[1].unit)
    request.check_can_seal(signer)
    current = _current(request, cmd.document_sha256, ctx)
    now = ctx.clock()
    number = None
    if request.needs_number():
        year = register_year(now)
        taken = requests.next_document_number(request.issuing_unit, year)
        number = DocumentNumber(year, taken, _series(ctx, request.issuing_unit))
    sealed = ctx.signatures.seal(
        current,
        unit=request.issuing_unit,
        unit_name=_unit_name(ctx, request.issuing_unit),
        document_number=number.text if number else str(request.document_number),
        issued_at=now,
    )
    digest = _keep(requests, ctx, sealed, request.id, "sealed", now)
    request.seal(signer, now=now, document_sha256=digest, number=number)
    return request


def refuse(cmd: Refuse, tx: Transaction, ctx: EsignContext) -> SigningRequest:
    """The leader declines to sign, with a reason: the dossier goes back for appraisal."""
    request, signer = _to_act_on(ctx.requests(tx), cmd.principal, cmd.request_id, cmd.signer_name, ctx)
    cmd.principal.require_jurisdiction(ctx.units, request.signers[0].unit)
    request.refuse(signer, now=ctx.clock(), reason=cmd.reason, reason_code=cmd.reason_code)
    return request


def _to_act_on(
    requests: SigningRequests,
    principal: Principal,
    request_id: str,
    signer_name: str | None,
    ctx: EsignContext,
) -> tuple[SigningRequest, Signer]:
    request = requests.get(request_id, for_update=True)
    if request is None or not _may_read(principal, request, ctx):
        raise NotFound(f"no signing request {request_id}")
    return request, Signer(sub=principal.sub, roles=principal.roles, name=signer_name or principal.sub)


def _current(request: SigningRequest, confirmed: str, ctx: EsignContext) -> bytes:
    """The current revision's bytes, if it is the one the signer confirmed: nobody signs a document
    other than the one they were shown."""
    if confirmed != request.document_sha256:
        raise Conflict(
            f"the document is now at revision {request.document_sha256}, not the one you confirmed; "
            "look at it again before you sign"
        )
    current = ctx.documents.get(request.document_sha256)
    if current is None:
        raise NotFound(
            f"document {request.document_sha256} of signing request {request.id} is no longer kept"
        )
    return current


def _keep(
    requests: SigningRequests, ctx: EsignContext, pdf: bytes, request_id: str, revision: str, now: datetime
) -> str:
    """Store a revision and record it, kept for the retention period; returns its SHA-256."""
    digest = ctx.documents.put(pdf)
    requests.record_document(digest, request_id, revision, len(pdf), now, ctx.retention)
    return digest


# --- reading -------------------------------------------------------------------------------------


def read_request(cmd: ReadRequest, tx: Transaction, ctx: EsignContext) -> SigningRequest:
    request = ctx.requests(tx).get(cmd.request_id)
    if request is None or not _may_read(cmd.principal, request, ctx):
        raise NotFound(f"no signing request {cmd.request_id}")
    return request


def read_result(cmd: ReadResult, tx: Transaction, ctx: EsignContext) -> SigningRequest:
    """The dossier's latest signing request."""
    request = ctx.requests(tx).by_dossier(cmd.dossier_code)
    if request is None or not _may_read(cmd.principal, request, ctx):
        raise NotFound(f"no result document for dossier {cmd.dossier_code}")
    return request


def request_document(cmd: ReadRequest, tx: Transaction, ctx: EsignContext) -> Document:
    """The current revision: what a signer looks at, and the signed result to hand over or post."""
    request = read_request(cmd, tx, ctx)
    return Document(
        request, _stored(ctx, request, f"the document of request {cmd.request_id} is no longer kept")
    )


def result_document(cmd: ReadResult, tx: Transaction, ctx: EsignContext) -> Document:
    """The latest result document of a dossier (the desk, the portal, the postal service)."""
    request = read_result(cmd, tx, ctx)
    detail = f"the result document of dossier {cmd.dossier_code} is no longer kept"
    return Document(request, _stored(ctx, request, detail))


def _stored(ctx: EsignContext, request: SigningRequest, detail: str) -> bytes:
    data = ctx.documents.get(request.document_sha256)
    if data is None:
        raise NotFound(detail)
    return data


def _may_read(principal: Principal, request: SigningRequest, ctx: EsignContext) -> bool:
    """A reader's role and a unit of the dossier in their jurisdiction; anyone else does not see it."""
    return principal.has_role(*READ_ROLES) and any(
        principal.covers(ctx.units, unit) for unit in (request.receiving_unit, request.handling_unit)
    )


# --- anyone: verification, and the store's retention ---------------------------------------------


def verify(cmd: Verify, tx: Transaction, ctx: EsignContext) -> dict[str, Any]:
    """Every signature of a PDF checked (pades.NotAPdf if it cannot be read), and whether this service
    issued it. A stored request's revision: NotFound when there is no such request or document."""
    requests, data = ctx.requests(tx), cmd.pdf
    if cmd.request_id is not None:
        request = requests.get(cmd.request_id)
        stored = None if request is None else ctx.documents.get(request.document_sha256)
        if stored is None:
            raise NotFound(f"no result document {cmd.request_id}")
        data = stored
    digest = sha256_hex(data)
    reports = ctx.signatures.verify(data)
    return {
        "sha256": digest,
        "size": len(data),
        "stored": requests.is_stored(digest),
        "verdict": overall(reports),
        "signatures": [r.as_dict() for r in reports],
    }


def purge_expired(uow: UnitOfWork, ctx: EsignContext) -> int:
    """Drop the document revisions past their retention; how many files went."""
    with uow.transaction() as tx:
        requests = ctx.requests(tx)
        expired = requests.expired_documents(ctx.clock())
        requests.forget_documents(expired)
    return ctx.documents.purge(expired)


# --- the document's words ------------------------------------------------------------------------


def verify_url(ctx: EsignContext, request_id: str) -> str:
    return f"{ctx.public_url.rstrip('/')}/api/v1/verifications/{request_id}"


def _unit_name(ctx: EsignContext, code: str) -> str:
    return ctx.units.get(code).name if code in ctx.units else code


def _series(ctx: EsignContext, issuing_unit: str) -> str:
    """The symbol after a result's number: KQ and the unit's identifier code."""
    identifier = ctx.units.get(issuing_unit).identifier if issuing_unit in ctx.units else None
    return f"KQ-{identifier or issuing_unit}"
