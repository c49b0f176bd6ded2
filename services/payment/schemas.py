"""marshmallow schemas of the payment service: requests, answers, and the platform's confirmation as
documented (the confirmation itself is verified on its raw fields, domain/protocol.py)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class StartRequestSchema(Schema):
    """Thanh toán trực tuyến: the dossier code and the citizen's proof (the desk: a token, no proof)."""

    code = fields.String(required=True, validate=validate.Length(min=1, max=60))
    secret = fields.String(
        validate=validate.Length(min=1, max=20), metadata={"description": "the receipt's secret, as printed"}
    )
    id_number = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "the applicant's identity number, instead of the secret"},
    )

    @validates_schema
    def at_most_one_proof(self, data, **kwargs):
        if "secret" in data and "id_number" in data:
            raise ValidationError("give the receipt's secret or the identity number, not both", "secret")


class StartedSchema(Schema):
    reference = fields.String(metadata={"description": "MaThamChieu, the transaction's reference"})
    dossier_code = fields.String()
    amount_vnd = fields.Integer(metadata={"description": "what the dossier owes, as the agency asked"})
    payment_url = fields.String(metadata={"description": "the platform's page where the citizen pays"})
    reused = fields.Boolean(metadata={"description": "true: the pending payment's link, given again"})


class PaymentSchema(Schema):
    """A payment as staff read it (no card data exists to show)."""

    reference = fields.String()
    dossier_code = fields.String()
    receiving_unit = fields.String()
    amount_vnd = fields.Integer()
    status = fields.String(metadata={"description": "pending, paid, failed or expired"})
    started_at = fields.DateTime()
    started_by = fields.String(metadata={"description": "citizen, or the desk officer who started it"})
    transaction = fields.String(allow_none=True, metadata={"description": "MaGiaoDich, the platform's id"})
    error_code = fields.String(allow_none=True, metadata={"description": "MaLoi of a failure"})
    settled_at = fields.DateTime(allow_none=True)
    settled_via = fields.String(allow_none=True, metadata={"description": "confirmation or query"})
    recorded_at = fields.DateTime(allow_none=True, metadata={"description": "when the dossier took it"})
    record_outcome = fields.String(
        allow_none=True, metadata={"description": "recorded, dossier_not_awaiting"}
    )
    receipt_kept = fields.Boolean(metadata={"description": "the platform's receipt (biên lai) is kept"})


class PaymentQuerySchema(Schema):
    dossier_code = fields.String(required=True, validate=validate.Length(min=1, max=60))


class PaymentListSchema(Schema):
    dossier_code = fields.String()
    results = fields.List(fields.Nested(PaymentSchema))


class ConfirmationSchema(Schema):
    """The platform's confirmation (LoaiBanTin NOTIFY), signed: MaXacThuc over docs/payment.md's order."""

    LoaiBanTin = fields.String(required=True, metadata={"description": "NOTIFY"})
    PhienBan = fields.String(required=True)
    MaDoiTac = fields.String(required=True, metadata={"description": "this partner's code"})
    MaThamChieu = fields.String(required=True, metadata={"description": "the transaction's reference"})
    MaGiaoDich = fields.String(metadata={"description": "the platform's transaction id"})
    SoTien = fields.Integer(required=True, metadata={"description": "đồng"})
    MaLoi = fields.String(required=True, metadata={"description": "00: paid; anything else: failed"})
    ThoiGianGD = fields.String(required=True, metadata={"description": "yyyyMMddHHmmss, Vietnam time"})
    MaXacThuc = fields.String(required=True, metadata={"description": "SHA-256 hex (docs/payment.md)"})


class ConfirmationAckSchema(Schema):
    MaLoi = fields.String(metadata={"description": "00: received"})
    MaThamChieu = fields.String()
    outcome = fields.String(
        metadata={"description": "paid, failed, repeated, unknown_reference, amount_mismatch, contradicted"}
    )
