"""The outbound service's OpenAPI document."""

from __future__ import annotations

from functools import cache

from shared.openapi import OPERATIONAL, build

VERSION = "0.1.0"

OPERATIONS = (*OPERATIONAL,)


@cache
def document() -> dict:
    return build(
        title="motcua outbound service",
        version=VERSION,
        description="What leaves motcua for outside systems: the national public service portal's sync "
        "(dossiers and their processing steps, from the dossier events).",
        operations=OPERATIONS,
    )
