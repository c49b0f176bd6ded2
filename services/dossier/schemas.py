"""marshmallow schemas of the dossier service: request bodies, responses and event payloads.

The same schemas validate requests, render responses, generate the OpenAPI document and — for
events — the AsyncAPI catalogue, so the documents cannot drift from the code. Unknown fields are
refused everywhere (marshmallow's default ``RAISE``): a misspelt field is an error, not ignored.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared import clock
from shared.events import event_type
from shared.fields import Text
from shared.vocabulary import (
    CHANNELS,
    DECISIONS,
    DOSSIER_CODE_PATTERN,
    EVENT_REASON_CODES,
    NOTIFICATION_CHANNELS,
    ONLINE_LEVELS,
    REASON_CODES,
    RETURN_METHODS,
    TIMELINESS,
    Channel,
    Decision,
    ReturnMethod,
    Status,
)

UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")
# Dates a person could mean: anything else is a typo (a year 20255) or a probe.
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2100, 12, 31)
MAX_APPOINTMENT_AHEAD = timedelta(days=3 * 366)
MAX_PAGE_SIZE = 500
DOSSIER_CODE = DOSSIER_CODE_PATTERN
FORMS = ("receipt", "supplement_request", "refusal", "apology", "stop_notice", "process_control")


def _reason_code() -> fields.String:
    return fields.String(
        load_default="other",
        validate=validate.OneOf(REASON_CODES),
        metadata={"description": "why, as a code that events carry (the reason's text does not leave)"},
    )


def _reason(**kwargs) -> Text:
    return Text(
        validate=[
            validate.Length(min=1, max=2000),
            validate.Regexp(r"\S", error="must not be blank"),
        ],
        **kwargs,
    )


def _future_appointment(value: datetime) -> None:
    now = clock.now()
    if value <= now:
        raise ValidationError("must be in the future")
    if value > now + MAX_APPOINTMENT_AHEAD:
        raise ValidationError("must be within three years from now")


# More components than any procedure of the catalogue lists: a count beyond it is a typing slip.
MAX_COMPONENTS = 200


class ApplicantSchema(Schema):
    """Personal data: stored with the dossier, never put on an event."""

    full_name = Text(
        required=True,
        validate=[validate.Length(min=1, max=200), validate.Regexp(r"\S", error="must not be blank")],
    )
    id_number = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[0-9]{9}$|^[0-9]{12}$", error="must be a 12-digit citizen ID or a 9-digit ID card number"
        ),
    )
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9]{9,15}$", error="not a phone number"))
    email = fields.Email(validate=validate.Length(max=254))
    address = Text(validate=validate.Length(max=500))
    notification_channels = fields.List(
        fields.String(validate=validate.OneOf(NOTIFICATION_CHANNELS)),
        validate=validate.Length(max=len(NOTIFICATION_CHANNELS)),
        metadata={
            "description": "the applicant's consent to be told when they must act or can collect: "
            "sms and zalo go to the phone, email to the email (each needs it); empty or absent: no messages"
        },
    )
    notifications_withdrawn_at = fields.String(
        dump_only=True,
        metadata={"description": "when the consent was withdrawn (RFC 3339): no more messages"},
    )

    @validates_schema
    def _contact_for_each_channel(self, data: dict, **_kwargs) -> None:
        channels = data.get("notification_channels") or []
        if len(set(channels)) != len(channels):
            raise ValidationError("each channel once", "notification_channels")
        needs = {"sms": "phone", "zalo": "phone", "email": "email"}
        missing = sorted({needs[c] for c in channels if c in needs and not data.get(needs[c])})
        if missing:
            raise ValidationError(
                f"the chosen channels need the applicant's {' and '.join(missing)}", "notification_channels"
            )


def _component_count(description: str) -> fields.Integer:
    return fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_COMPONENTS),
        metadata={"description": description},
    )


class ComponentsSchema(Schema):
    """How many of the dossier's components (thành phần hồ sơ) came digitally, and how (Decision 766
    digitisation indicators, docs/domain.md §12). Counts only; the papers themselves are not sent."""

    digitised = _component_count("digitised (số hóa) at the desk from the paper the applicant brought")
    reused = _component_count("reused (tái sử dụng) from the store of papers digitised before")
    national = _component_count("taken from a national database (population, business, land …)")


def _vneid_verified() -> fields.Boolean:
    return fields.Boolean(
        load_default=False,
        metadata={
            "description": "the filing account is verified with VNeID (a flag; the identity is not sent)"
        },
    )


class ReceiptRequestSchema(Schema):
    """Tiếp nhận at the desk: the dossier is complete and valid; the appointment is computed."""

    procedure_code = Text(required=True, validate=validate.Length(min=1, max=40))
    receiving_unit = fields.String(required=True, validate=UNIT_CODE)
    channel = fields.String(
        load_default="counter",
        validate=validate.OneOf(
            [c for c in CHANNELS if c != Channel.POSTAL.label],
            error="must be one of: {choices} (a dossier that came by post is registered by the postal "
            "service and filed by its hand-over record)",
        ),
    )
    return_method = fields.String(load_default="counter", validate=validate.OneOf(list(RETURN_METHODS)))
    applicant = fields.Nested(ApplicantSchema, required=True)
    components = fields.Nested(ComponentsSchema, load_default=dict)
    vneid_verified = _vneid_verified()


class RegistrationRequestSchema(Schema):
    """Mới đăng ký: filed through the public service portal, or picked up by the postal operator."""

    procedure_code = Text(required=True, validate=validate.Length(min=1, max=40))
    receiving_unit = fields.String(
        required=True, validate=UNIT_CODE, metadata={"description": "the desk that will check and receive it"}
    )
    channel = fields.String(required=True, validate=validate.OneOf(["online", "postal"]))
    return_method = fields.String(load_default="counter", validate=validate.OneOf(list(RETURN_METHODS)))
    applicant = fields.Nested(ApplicantSchema, required=True)
    components = fields.Nested(ComponentsSchema, load_default=dict)
    vneid_verified = _vneid_verified()


# --- action bodies (POST /api/v1/dossiers/{code}/actions/{action}) -----------------------------


class EmptyActionSchema(Schema):
    """No fields: send ``{}`` (or no body)."""


class ReasonActionSchema(Schema):
    reason = _reason(required=True)
    reason_code = _reason_code()


class StartProcessingSchema(Schema):
    handling_unit = fields.String(
        validate=UNIT_CODE,
        metadata={
            "description": "the handling agency (default: the plan's first agency, else the desk's unit)"
        },
    )


class SupplementRequestSchema(Schema):
    """Form 02: every missing or wrong item, in one request."""

    items = fields.List(
        Text(validate=[validate.Length(min=1, max=500), validate.Regexp(r"\S", error="must not be blank")]),
        required=True,
        validate=validate.Length(min=1, max=50),
    )
    reason = _reason(required=True)
    reason_code = _reason_code()


class NoteActionSchema(Schema):
    note = Text(validate=validate.Length(max=2000))


class PaymentRequestSchema(Schema):
    amount_vnd = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10**13))
    reason = _reason()


class PaymentSchema(Schema):
    receipt_number = Text(validate=validate.Length(min=1, max=100))


class AppraisalSchema(Schema):
    opinion = Text(validate=validate.Length(max=2000), metadata={"description": "the appraisal's finding"})


class TransferSchema(Schema):
    to_unit = fields.String(
        validate=UNIT_CODE,
        metadata={"description": "the agency of the plan's next stage (default: resolved from the plan)"},
    )
    reason = _reason()


class DecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    reason = _reason(metadata={"description": "required when rejecting"})
    reason_code = _reason_code()

    @validates_schema
    def _reasoned_rejection(self, data: dict, **kwargs) -> None:
        if data.get("decision") == Decision.REJECTED and not data.get("reason"):
            raise ValidationError("a rejection must give its reason", "reason")


class ReturnSchema(Schema):
    """The desk hands the result over: always a counter return. By post, only the operator's delivery
    returns it (the postal service's ``postal.delivered``)."""

    method = fields.String(
        validate=validate.OneOf(
            [ReturnMethod.COUNTER.label],
            error="the desk's return is a counter return; a result goes back by post only when the postal "
            "operator reports it delivered",
        ),
        metadata={"description": "counter, the only method of the desk's return (may be left out)"},
    )


class ApologySchema(Schema):
    """Form 04: the reason for the delay and a new appointment."""

    reason = _reason(required=True)
    reason_code = _reason_code()
    new_due_at = fields.AwareDateTime(required=True, validate=_future_appointment)


# --- responses ------------------------------------------------------------------------------


class PlanStepSchema(Schema):
    code = fields.String()
    name = fields.String()
    agency = fields.String()
    allotment = fields.String()
    stage = fields.Integer()
    due_at = fields.AwareDateTime(allow_none=True)


class DossierSummarySchema(Schema):
    """A dossier in a list: status and dates, no personal data."""

    code = fields.String()
    status = fields.Function(lambda d: int(d.status), metadata={"description": "portal status code 1-10"})
    status_name = fields.Function(lambda d: d.status.label)
    procedure_code = fields.String()
    procedure_version = fields.Integer()
    procedure_field = fields.String()
    receiving_unit = fields.String()
    handling_unit = fields.String()
    channel = fields.Function(lambda d: d.channel.name.lower())
    return_method = fields.Function(lambda d: d.return_method.name.lower())
    online_level = fields.String(allow_none=True)
    registered_at = fields.AwareDateTime(allow_none=True)
    received_at = fields.AwareDateTime(allow_none=True, metadata={"description": "filing time"})
    due_at = fields.AwareDateTime(allow_none=True, metadata={"description": "appointment: the result is due"})
    original_due_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "the appointment timeliness is judged against"}
    )
    resolved_at = fields.AwareDateTime(allow_none=True)
    returned_at = fields.AwareDateTime(allow_none=True)
    timeliness = fields.String(allow_none=True)
    working_days = fields.Float(allow_none=True)
    overdue = fields.Boolean(metadata={"description": "past the appointment, not resolved"})


class TaskSchema(Schema):
    kind = fields.String(
        metadata={"description": "return_result: hand it over at the counter or deliver again"}
    )
    cause = fields.String(metadata={"description": "delivery_lost, delivery_cancelled or returned_to_sender"})
    since = fields.AwareDateTime()
    shipment_id = fields.String(metadata={"description": "the postal service's shipment that failed"})


class DossierSchema(DossierSummarySchema):
    applicant = fields.Nested(ApplicantSchema)
    components = fields.Function(
        lambda d: {
            "digitised": d.components_digitised,
            "reused": d.components_reused,
            "national": d.components_national,
        },
        metadata={"description": "components digitised, reused, taken from a national database (at filing)"},
    )
    vneid_verified = fields.Boolean()
    decision = fields.String(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    supplement_count = fields.Integer()
    apology_count = fields.Integer()
    clock_stopped_at = fields.AwareDateTime(allow_none=True)
    stage = fields.Integer(metadata={"description": "index of the plan stage the dossier is in"})
    plan = fields.List(fields.Nested(PlanStepSchema))
    event_sequence = fields.Integer()
    allowed_actions = fields.List(
        fields.String(), metadata={"description": "what the rules allow now (not who may do it)"}
    )
    open_tasks = fields.List(
        fields.Nested(TaskSchema),
        attribute="tasks",
        metadata={"description": "what the desk must act on: a delivery of the result that failed"},
    )


class PortalApplicantSchema(Schema):
    full_name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class NotificationContactSchema(Schema):
    """The notifier's read at send time: the consent and the contact, never on an event."""

    code = fields.String()
    channels = fields.List(
        fields.String(), metadata={"description": "the channels consented to; empty once withdrawn"}
    )
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    withdrawn_at = fields.String(allow_none=True, metadata={"description": "RFC 3339"})
    procedure_name = fields.String()
    supplement_items = fields.List(
        fields.String(), metadata={"description": "the latest supplement request's items (Form 02)"}
    )


class ConsentWithdrawalSchema(Schema):
    """Rút lại sự đồng ý nhận thông báo: the applicant (at the desk, or through the portal) stops every
    message about this dossier, at once."""

    reason = Text(validate=validate.Length(max=500))


class PortalPaymentSchema(Schema):
    amount_vnd = fields.Integer()
    requested_at = fields.AwareDateTime()
    paid_at = fields.AwareDateTime(allow_none=True, metadata={"description": "null until marked paid"})


class PortalResultSchema(Schema):
    decision = fields.String(
        metadata={"description": "approved (the result) or rejected (the reasoned refusal)"}
    )
    number = fields.String(
        allow_none=True,
        metadata={
            "description": "the register number the e-signature service gave at the seal; null on paper"
        },
    )
    issued_at = fields.AwareDateTime(metadata={"description": "when it was sealed (stamped)"})


class PortalRecordSchema(Schema):
    """The national portal sync's read: personal data the portal shows the applicant, never on an event,
    and the dossier's documents, fees, payments and result document."""

    code = fields.String()
    applicant = fields.Nested(PortalApplicantSchema)
    procedure_name = fields.String()
    field_name = fields.String()
    documents = fields.List(
        fields.Nested("DocumentLineSchema"),
        metadata={"description": "the procedure version's documents, as the receipt (Form 01) lists them"},
    )
    fees = fields.List(fields.Nested("FeeLineSchema"), metadata={"description": "the catalogue's fees"})
    payments = fields.List(fields.Nested(PortalPaymentSchema), metadata={"description": "payments asked for"})
    results = fields.List(fields.Nested(PortalResultSchema), metadata={"description": "the sealed result"})


class PaymentDueRequestSchema(Schema):
    """The payment service asks what a dossier owes: for the citizen, with the receipt's proof."""

    secret = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "the receipt's secret, when the citizen starts the payment"},
    )
    id_number = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "the applicant's identity number, instead of the secret"},
    )

    @validates_schema
    def at_most_one_proof(self, data, **kwargs):
        if "secret" in data and "id_number" in data:
            raise ValidationError("give the receipt's secret or the identity number, not both", "secret")


class PaymentDueSchema(Schema):
    """What a dossier owes and what the payment platform's receipt names (no personal data)."""

    code = fields.String()
    status = fields.Integer(
        metadata={"description": "the national portal's status code (6: awaiting payment)"}
    )
    amount_vnd = fields.Integer(
        allow_none=True, metadata={"description": "the amount the agency asked for (null unless status 6)"}
    )
    procedure_code = fields.String()
    procedure_name = fields.String()
    receiving_unit = fields.String()
    receiving_unit_name = fields.String()
    fees = fields.List(fields.Nested("FeeLineSchema"), metadata={"description": "the catalogue's fee lines"})


class LookupCredentialSchema(Schema):
    """What proves the right to look the dossier up (tra cứu): shown once, to print on the receipt."""

    secret = fields.String(metadata={"description": "the receipt's secret, as printed (ABCD-EFGH)"})
    url = fields.String(
        metadata={"description": "the lookup page with code and secret (the receipt's QR code)"}
    )


class FiledDossierSchema(DossierSchema):
    lookup = fields.Nested(
        LookupCredentialSchema,
        metadata={"description": "returned only here: only an HMAC of the secret is kept"},
    )


class DossierPageSchema(Schema):
    count = fields.Integer()
    next = fields.String(allow_none=True)
    previous = fields.String(allow_none=True)
    results = fields.List(fields.Nested(DossierSummarySchema))


class DossierQuerySchema(Schema):
    """Search: every filter optional; the caller's jurisdiction always applies."""

    unit = fields.String(validate=UNIT_CODE, metadata={"description": "receiving or handling unit, subtree"})
    status = fields.List(
        fields.Integer(validate=validate.Range(1, 10)), metadata={"description": "repeatable"}
    )
    overdue = fields.Boolean()
    procedure = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9._-]{1,40}$", error="not a procedure code")
    )
    field = fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,59}$"))
    channel = fields.String(validate=validate.OneOf(list(CHANNELS)))
    received_from = fields.Date(validate=validate.Range(EARLIEST_DATE, LATEST_DATE))
    received_to = fields.Date(validate=validate.Range(EARLIEST_DATE, LATEST_DATE))
    page = fields.Integer(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PAGE_SIZE))

    @validates_schema
    def _ordered_range(self, data: dict, **kwargs) -> None:
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and start > end:
            raise ValidationError("must not be before received_from", "received_to")


class AuditEntrySchema(Schema):
    """One line of the append-only audit trail: who, what, when, why, before → after."""

    at = fields.AwareDateTime()
    actor = fields.String(metadata={"description": "token subject"})
    roles = fields.List(fields.String())
    action = fields.String()
    reason = fields.String(allow_none=True)
    status_before = fields.Integer(allow_none=True)
    status_after = fields.Integer()
    request_id = fields.String()
    details = fields.Dict()


class AuditTrailSchema(Schema):
    code = fields.String()
    entries = fields.List(fields.Nested(AuditEntrySchema))


# --- forms (JSON; times as Vietnam local ISO 8601) -----------------------------------------------


class DocumentLineSchema(Schema):
    name = fields.String()
    original = fields.Integer()
    copies = fields.Integer()


class FeeLineSchema(Schema):
    name = fields.String()
    amount_vnd = fields.Integer()


class FormSchema(Schema):
    form = fields.String(metadata={"description": "form number (01-05) or process_control"})
    title = fields.String()
    code = fields.String()
    unit_name = fields.String()
    unit_identifier = fields.String()
    procedure_code = fields.String()
    procedure_name = fields.String()
    applicant_name = fields.String()


class ReceiptFormSchema(FormSchema):
    """Form 01: Giấy tiếp nhận hồ sơ và hẹn trả kết quả."""

    applicant_id_number = fields.String()
    received_at = fields.String()
    due_at = fields.String()
    documents = fields.List(fields.Nested(DocumentLineSchema))
    fees = fields.List(fields.Nested(FeeLineSchema))
    return_method = fields.String()
    channel = fields.String()
    officer = fields.String()
    lookup_url = fields.String(
        metadata={"description": "the lookup page (the QR code); with the secret only when it is given"}
    )
    lookup_secret = fields.String(
        metadata={"description": "the receipt's secret, only when the desk gives it (never stored)"}
    )


class ReceiptPrintSchema(Schema):
    """The receipt printed with its secret: the secret given at filing (checked against its HMAC)."""

    lookup_secret = fields.String(required=True, validate=validate.Length(min=1, max=20))


class LookupRequestSchema(Schema):
    """Tra cứu hồ sơ: the dossier code and one proof — the receipt's secret or the identity number."""

    code = fields.String(required=True, validate=validate.Length(min=1, max=60))
    secret = fields.String(
        validate=validate.Length(min=1, max=20), metadata={"description": "as printed on the receipt"}
    )
    id_number = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "the applicant's identity number, instead of the secret"},
    )
    captcha = fields.String(
        validate=validate.Length(max=4000),
        metadata={"description": "the CAPTCHA widget's token, where the deployment turns one on"},
    )

    @validates_schema
    def one_proof(self, data, **kwargs):
        if ("secret" in data) == ("id_number" in data):
            raise ValidationError("give the receipt's secret or the identity number (one of them)", "secret")


class AppointmentSchema(Schema):
    due_at = fields.String(metadata={"description": "the appointment (local time)"})
    rescheduled_by_apology = fields.Boolean(
        metadata={"description": "true: the office apologised and set this new appointment"}
    )
    apologized_at = fields.String(allow_none=True)


class NowAtSchema(Schema):
    unit_name = fields.String(metadata={"description": "the agency that has the dossier now"})
    steps = fields.List(fields.String(), metadata={"description": "the steps of that agency's stage"})


class ToDoSchema(Schema):
    kind = fields.String(metadata={"description": "supplement, payment or collect"})
    items = fields.List(fields.String(), metadata={"description": "supplement: what to bring"})
    amount_vnd = fields.Integer(allow_none=True, metadata={"description": "payment: how much, in đồng"})
    payment_url = fields.String(
        metadata={
            "description": "payment: the payment service's start page (POST ma, s or cccd), where the "
            "deployment offers online payment"
        }
    )


class LookupSchema(Schema):
    """What the citizen is shown: progress only, nothing personal (no name, id, phone, address)."""

    code = fields.String()
    status = fields.Integer(metadata={"description": "the national portal's status code"})
    status_name = fields.String(metadata={"description": "the status in Vietnamese"})
    procedure_name = fields.String()
    receiving_unit_name = fields.String()
    received_at = fields.String(allow_none=True)
    appointment = fields.Nested(AppointmentSchema, allow_none=True)
    return_method = fields.String(metadata={"description": "counter or postal"})
    postal_tracking_number = fields.String(
        allow_none=True,
        metadata={
            "description": "the postal operator's consignment number of the result's delivery, or null"
        },
    )
    now_at = fields.Nested(NowAtSchema, allow_none=True, metadata={"description": "null once decided"})
    to_do = fields.Nested(ToDoSchema, allow_none=True, metadata={"description": "what the citizen must do"})


class SupplementRequestFormSchema(FormSchema):
    """Form 02: Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ."""

    requested_at = fields.String()
    officer = fields.String()
    items = fields.List(fields.String())
    reason = fields.String()


class NoticeFormSchema(FormSchema):
    """Forms 03 (refusal) and 05 (stop notice): the reason, when and by whom."""

    issued_at = fields.String()
    officer = fields.String()
    reason = fields.String()


class ApologyFormSchema(FormSchema):
    """Form 04: Phiếu xin lỗi và hẹn lại ngày trả kết quả."""

    issued_at = fields.String()
    officer = fields.String()
    reason = fields.String()
    original_due_at = fields.String()
    new_due_at = fields.String()


class HandoverLineSchema(Schema):
    at = fields.String()
    from_unit = fields.String()
    from_unit_name = fields.String()
    to_unit = fields.String(allow_none=True)
    to_unit_name = fields.String(metadata={"description": "the applicant when the result was returned"})
    step = fields.String()
    step_name = fields.String()
    step_due_at = fields.String(allow_none=True)
    timeliness = fields.String(allow_none=True)


class ProcessControlFormSchema(FormSchema):
    """Phiếu kiểm soát quá trình giải quyết hồ sơ: the plan and every hand-over."""

    received_at = fields.String()
    due_at = fields.String()
    steps = fields.List(fields.Dict())
    handovers = fields.List(fields.Nested(HandoverLineSchema))


# --- events (docs/contracts.md §1; docs/dossier-events.md) ---------------------------------------


def _moment(**kwargs) -> fields.AwareDateTime:
    return fields.AwareDateTime(required=True, **kwargs)


def _timeliness(**kwargs) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(TIMELINESS), **kwargs)


class StatusEventSchema(Schema):
    """What every dossier status event carries: codes, statuses, units, dates — no personal data."""

    code = fields.String(required=True, metadata={"description": "mã hồ sơ"})
    status = fields.Integer(required=True, validate=validate.OneOf([int(s) for s in Status]))
    status_name = fields.String(required=True, validate=validate.OneOf([s.label for s in Status]))
    procedure_code = fields.String(required=True)
    procedure_version = fields.Integer(required=True)
    procedure_field = fields.String(required=True)
    receiving_unit = fields.String(required=True)
    handling_unit = fields.String(required=True)
    channel = fields.Integer(required=True, validate=validate.OneOf([int(c) for c in Channel]))
    return_method = fields.Integer(required=True, validate=validate.OneOf([int(m) for m in ReturnMethod]))
    online_level = fields.String(required=True, allow_none=True, validate=validate.OneOf(ONLINE_LEVELS))
    received_at = _moment(allow_none=True, metadata={"description": "filing time; null before receipt"})
    due_at = _moment(allow_none=True, metadata={"description": "the current appointment"})
    original_due_at = _moment(
        allow_none=True, metadata={"description": "the appointment timeliness is judged against"}
    )
    occurred_at = _moment()


def _event_reason_code(**kwargs) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(EVENT_REASON_CODES), **kwargs)


def _has_reason_text() -> fields.Boolean:
    return fields.Boolean(
        required=True,
        metadata={"description": "the officer wrote a reason: read it through the API (forms, audit trail)"},
    )


class ReasonEventSchema(StatusEventSchema):
    """The reason as a code and a flag; its text stays behind the authorised API."""

    reason_code = _event_reason_code()
    has_reason_text = _has_reason_text()


class StepEventSchema(StatusEventSchema):
    step = fields.String(required=True, metadata={"description": "step code of the procedure's plan"})


class IntakeEventSchema(StatusEventSchema):
    """A filing's event: what Decision 766 counts of it (docs/domain.md §12). Counts and a flag only."""

    components_digitised = fields.Integer(
        load_default=0, metadata={"description": "components digitised (số hóa) at the desk; since 3.2"}
    )
    components_reused = fields.Integer(
        load_default=0,
        metadata={
            "description": "components reused (tái sử dụng) from the store of digitised papers; since 3.2"
        },
    )
    components_national = fields.Integer(
        load_default=0, metadata={"description": "components taken from a national database; since 3.2"}
    )
    vneid_verified = fields.Boolean(
        load_default=False,
        metadata={
            "description": "filed from an account verified with VNeID (a flag, never the identity); since 3.2"
        },
    )


@event_type(
    "dossier", "registered", "A dossier was filed online or by post; the desk has not checked it yet."
)
class RegisteredEventSchema(IntakeEventSchema):
    pass


@event_type("dossier", "received", "A desk received a dossier; the clock runs from now.")
class ReceivedEventSchema(IntakeEventSchema):
    pass


@event_type(
    "dossier",
    "refused",
    "The desk refused a dossier, with a reason (Form 03); final. A dossier that came by post is refused "
    "on its hand-over record, or closed when its pickup is lost or cancelled (reason_code pickup_lost, "
    "pickup_cancelled).",
)
class RefusedEventSchema(ReasonEventSchema):
    pass


@event_type("dossier", "processing_started", "The desk handed the dossier to the handling agency.")
class ProcessingStartedEventSchema(StepEventSchema):
    pass


@event_type(
    "dossier",
    "supplement_requested",
    "A supplement was requested (Form 02), listing every item; the clock stops.",
)
class SupplementRequestedEventSchema(ReasonEventSchema):
    items_count = fields.Integer(
        required=True, metadata={"description": "how many items were asked for (the list: Form 02)"}
    )


@event_type(
    "dossier", "supplemented", "The supplement is complete: filing time reset, the full duration runs again."
)
class SupplementedEventSchema(StatusEventSchema):
    pass


@event_type("dossier", "payment_requested", "Fees or taxes must be paid; the clock stops.")
class PaymentRequestedEventSchema(StatusEventSchema):
    amount_vnd = fields.Integer(required=True)


@event_type("dossier", "paid", "The financial obligations were paid; the clock resumes, due times shifted.")
class PaidEventSchema(StatusEventSchema):
    paid_online = fields.Boolean(
        load_default=False,
        metadata={
            "description": "true: paid through the national payment platform (the payment service); "
            "false: recorded at the counter. Added in event contract 3.2.0 (absent before: false)."
        },
    )


@event_type("dossier", "appraised", "The agency holding the dossier appraised it.")
class AppraisedEventSchema(StepEventSchema):
    step_timeliness = _timeliness(allow_none=True)


@event_type(
    "dossier",
    "transferred",
    "An interlinked dossier passed to the next agency of the plan; `step`/`step_due_at` are the step "
    "now starting there, `step_timeliness` that of `finished_step`.",
)
class TransferredEventSchema(StepEventSchema):
    from_unit = fields.String(required=True)
    to_unit = fields.String(required=True)
    step_due_at = _moment(allow_none=True)
    step_timeliness = _timeliness(allow_none=True)
    finished_step = fields.String(required=True)


@event_type("dossier", "decided", "The competent person approved, or rejected with a reason.")
class DecidedEventSchema(StatusEventSchema):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    reason_code = _event_reason_code(allow_none=True, metadata={"description": "null when approved"})
    has_reason_text = _has_reason_text()


@event_type("dossier", "signed", "The result was signed by the competent person.")
class SignedEventSchema(StatusEventSchema):
    signer_role = fields.String(required=True)


@event_type("dossier", "stamped", "The organisation's signature (the seal) was applied to the result.")
class StampedEventSchema(StatusEventSchema):
    digital = fields.Boolean(
        load_default=False,
        metadata={
            "description": "sealed through the e-signature service: the result is issued digitally; "
            "false when stamped on paper; since 3.2"
        },
    )


@event_type(
    "dossier",
    "sent_back_for_appraisal",
    "The competent person refused to sign the result: the decision is withdrawn, back to appraisal.",
)
class SentBackForAppraisalEventSchema(ReasonEventSchema):
    pass


@event_type(
    "dossier",
    "resolved",
    "The result is ready. Timeliness is judged against original_due_at (an apologised dossier is late); "
    "working_days run from filing to resolution, clock stops excluded.",
)
class ResolvedEventSchema(StatusEventSchema):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    resolved_at = _moment()
    timeliness = _timeliness()
    working_days = fields.Float(required=True)


@event_type(
    "dossier",
    "returned",
    "The result was handed over at the counter (method counter) or delivered by post (method postal, "
    "only on the operator's delivery); final. A counter return ends any delivery still running for the "
    "dossier: the postal service cancels it at the operator.",
)
class ReturnedEventSchema(StatusEventSchema):
    method = fields.String(required=True, validate=validate.OneOf(list(RETURN_METHODS)))
    returned_at = _moment()


@event_type("dossier", "withdrawn", "The applicant withdrew the dossier; final.")
class WithdrawnEventSchema(ReasonEventSchema):
    pass


@event_type(
    "dossier", "stopped", "Processing stopped with a notice and its reason (Form 05); the clock stops."
)
class StoppedEventSchema(ReasonEventSchema):
    pass


@event_type("dossier", "resumed", "Processing resumed after a stop; due times shifted by the pause.")
class ResumedEventSchema(StatusEventSchema):
    pass


@event_type(
    "dossier",
    "apologized",
    "An apology with a new appointment (Form 04): due_at moves, original_due_at does not; still late.",
)
class ApologizedEventSchema(ReasonEventSchema):
    new_due_at = _moment()


@event_type(
    "dossier",
    "due_soon",
    "The appointment is near: at most DUE_SOON_HOURS working hours left (half-way for short procedures).",
)
class DueSoonEventSchema(StatusEventSchema):
    lead_hours = fields.Float(required=True, metadata={"description": "working hours left until due_at"})


@event_type(
    "dossier",
    "overdue",
    "A due time passed without the dossier being resolved: the appointment (step null) or a plan step's.",
)
class OverdueEventSchema(StatusEventSchema):
    overdue_since = _moment()
    step = fields.String(required=True, allow_none=True, metadata={"description": "null: the appointment"})
    step_due_at = _moment(allow_none=True)
