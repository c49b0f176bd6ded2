"""marshmallow schemas of the metrics service: the rating request, the report's query and answer.

The same schemas validate requests and generate the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.metrics.projection import GROUPINGS, Tally
from shared.vocabulary import DOSSIER_CODE_PATTERN, RATINGS

UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")
MAX_REPORT_DAYS = 3660


class RatingRequestSchema(Schema):
    """Đánh giá mức độ hài lòng: the applicant's rating on the desk tablet after the result is returned."""

    # the dossier service's code pattern: anything else names no dossier (and a NUL byte would reach
    # PostgreSQL, which refuses it)
    dossier_code = fields.String(
        required=True, validate=validate.Regexp(DOSSIER_CODE_PATTERN, error="not a dossier code")
    )
    rating = fields.String(
        required=True,
        validate=validate.OneOf(RATINGS),
        metadata={
            "description": "satisfied (hài lòng), normal (bình thường), not_satisfied (không hài lòng)"
        },
    )


class RatingSchema(Schema):
    dossier_code = fields.String()
    rating = fields.String()
    unit = fields.String(metadata={"description": "the receiving unit, whose rating this is"})
    rated_at = fields.AwareDateTime()


class ReportQuerySchema(Schema):
    unit = fields.String(
        required=True, validate=UNIT_CODE, metadata={"description": "unit code; its whole subtree counts"}
    )
    period_from = fields.Date(
        data_key="from",
        metadata={"description": "first receipt day (Vietnam time); default: 1st of this month"},
    )
    period_to = fields.Date(data_key="to", metadata={"description": "last receipt day; default: today"})
    group_by = fields.String(load_default="unit", validate=validate.OneOf(GROUPINGS))
    format = fields.String(
        validate=validate.OneOf(("json", "csv")),
        metadata={"description": "csv, or send 'Accept: text/csv'; default json"},
    )

    @validates_schema
    def _ordered(self, data, **kwargs) -> None:
        first, last = data.get("period_from"), data.get("period_to")
        if first and last and first > last:
            raise ValidationError("must not be after 'to'", field_name="from")
        if first and last and (last - first).days >= MAX_REPORT_DAYS:
            raise ValidationError(f"a report spans at most {MAX_REPORT_DAYS} days", field_name="to")


_COUNT_DESCRIPTIONS = {
    "received": "dossiers received in the period (first receipt)",
    "decided_early": "decided before the original due date (never after an apology)",
    "decided_on_time": "decided on the original due date (never after an apology)",
    "decided_late": "decided after the original due date, or after an apology (Form 04)",
    "withdrawn": "withdrawn at the applicant's request",
    "in_process_within_deadline": "in process and not past the original appointment now",
    "in_process_overdue": "in process and past the original appointment now (an apology's new "
    "appointment does not count)",
    "supplemented": "with at least one supplement request",
    "received_online": "received through the online channel",
    "received_postal": "received by post",
    "returned": "result handed over (not the 'returned' of Decision 766's progress score)",
    "returned_postal": "result delivered by post",
    "rated": "with a satisfaction rating",
    "rated_not_satisfied": "rated not satisfied",
    "received_fully_online": "filed online, procedure fully online (toàn trình; 'level 4' before)",
    "received_partly_online": "filed online, procedure partly online (một phần; 'level 3' before)",
    "vneid_verified": "filed with an account verified with VNeID",
    "digitised": "with at least one component digitised at the desk, reused, or from a national database",
    "reused_data": "with at least one component reused from the store or taken from a national database",
    "paid": "with fees paid",
    "paid_online": "with fees paid online",
    "result_digital": "decided, the result issued digitally (sealed through the e-signature service)",
    "uncollected": "decided, the result ready and not handed over (yet)",
}


_RATE_DESCRIPTIONS = {
    "on_time_rate": "(early + on time) / decided",
    "online_share": "received online / received",
    "postal_share": "results returned by post / received",
    "postal_receipt_share": "received by post / received",
    "supplement_rate": "supplemented / received",
    "satisfaction_rate": "(decided - rated not satisfied) / decided",
    "progress_score": "Decision 766/QĐ-TTg progress of handling: 20 x (in process within deadline + "
    "decided early or on time + returned without a result) / received. The published formula's "
    "'returned' is read as dossiers given back without a result at the applicant's request "
    "(withdrawn, status 7); a result handed over is already counted among the decided ones and is "
    "not counted again",
    "fully_online_share": "received fully online / received",
    "partly_online_share": "received partly online / received",
    "vneid_share": "filed with a VNeID-verified account / received online",
    "digitised_share": "digitised / received",
    "reuse_share": "reusing digitised data / received",
    "online_payment_share": "paid online / paid",
    "digital_result_share": "result issued digitally / decided",
}

# Every count of a Tally, then the rates: a count without a description fails at import.
FiguresSchema = Schema.from_dict(
    {
        **{
            name: fields.Integer(metadata={"description": _COUNT_DESCRIPTIONS[name]})
            for name in (f.name for f in dataclass_fields(Tally))
        },
        "decided": fields.Integer(metadata={"description": "decided early + on time + late"}),
        **{
            name: fields.Float(allow_none=True, metadata={"description": f"{text}; null when dividing by 0"})
            for name, text in _RATE_DESCRIPTIONS.items()
        },
    },
    name="Figures",
)


class IndicatorScoreSchema(Schema):
    key = fields.String(metadata={"description": "the indicator (services/metrics/indicators_766.yml)"})
    measured = fields.Boolean(metadata={"description": "false: motcua does not see what it measures"})
    value = fields.Float(allow_none=True, metadata={"description": "its ratio; null if unmeasured or 0/0"})
    points = fields.Float(allow_none=True, metadata={"description": "max_points x min(1, value / target)"})
    max_points = fields.Float()


class GroupScoreSchema(Schema):
    key = fields.String(
        metadata={"description": "transparency, progress, online, digitisation or satisfaction"}
    )
    points = fields.Float()
    max_points = fields.Float()
    indicators = fields.List(fields.Nested(IndicatorScoreSchema))


class ScorecardSchema(Schema):
    """Decision 766/QĐ-TTg: five groups, 100 points (docs/domain.md §12)."""

    decision = fields.String()
    points = fields.Float(metadata={"description": "the points earned, over the measured indicators"})
    max_points = fields.Float(metadata={"description": "100"})
    measured_points = fields.Float(metadata={"description": "how many of the 100 motcua can measure"})
    groups = fields.List(fields.Nested(GroupScoreSchema))


class ScoredFiguresSchema(FiguresSchema):
    scorecard = fields.Nested(ScorecardSchema)


class ReportGroupSchema(ScoredFiguresSchema):
    key = fields.String(metadata={"description": "unit code, procedure code, field code or YYYY-MM"})
    name = fields.String()


class ReportSchema(Schema):
    unit = fields.String()
    unit_name = fields.String()
    period_from = fields.Date(data_key="from")
    period_to = fields.Date(data_key="to")
    group_by = fields.String()
    as_of = fields.AwareDateTime(metadata={"description": "when the figures were computed"})
    total = fields.Nested(ScoredFiguresSchema)
    groups = fields.List(fields.Nested(ReportGroupSchema))
