"""The dossier service's OpenAPI document, from the schemas in :mod:`services.dossier.schemas`."""

from __future__ import annotations

from functools import cache

from services.dossier.schemas import DossierSchema, ReceiptRequestSchema
from shared.openapi import OPERATIONAL, Operation, build

VERSION = "0.1.0"

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/dossiers",
        "Receive a dossier at the one-stop desk",
        "receive",
        "dossiers",
        request=ReceiptRequestSchema,
        response=DossierSchema,
        status=201,
        description="Role desk_officer, in the receiving unit's jurisdiction. Allocates the "
        "dossier code and computes the appointment in working time; publishes "
        "dossier.received.",
    ),
    Operation(
        "GET",
        "/api/v1/dossiers/<code>",
        "A dossier",
        "get_dossier",
        "dossiers",
        response=DossierSchema,
        errors=(401, 404),
    ),
    *OPERATIONAL,
)


@cache
def document() -> dict:
    return build(
        title="motcua dossier service",
        version=VERSION,
        description="The one-stop dossier lifecycle (hồ sơ một cửa): receipt, processing, result.",
        operations=OPERATIONS,
    )
