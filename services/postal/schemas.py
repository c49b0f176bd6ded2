"""marshmallow schemas of the postal service: request bodies, responses, webhook and event payloads.

The same schemas validate requests, render responses, generate the OpenAPI document and — for
events — the AsyncAPI catalogue. Events carry codes, statuses, units and dates: never a name,
an address or a phone (docs/contracts.md §1 Events "Minimal data").
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.postal.domain.model import (
    CANCEL_REASONS,
    LOSS_CAUSES,
    PAYERS,
    REDELIVERY_CAUSES,
    Direction,
    ItemOutcome,
    ShipmentStatus,
)
from shared.events import event_type
from shared.fields import Text
from shared.vocabulary import REASON_CODES

UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")
DOSSIER_CODE = r"^[A-Za-z0-9._-]{1,60}$"
PHONE = validate.Regexp(r"^\+?[0-9]{9,15}$", error="not a phone number")


def _text(max_length: int, **kwargs) -> Text:
    return Text(
        validate=[validate.Length(min=1, max=max_length), validate.Regexp(r"\S", error="must not be blank")],
        **kwargs,
    )


# --- the operator's webhook (docs/contracts.md §3) -----------------------------------------------


class WebhookRecipientSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    kind = fields.String(load_default="applicant", validate=validate.OneOf(["applicant", "proxy"]))
    name = _text(200, load_default=None, allow_none=True)


class WebhookCompensationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    amount_vnd = fields.Integer(required=True, validate=validate.Range(min=0, max=10**10))
    cause = fields.String(
        load_default="other",
        validate=validate.Length(min=1, max=60),
        metadata={"description": f"one of {', '.join(LOSS_CAUSES)}; any other is recorded as other"},
    )


class TrackingWebhookSchema(Schema):
    """A tracking report as the operator sends it; fields this service does not use are ignored."""

    class Meta:
        unknown = EXCLUDE

    consignment = fields.String(required=True, validate=validate.Length(min=1, max=60))
    status = fields.String(
        required=True,
        validate=validate.Length(min=1, max=60),
        metadata={"description": "the operator's own status name; unknown names are stored and alerted on"},
    )
    occurred_at = fields.AwareDateTime(required=True)
    recipient = fields.Nested(WebhookRecipientSchema, load_default=None, allow_none=True)
    note = Text(load_default=None, allow_none=True, validate=validate.Length(max=1000))
    compensation = fields.Nested(
        WebhookCompensationSchema,
        load_default=None,
        allow_none=True,
        metadata={"description": "with a loss: what the operator pays, and why it was lost"},
    )


class WebhookAckSchema(Schema):
    webhook_id = fields.String()
    outcome = fields.String(
        metadata={
            "description": "applied, late, repeated, unknown_status, lost, before_handover (a delivery's "
            "report before its co-signed hand-over record: stored, alerted, no movement), or duplicate"
        }
    )
    shipment_status = fields.String()


# --- pickups ---------------------------------------------------------------------------------------


class ApplicantSchema(Schema):
    """Who files: forwarded to the dossier service's registration, not kept here."""

    full_name = _text(200, required=True)
    id_number = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{9}$|^[0-9]{12}$", error="must be a 12-digit or 9-digit ID number"),
    )
    phone = fields.String(validate=PHONE)
    email = fields.Email(validate=validate.Length(max=254))


class ContactSchema(Schema):
    name = _text(200, required=True)
    phone = fields.String(required=True, validate=PHONE)
    address = _text(500, required=True)


class DocumentSchema(Schema):
    name = _text(300, required=True)
    copies = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))


class PickupRequestSchema(Schema):
    """Nhận hồ sơ tại nhà: the portal (or the operator) asks for a pickup on the applicant's behalf."""

    procedure_code = _text(40, required=True)
    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    applicant = fields.Nested(ApplicantSchema, required=True)
    pickup = fields.Nested(ContactSchema, required=True, metadata={"description": "where to collect it"})
    documents = fields.List(
        fields.Nested(DocumentSchema), required=True, validate=validate.Length(min=1, max=100)
    )
    packages = fields.Integer(load_default=1, validate=validate.Range(min=1, max=20))
    return_method = fields.String(load_default="counter", validate=validate.OneOf(["counter", "postal"]))
    return_to = fields.Nested(
        ContactSchema,
        load_default=None,
        allow_none=True,
        metadata={"description": "where the result goes by post (default: the pickup contact)"},
    )


class ResultDocumentSchema(Schema):
    """A reference to the signed result (the esign service's document), never its content."""

    reference = _text(300, required=True)
    sha256 = fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$", error="64 lowercase hex digits"))
    media_type = fields.String(load_default="application/pdf", validate=validate.Length(max=100))


class ShipmentSchema(Schema):
    id = fields.String()
    dossier_code = fields.String()
    direction = fields.String(validate=validate.OneOf([d.value for d in Direction]))
    operator = fields.String()
    consignment = fields.String()
    receiving_unit = fields.String()
    packages = fields.Integer()
    fee_vnd = fields.Integer()
    charged_to = fields.String()
    status = fields.String(validate=validate.OneOf([s.value for s in ShipmentStatus]))
    status_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    promised_at = fields.AwareDateTime(allow_none=True)
    attempts = fields.Integer()
    delivered_at = fields.AwareDateTime(allow_none=True)
    handed_over_at = fields.AwareDateTime(allow_none=True)
    recipient_kind = fields.String(allow_none=True)
    recipient_name = fields.String(allow_none=True, metadata={"description": "an authorised proxy's name"})
    result_document = fields.Dict(allow_none=True)
    lost_at = fields.AwareDateTime(allow_none=True, metadata={"description": "the operator lost it"})
    loss_cause = fields.String(allow_none=True, validate=validate.OneOf(LOSS_CAUSES))
    compensation_vnd = fields.Integer(
        allow_none=True, metadata={"description": "what the operator pays for the loss, as it reported"}
    )
    cancel_reason = fields.String(
        allow_none=True,
        validate=validate.OneOf(CANCEL_REASONS),
        metadata={"description": "motcua asked the operator to cancel, because the dossier ended"},
    )
    redelivery_cause = fields.String(
        allow_none=True,
        validate=validate.OneOf(list(REDELIVERY_CAUSES)),
        metadata={"description": "a second delivery: why; charged_to follows from it"},
    )


class ShipmentListSchema(Schema):
    dossier_code = fields.String()
    results = fields.List(fields.Nested(ShipmentSchema))


# --- hand-over records -------------------------------------------------------------------------------


class RecordItemRequestSchema(Schema):
    consignment = fields.String(required=True, validate=validate.Length(min=1, max=60))
    packages_counted = fields.Integer(required=True, validate=validate.Range(min=0, max=100))


class HandoverRecordRequestSchema(Schema):
    """Biên bản giao nhận: the consignments on the counter, with the packages both sides counted."""

    direction = fields.String(required=True, validate=validate.OneOf([d.value for d in Direction]))
    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    items = fields.List(
        fields.Nested(RecordItemRequestSchema), required=True, validate=validate.Length(min=1, max=500)
    )


class DecisionSchema(Schema):
    consignment = fields.String(required=True, validate=validate.Length(min=1, max=60))
    outcome = fields.String(required=True, validate=validate.OneOf([o.value for o in ItemOutcome]))
    reason = _text(2000, load_default=None, allow_none=True, metadata={"description": "required to refuse"})
    reason_code = fields.String(
        load_default="other",
        validate=validate.OneOf(REASON_CODES),
        metadata={"description": "a refusal's reason as a code, which events carry (the text does not)"},
    )


class SignatureRequestSchema(Schema):
    """A side signs. The desk's signature carries its decision on each dossier of a pickup record."""

    decisions = fields.List(fields.Nested(DecisionSchema), load_default=list)


class RecordItemSchema(Schema):
    consignment = fields.String()
    dossier_code = fields.String()
    packages_declared = fields.Integer()
    packages_counted = fields.Integer()
    discrepancy = fields.String(allow_none=True, metadata={"description": "missing or count_mismatch"})
    outcome = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    reason_code = fields.String(allow_none=True)


class HandoverRecordSchema(Schema):
    id = fields.String()
    direction = fields.String()
    receiving_unit = fields.String()
    created_at = fields.AwareDateTime()
    operator_signed_by = fields.String(allow_none=True)
    operator_signed_at = fields.AwareDateTime(allow_none=True)
    desk_signed_by = fields.String(allow_none=True)
    desk_signed_at = fields.AwareDateTime(allow_none=True)
    signed_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "the later signature: each received dossier's filing time"}
    )
    items = fields.List(fields.Nested(RecordItemSchema))


# --- returns by post -----------------------------------------------------------------------------------


class PostalReturnRequestSchema(Schema):
    """How a dossier's result goes back by post: the recipient (from the desk or the portal) and the
    signed result's reference (from the signing service). Either may come first; each call keeps
    what the other gave."""

    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    recipient = fields.Nested(ContactSchema, metadata={"description": "the applicant or an authorised proxy"})
    result_document = fields.Nested(ResultDocumentSchema)

    @validates_schema
    def _something(self, data, **kwargs) -> None:
        if "recipient" not in data and "result_document" not in data:
            raise ValidationError("give the recipient, the result document, or both", "recipient")


class RedeliveryRequestSchema(Schema):
    """After the last delivery came back (returned, lost or cancelled): send it again, to a corrected
    address if one is given; the cause is recorded and decides who pays (whoever caused the repeat)."""

    cause = fields.String(
        required=True,
        validate=validate.OneOf(list(REDELIVERY_CAUSES)),
        metadata={
            "description": "; ".join(
                f"{cause}: paid by the {payer}" for cause, payer in REDELIVERY_CAUSES.items()
            )
        },
    )
    charged_to = fields.String(
        validate=validate.OneOf(PAYERS),
        metadata={"description": "optional; when given it must be the payer the cause names"},
    )
    recipient = fields.Nested(
        ContactSchema, metadata={"description": "the corrected recipient and address (default: as before)"}
    )

    @validates_schema
    def _payer_follows_the_cause(self, data, **kwargs) -> None:
        cause, payer = data.get("cause"), data.get("charged_to")
        if cause in REDELIVERY_CAUSES and payer is not None and payer != REDELIVERY_CAUSES[cause]:
            raise ValidationError(
                f"a redelivery caused by {cause} is paid by the {REDELIVERY_CAUSES[cause]}", "charged_to"
            )


class PostalReturnSchema(Schema):
    dossier_code = fields.String()
    receiving_unit = fields.String()
    result_document = fields.Dict(allow_none=True)
    resolved_at = fields.AwareDateTime(allow_none=True, metadata={"description": "when the result was ready"})
    recipient_given = fields.Boolean(metadata={"description": "the recipient's address is known"})
    delivery = fields.Nested(ShipmentSchema, allow_none=True)


# --- events (postal.*) --------------------------------------------------------------------------------


class ShipmentEventSchema(Schema):
    """What every postal event carries: the dossier, the consignment, statuses, units and dates."""

    code = fields.String(required=True, metadata={"description": "mã hồ sơ"})
    shipment_id = fields.String(required=True)
    direction = fields.String(required=True, validate=validate.OneOf([d.value for d in Direction]))
    operator = fields.String(required=True)
    consignment = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in ShipmentStatus]))
    receiving_unit = fields.String(required=True)
    packages = fields.Integer(required=True)
    attempts = fields.Integer(required=True)
    promised_at = fields.AwareDateTime(required=True, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True)


class TrackedEventSchema(ShipmentEventSchema):
    previous_status = fields.String(required=True, validate=validate.OneOf([s.value for s in ShipmentStatus]))


@event_type(
    "postal", "ordered", "The operator accepted an order: a pickup at the applicant's door or a delivery."
)
class OrderedEventSchema(ShipmentEventSchema):
    fee_vnd = fields.Integer(required=True)
    charged_to = fields.String(required=True, validate=validate.OneOf(PAYERS))
    redelivery_cause = fields.String(
        allow_none=True,
        validate=validate.OneOf(list(REDELIVERY_CAUSES)),
        metadata={"description": "a second delivery: why (it decides charged_to); null for a first order"},
    )


for _status, _summary in (
    (
        "picked_up",
        "The operator collected the consignment (from the applicant, or the result from the desk).",
    ),
    ("in_transit", "The consignment is on its way."),
    ("out_for_delivery", "A delivery attempt started."),
    ("delivery_failed", "A delivery attempt failed; the operator retries or sends it back."),
    (
        "returned_to_sender",
        "The result came back to the desk: it waits for counter pickup or a new delivery.",
    ),
):
    event_type("postal", _status, _summary)(
        type(f"{_status.title().replace('_', '')}EventSchema", (TrackedEventSchema,), {})
    )


@event_type(
    "postal",
    "cancelled",
    "The order was cancelled (a pickup or a delivery, see direction): because the dossier ended "
    "(motcua asked the operator) or by the operator itself.",
)
class CancelledEventSchema(TrackedEventSchema):
    reason_code = fields.String(required=True, validate=validate.OneOf(CANCEL_REASONS))


@event_type(
    "postal",
    "lost",
    "The operator lost the package (a pickup or a delivery, see direction): it compensates; a lost "
    "result may be delivered again at its cost.",
)
class LostEventSchema(ShipmentEventSchema):
    reason_code = fields.String(
        required=True, validate=validate.OneOf(LOSS_CAUSES), metadata={"description": "the operator's cause"}
    )
    compensation_vnd = fields.Integer(
        required=True, allow_none=True, metadata={"description": "what the operator pays, when it said"}
    )


@event_type(
    "postal",
    "delivered",
    "Delivered: a pickup to the desk, or a result to the applicant (the dossier's return, status 10).",
)
class DeliveredEventSchema(TrackedEventSchema):
    recipient_kind = fields.String(
        validate=validate.OneOf(["applicant", "proxy"]), metadata={"description": "delivery direction only"}
    )


@event_type(
    "postal",
    "handed_over",
    "A co-signed hand-over record listed the consignment. Pickup: the desk received the dossier "
    "(filed_at is the record's time) or refused it (a reason code). Delivery: the sealed result left "
    "the desk with the postal worker; only now may the operator deliver it.",
)
class HandedOverEventSchema(ShipmentEventSchema):
    record_id = fields.String(required=True)
    handed_over_at = fields.AwareDateTime(required=True)
    packages_counted = fields.Integer(required=True)
    discrepancy = fields.String(
        required=True, allow_none=True, validate=validate.OneOf(["missing", "count_mismatch"])
    )
    outcome = fields.String(validate=validate.OneOf([o.value for o in ItemOutcome]))
    reason_code = fields.String(
        allow_none=True,
        validate=validate.OneOf(REASON_CODES),
        metadata={"description": "pickup refused: why, as a code (null when received)"},
    )
    has_reason_text = fields.Boolean(
        metadata={"description": "the desk wrote a reason: read it on the hand-over record, through the API"}
    )
    filed_at = fields.AwareDateTime(allow_none=True, metadata={"description": "the dossier's filing time"})
