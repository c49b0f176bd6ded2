"""marshmallow schemas of the dossier service: request bodies, responses and event payloads.

The same schemas validate requests, render responses, generate the OpenAPI document and — for
events — the AsyncAPI catalogue, so the documents cannot drift from the code.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.events import event_type

CHANNELS = {"counter": 1, "online": 2, "postal": 3}
RETURN_METHODS = {"counter": 0, "postal": 1}
UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")


class ApplicantSchema(Schema):
    """Personal data: stored with the dossier, never put on an event."""

    full_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    id_number = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[0-9]{9}$|^[0-9]{12}$", error="must be a 12-digit citizen ID or a 9-digit ID card number"
        ),
    )
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9]{9,15}$", error="not a phone number"))
    email = fields.Email()
    address = fields.String(validate=validate.Length(max=500))


class ReceiptRequestSchema(Schema):
    """Tiếp nhận at the desk: the dossier is complete and valid; the appointment is computed."""

    procedure_code = fields.String(required=True, validate=validate.Length(min=1, max=40))
    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    channel = fields.String(load_default="counter", validate=validate.OneOf(list(CHANNELS)))
    return_method = fields.String(load_default="counter", validate=validate.OneOf(list(RETURN_METHODS)))
    applicant = fields.Nested(ApplicantSchema, required=True)


class DossierSchema(Schema):
    code = fields.String()
    status = fields.Function(lambda d: int(d.status))
    status_name = fields.Function(lambda d: d.status.label)
    procedure_code = fields.String()
    procedure_version = fields.Integer()
    procedure_field = fields.String()
    receiving_unit = fields.String()
    handling_unit = fields.String()
    channel = fields.Function(lambda d: d.channel.name.lower())
    return_method = fields.Function(lambda d: d.return_method.name.lower())
    received_at = fields.AwareDateTime()
    due_at = fields.AwareDateTime(metadata={"description": "appointment: the result is due"})
    applicant = fields.Nested(ApplicantSchema)
    event_sequence = fields.Integer()


class StatusEventSchema(Schema):
    """What every dossier status event carries: codes, statuses, units, dates — no personal data."""

    code = fields.String(required=True, metadata={"description": "mã hồ sơ"})
    status = fields.Integer(required=True, validate=validate.Range(1, 10))
    status_name = fields.String(required=True)
    procedure_code = fields.String(required=True)
    procedure_version = fields.Integer(required=True)
    procedure_field = fields.String(required=True)
    receiving_unit = fields.String(required=True)
    handling_unit = fields.String(required=True)
    channel = fields.Integer(required=True, validate=validate.OneOf([1, 2, 3]))
    return_method = fields.Integer(required=True, validate=validate.OneOf([0, 1]))
    received_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)


@event_type("dossier", "received", "A desk received a dossier; the clock runs from now.")
class ReceivedEventSchema(StatusEventSchema):
    pass


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(fields.Dict())
