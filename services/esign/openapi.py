"""The e-signature service's OpenAPI document, from the schemas in :mod:`services.esign.schemas`."""

from __future__ import annotations

from functools import cache

from services.esign.schemas import (
    ConfirmSchema,
    OpenRequestSchema,
    RefuseSchema,
    SigningRequestSchema,
    VerificationSchema,
)
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.3.0"
PDF = {"200": {"description": "the PDF", "content": {"application/pdf": {"schema": {"type": "string"}}}}}

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/signing-requests",
        "Open a signing request and produce the result document",
        "open_request",
        "signing",
        replayable=True,
        request=OpenRequestSchema,
        response=SigningRequestSchema,
        status=201,
        errors=(401, 403, 422),
        description="Roles handling_officer, leader or admin, with the handling unit in the caller's "
        "jurisdiction. Normally the dossier's `decided` event opens the request; this is the same by "
        "hand. An open request for the dossier is answered as it is (200).",
    ),
    Operation(
        "GET",
        "/api/v1/signing-requests/{request_id}",
        "A signing request: its signers in order, its stage, who signed when",
        "get_request",
        "signing",
        response=SigningRequestSchema,
        errors=(401, 404),
    ),
    Operation(
        "GET",
        "/api/v1/signing-requests/{request_id}/document",
        "The current revision of the result document (PDF)",
        "get_document",
        "signing",
        errors=(401, 404),
        description="The signers, the desk, the portal and the postal service (role postal_operator), "
        "with a unit of the dossier in their jurisdiction; 404 otherwise.",
        extra_responses=PDF,
    ),
    Operation(
        "GET",
        "/api/v1/results/{code}/signing-request",
        "The latest signing request of a dossier",
        "get_dossier_request",
        "signing",
        response=SigningRequestSchema,
        errors=(401, 404),
    ),
    Operation(
        "GET",
        "/api/v1/results/{code}",
        "The latest result document of a dossier (PDF), e.g. to post it",
        "get_result",
        "signing",
        errors=(401, 404),
        extra_responses=PDF,
    ),
    Operation(
        "POST",
        "/api/v1/signing-requests/{request_id}/signature",
        "The competent leader signs the revision they saw (visible PAdES signature)",
        "sign",
        "signing",
        replayable=True,
        request=ConfirmSchema,
        response=SigningRequestSchema,
        errors=(401, 403, 404, 409, 422, 503),
        description="Role leader, in the handling unit's jurisdiction (403 otherwise). 409 when the "
        "request is already signed or was refused, or when `document_sha256` is not the current "
        "revision. 503 when the timestamp authority or the key is unavailable: nothing is signed.",
    ),
    Operation(
        "POST",
        "/api/v1/signing-requests/{request_id}/seal",
        "The clerk applies the organisation's signature in a second revision",
        "seal",
        "signing",
        replayable=True,
        request=ConfirmSchema,
        response=SigningRequestSchema,
        errors=(401, 403, 404, 409, 422, 503),
        description="Role clerk, in the issuing unit's jurisdiction. 409 before the leader has signed, "
        "after a refusal, or when already sealed.",
    ),
    Operation(
        "POST",
        "/api/v1/signing-requests/{request_id}/refusal",
        "The leader refuses to sign, with a reason (the dossier goes back for appraisal)",
        "refuse",
        "signing",
        replayable=True,
        request=RefuseSchema,
        response=SigningRequestSchema,
        errors=(401, 403, 404, 409, 422),
    ),
    Operation(
        "POST",
        "/api/v1/verifications",
        "Check every signature of an uploaded PDF (public)",
        "verify_upload",
        "verification",
        response=VerificationSchema,
        public=True,
        errors=(413, 415, 429),
        description="No token. The body is the PDF itself (`Content-Type: application/pdf`), up to "
        "ESIGN_VERIFY_MAX_BYTES; at most ESIGN_VERIFY_PER_MINUTE uploads a minute per client address "
        "(429 after). Each signature: intact, trusted (chains to the configured roots), signer, signing "
        "time, timestamp, coverage, pyHanko's modification level and a verdict; and one overall verdict.",
    ),
    Operation(
        "GET",
        "/api/v1/verifications/{request_id}",
        "Check the stored result document a QR code points to (public)",
        "verify_stored",
        "verification",
        response=VerificationSchema,
        public=True,
        errors=(404,),
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    spec = build(
        title="motcua e-signature service",
        version=VERSION,
        description="Result documents, the leader's signature and the organisation's seal (PAdES), "
        "and public verification.",
        operations=OPERATIONS,
    )
    spec["paths"]["/api/v1/verifications"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    }
    return spec
