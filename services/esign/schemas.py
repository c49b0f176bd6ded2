"""marshmallow schemas of the e-signature service: request bodies, responses and event payloads.

The same schemas validate requests, render responses, generate the OpenAPI document and — for the
``esign.*`` events — the AsyncAPI catalogue. Unknown fields are refused.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.esign.document import REASON_LABELS
from services.esign.domain.model import Stage
from shared.events import event_type

UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")
DOSSIER_CODE = validate.Regexp(r"^[A-Za-z0-9._-]{1,60}$", error="not a dossier code")
DECISIONS = ("approved", "rejected")


class OpenRequestSchema(Schema):
    """A signing request opened by hand (the events of a decided dossier open one by themselves)."""

    dossier_code = fields.String(required=True, validate=DOSSIER_CODE)
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    procedure_code = fields.String(required=True, validate=validate.Length(min=1, max=60))
    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    handling_unit = fields.String(required=True, validate=UNIT_CODE)


class ConfirmSchema(Schema):
    """A signer's confirmation: they have seen the document with this SHA-256 and sign it."""

    document_sha256 = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9a-f]{64}$", error="the SHA-256 of the document you saw, in hex"),
    )
    signer_name = fields.String(
        load_default=None, validate=validate.Length(min=1, max=120), metadata={"description": "shown on it"}
    )


class RefuseSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    reason_code = fields.String(
        load_default="other",
        validate=validate.OneOf(list(REASON_LABELS)),
        metadata={"description": "the reason as a code: events carry it, the text stays behind the API"},
    )
    signer_name = fields.String(load_default=None, validate=validate.Length(min=1, max=120))


class SignerSlotSchema(Schema):
    role = fields.String()
    unit = fields.String()
    purpose = fields.String()


class SigningRequestSchema(Schema):
    id = fields.String()
    dossier_code = fields.String()
    decision = fields.String()
    reason = fields.String(allow_none=True)
    procedure_code = fields.String()
    receiving_unit = fields.String()
    handling_unit = fields.String()
    issuing_unit = fields.String()
    document_number = fields.String(
        allow_none=True, metadata={"description": "given when the document is issued (sealed); null before"}
    )
    stage = fields.String(validate=validate.OneOf([s.value for s in Stage]))
    signers = fields.List(fields.Nested(SignerSlotSchema))
    document_sha256 = fields.String(metadata={"description": "the current revision of the document"})
    document_url = fields.String()
    leader_sub = fields.String(allow_none=True)
    leader_name = fields.String(allow_none=True)
    signed_at = fields.AwareDateTime(allow_none=True)
    clerk_sub = fields.String(allow_none=True)
    clerk_name = fields.String(allow_none=True)
    sealed_at = fields.AwareDateTime(allow_none=True)
    refused_by = fields.String(allow_none=True)
    refused_at = fields.AwareDateTime(allow_none=True)
    refusal_reason = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()


class SignatureReportSchema(Schema):
    field = fields.String()
    intact = fields.Boolean()
    valid = fields.Boolean()
    trusted = fields.Boolean()
    signer = fields.String(allow_none=True)
    signer_organisation = fields.String(allow_none=True)
    signing_time = fields.String(allow_none=True, metadata={"description": "ISO 8601, Vietnam time"})
    timestamp = fields.String(allow_none=True, metadata={"description": "the TSA's time, if any"})
    timestamp_trusted = fields.Boolean(allow_none=True)
    coverage = fields.String(metadata={"description": "ENTIRE_FILE, ENTIRE_REVISION or CONTIGUOUS_BLOCKS"})
    modification_level = fields.String(allow_none=True, metadata={"description": "pyHanko's judgment"})
    verdict_ok = fields.Boolean()
    verdict = fields.String()


class VerificationSchema(Schema):
    sha256 = fields.String()
    size = fields.Integer()
    stored = fields.Boolean(metadata={"description": "the document is one this service issued"})
    verdict = fields.String(metadata={"description": "'valid and trusted', 'modified', 'unsigned', ..."})
    signatures = fields.List(fields.Nested(SignatureReportSchema))


# --- events (docs/contracts.md §1) --------------------------------------------------------------------


class SignatureEventSchema(Schema):
    """What every esign event carries: the dossier, the request, who acted and when — no personal data
    beyond the signer's official identity, which the audit trail records."""

    code = fields.String(required=True, metadata={"description": "mã hồ sơ"})
    request_id = fields.String(required=True)
    receiving_unit = fields.String(required=True)
    handling_unit = fields.String(required=True)
    issuing_unit = fields.String(required=True)
    signer_sub = fields.String(required=True, metadata={"description": "the signer's account (JWT sub)"})
    signer_name = fields.String(required=True)
    signer_role = fields.String(required=True, validate=validate.OneOf(["leader", "clerk"]))
    occurred_at = fields.AwareDateTime(required=True)


class DocumentEventSchema(SignatureEventSchema):
    document_sha256 = fields.String(required=True, metadata={"description": "the signed revision"})


@event_type("esign", "signed", "The competent leader signed the result document (PAdES, visible).")
class SignedEventSchema(DocumentEventSchema):
    pass


@event_type(
    "esign",
    "sealed",
    "The clerk issued the result document: the organisation's signature (the seal) in a second "
    "revision, with the document's number and date.",
)
class SealedEventSchema(DocumentEventSchema):
    document_number = fields.String(
        required=True,
        metadata={
            "description": "the issuing unit's register number, 01, 02, … from 1 January (Vietnam time) "
            "of the year of issue; given at the seal"
        },
    )


@event_type(
    "esign",
    "refused",
    "The leader refused to sign, with a reason: back to the handling agency for appraisal.",
)
class RefusedEventSchema(SignatureEventSchema):
    reason_code = fields.String(required=True, validate=validate.OneOf(list(REASON_LABELS)))
    has_reason_text = fields.Boolean(
        required=True, metadata={"description": "the leader wrote a reason: read it through the API"}
    )
