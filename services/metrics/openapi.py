"""The metrics service's OpenAPI document, from the schemas in :mod:`services.metrics.schemas`."""

from __future__ import annotations

from functools import cache

from services.metrics.schemas import RatingRequestSchema, RatingSchema, ReportQuerySchema, ReportSchema
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.4.0"

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/ratings",
        "Record the applicant's satisfaction rating of a returned dossier",
        "rate",
        "satisfaction",
        replayable=True,
        request=RatingRequestSchema,
        response=RatingSchema,
        status=201,
        errors=(401, 403, 404, 409, 422),
        description="Role desk_officer, in the receiving unit's jurisdiction (the desk tablet). One "
        "rating per dossier, taken after its result was returned and within SATISFACTION_WINDOW_DAYS: "
        "otherwise 409 says which rule stops it.",
    ),
    Operation(
        "GET",
        "/api/v1/reports/sla",
        "SLA figures of a unit's subtree for a period",
        "sla_report",
        "reports",
        query=ReportQuerySchema,
        response=ReportSchema,
        errors=(401, 403, 422),
        description="Roles auditor, desk_officer, handling_officer or leader, with the unit in the "
        "caller's jurisdiction (403 otherwise: a report is an action on a unit). Figures describe the "
        "dossiers received in the period (Vietnam dates, receiving unit) as they stand now; the total "
        "is the sum of the groups. `format=csv` or `Accept: text/csv` answers CSV, one row per group "
        "and a last row `total`.",
        extra_responses={
            "200": {
                "description": "the report",
                "content": {
                    "application/json": {"schema": ReportSchema},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua metrics service",
        version=VERSION,
        description="SLA figures of the one-stop desks (Prometheus metrics, reports) and satisfaction "
        "ratings, projected from the dossier events.",
        operations=OPERATIONS,
    )
