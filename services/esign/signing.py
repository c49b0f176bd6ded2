"""The service layer: each use case is a function ``(command, uow, tools)``.

Where a result document is produced (:func:`open_request`), where the leader signs and the clerk
seals (:func:`confirm`), where a leader refuses (:func:`refuse`). The rules of who and when live in
:mod:`services.esign.domain.model`; the cryptography in :mod:`services.esign.pades`; the keys behind
:class:`services.esign.keys.KeyStore`. The entrypoints in ``service.py`` only parse and answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyhanko.sign.timestamps import TimeStamper

from services.esign import pades
from services.esign.document import ResultDocument, render_result
from services.esign.domain.model import DocumentNumber, Signer, SigningRequest, Stage, register_year
from services.esign.keys import KeyStore
from services.esign.storage import DocumentStore
from shared.units import UnitRegistry


class RequestNotFound(LookupError):
    pass


class StaleDocument(Exception):
    """The signer confirmed another revision than the current one (it changed since they looked)."""


@dataclass(frozen=True)
class Tools:
    """What the use cases sign and store with (one per service process)."""

    keys: KeyStore
    store: DocumentStore
    units: UnitRegistry
    timestamper: TimeStamper | None
    retention: timedelta
    public_url: str  # where the QR code points: the public verification page
    place: str
    leader_title: str


@dataclass(frozen=True)
class OpenRequest:
    dossier_code: str
    decision: str
    reason: str | None
    procedure_code: str
    receiving_unit: str
    handling_unit: str
    now: datetime


@dataclass(frozen=True)
class Confirm:
    """A signer confirms the revision they saw: the leader signs, or (``seal``) the clerk seals."""

    request_id: str
    seal: bool
    signer: Signer
    units: tuple[str, ...]
    document_sha256: str
    now: datetime


@dataclass(frozen=True)
class Refuse:
    request_id: str
    signer: Signer
    units: tuple[str, ...]
    reason: str
    reason_code: str
    now: datetime


def verify_url(tools: Tools, request_id: str) -> str:
    return f"{tools.public_url.rstrip('/')}/api/v1/verifications/{request_id}"


def _unit_name(tools: Tools, code: str) -> str:
    return tools.units.get(code).name if code in tools.units else code


def _series(tools: Tools, issuing_unit: str) -> str:
    """The symbol after a result's number: KQ and the unit's identifier code."""
    identifier = tools.units.get(issuing_unit).identifier if issuing_unit in tools.units else None
    return f"KQ-{identifier or issuing_unit}"


def open_request(command: OpenRequest, uow, tools: Tools) -> tuple[SigningRequest, bool]:
    """Produce the result document of a decided dossier and the request to sign it.

    Idempotent per decision: an open or completed request for the dossier is returned as it is
    (``False``: nothing new). After a refusal the dossier is appraised and decided again, and the new
    decision gets a new request. The document has no number yet: it takes one when it is issued.
    """
    existing = uow.requests.by_dossier(command.dossier_code)
    if existing is not None and existing.stage is not Stage.REFUSED:
        return existing, False
    issuing_unit = command.handling_unit
    request_id = str(uuid.uuid4())
    pdf = render_result(
        ResultDocument(
            unit_name=_unit_name(tools, issuing_unit),
            unit_code=issuing_unit,
            series=_series(tools, issuing_unit),
            drafted_at=command.now,
            place=tools.place,
            dossier_code=command.dossier_code,
            procedure=command.procedure_code,
            applicant_reference=command.dossier_code,
            decision=command.decision,
            reason=command.reason,
            verify_url=verify_url(tools, request_id),
            signer_title=tools.leader_title,
        )
    )
    digest = tools.store.put(pdf)
    uow.requests.record_document(digest, request_id, "unsigned", len(pdf), command.now, tools.retention)
    request = SigningRequest(
        id=request_id,
        dossier_code=command.dossier_code,
        decision=command.decision,
        reason=command.reason,
        procedure_code=command.procedure_code,
        receiving_unit=command.receiving_unit,
        handling_unit=command.handling_unit,
        issuing_unit=issuing_unit,
        created_at=command.now,
        document_sha256=digest,
    )
    uow.requests.add(request)
    return request, True


def _load(uow, request_id: str) -> SigningRequest:
    request = uow.requests.get(request_id, for_update=True)
    if request is None:
        raise RequestNotFound(request_id)
    return request


def confirm(command: Confirm, uow, tools: Tools) -> SigningRequest:
    """The leader's signature, or with ``seal`` the organisation's, on the current revision.

    Who may act and when is checked before any key is touched; the signer must have seen the current
    revision (its SHA-256), so nobody signs a document other than the one they were shown.
    """
    request = _load(uow, command.request_id)
    covers = tools.units.covers
    sealing = command.seal
    if sealing:
        request.check_can_seal(command.signer, command.units, covers)
    else:
        request.check_can_sign(command.signer, command.units, covers)
    if command.document_sha256 != request.document_sha256:
        raise StaleDocument(
            f"the document is now at revision {request.document_sha256}, not the one you confirmed; "
            "look at it again before you sign"
        )
    current = tools.store.get(request.document_sha256)
    if current is None:
        raise RequestNotFound(f"document {request.document_sha256} is no longer stored")
    number = None
    if sealing:
        # Issued now: the register's next number (its row stays locked to the commit: one unit's seals queue).
        if request.needs_number():
            year = register_year(command.now)
            taken = uow.requests.next_document_number(request.issuing_unit, year)
            number = DocumentNumber(year, taken, _series(tools, request.issuing_unit))
        unit_name = _unit_name(tools, request.issuing_unit)
        signed = pades.seal(
            current,
            tools.keys.signer_for(f"org:{request.issuing_unit}", unit_name),
            unit_name=unit_name,
            location=tools.place,
            document_number=number.text if number else str(request.document_number),
            issued_at=command.now,
            timestamper=tools.timestamper,
        )
    else:
        signed = pades.sign_as_leader(
            current,
            tools.keys.signer_for(f"person:{command.signer.sub}", command.signer.name),
            signer_name=command.signer.name,
            location=tools.place,
            now=command.now,
            timestamper=tools.timestamper,
        )
    digest = tools.store.put(signed)
    revision = "sealed" if sealing else "signed"
    uow.requests.record_document(digest, request.id, revision, len(signed), command.now, tools.retention)
    if sealing:
        request.seal(
            command.signer, command.units, covers, now=command.now, document_sha256=digest, number=number
        )
    else:
        request.sign(command.signer, command.units, covers, now=command.now, document_sha256=digest)
    uow.requests.save(request)
    return request


def refuse(command: Refuse, uow, tools: Tools) -> SigningRequest:
    request = _load(uow, command.request_id)
    request.refuse(
        command.signer,
        command.units,
        tools.units.covers,
        now=command.now,
        reason=command.reason,
        reason_code=command.reason_code,
    )
    uow.requests.save(request)
    return request
