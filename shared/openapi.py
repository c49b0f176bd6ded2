"""OpenAPI 3 documents built from the marshmallow schemas that validate the requests.

A service lists its operations as :class:`Operation` records; :func:`build` turns them (and the
operational endpoints every service has) into the document served at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import INCLUDE, Schema, fields

from shared.http import RETRY_AFTER_SECONDS
from shared.problems import PROBLEM_CONTENT_TYPE

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# Relative: each service answers at its own address, or under PUBLIC_BASE_URL behind the gateway.
SERVERS = [{"url": "/", "description": "this service's own address (or PUBLIC_BASE_URL)"}]
LICENSE_URLS = {"Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0"}


class FieldErrorSchema(Schema):
    pointer = fields.String(
        required=True, metadata={"description": "JSON pointer to the field, e.g. /applicant"}
    )
    detail = fields.String(required=True, metadata={"description": "what is wrong with it"})


class ProblemSchema(Schema):
    """RFC 9457 problem details. Extension members are allowed (RFC 9457 §3.2); the known ones are listed."""

    class Meta:
        unknown = INCLUDE  # published as additionalProperties: true

    type = fields.String(
        required=True,
        metadata={
            "format": "uri",
            "description": "<base>/problems/<slug>: a page explaining the problem (docs/problems.md); <base> "
            "is the deployment's PUBLIC_BASE_URL, or the service's own address",
        },
    )
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String()
    errors = fields.List(
        fields.Nested(FieldErrorSchema),
        metadata={"description": "validation-error: one entry per invalid field"},
    )
    current_status = fields.Integer(metadata={"description": "conflict on a dossier: its status code now"})
    current_status_name = fields.String(
        metadata={"description": "conflict on a dossier: its status name now"}
    )
    allowed_actions = fields.List(
        fields.String(), metadata={"description": "conflict on a dossier: the actions possible now"}
    )
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "service-unavailable on /health/ready: each dependency, up or down"},
    )


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    operation_id: str
    tag: str
    request: type[Schema] | None = None
    response: type[Schema] | None = None
    status: int = 200
    query: type[Schema] | None = None
    errors: tuple[int, ...] = (400, 401, 403, 404, 422)
    public: bool = False
    description: str = ""
    extra_responses: dict = field(default_factory=dict)
    # False only where nothing touches the database or the broker: no 503 to document.
    unavailable: bool = True
    # The write runs through shared.http.idempotent: Idempotency-Key, and Idempotent-Replayed on a replay.
    replayable: bool = False
    extra_parameters: tuple[dict, ...] = ()


ERROR_TEXT = {
    400: "malformed request",
    401: "missing or invalid bearer token",
    403: "outside the caller's role or jurisdiction",
    404: "not found (or outside the caller's jurisdiction)",
    409: "not allowed in the dossier's current status",
    413: "body too large",
    415: "body is not JSON",
    422: "invalid fields, or an Idempotency-Key reused for another request",
    503: "a dependency (database, broker) is unavailable",
}


RETRY_AFTER = {
    "description": f"seconds to wait before retrying (the service sends {RETRY_AFTER_SECONDS})",
    "schema": {"type": "integer", "minimum": 0},
}
IDEMPOTENT_REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the same "
    "Idempotency-Key and body; absent on a first answer",
    "schema": {"type": "string", "enum": ["true"]},
}


@cache
def project_license() -> dict:
    """The licence the project is published under, as pyproject.toml names it."""
    with PYPROJECT.open("rb") as file:
        declared = tomllib.load(file)["project"]["license"]
    name = declared["text"] if isinstance(declared, dict) else declared
    return {"name": name, **({"url": LICENSE_URLS[name]} if name in LICENSE_URLS else {})}


def _openapi_path(path: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)


def build(*, title: str, version: str, description: str, operations: Iterable[Operation]) -> dict:
    spec = APISpec(
        title=title,
        version=version,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": description, "license": project_license()},
        servers=SERVERS,
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", schema=ProblemSchema)
    paths: dict[str, dict] = {}
    for op in operations:
        path = _openapi_path(op.path)
        parameters = [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        parameters.extend(op.extra_parameters)
        # Documented only where shared.http.idempotent honours it: elsewhere it would be ignored.
        if op.replayable:
            parameters.append(
                {
                    "in": "header",
                    "name": "Idempotency-Key",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
                    "description": "repeat a write safely: the same key and body return the first response",
                }
            )
        responses: dict = {
            str(op.status): {
                "description": "success",
                **({"content": {"application/json": {"schema": op.response}}} if op.response else {}),
            }
        }
        # A body that is not JSON, or a malformed Idempotency-Key: 400 wherever either can be sent.
        writes = op.method in ("POST", "PUT", "PATCH", "DELETE")
        codes = set(op.errors) | ({400, 415, 413} if op.request else set()) | ({400} if writes else set())
        codes |= {503} if op.unavailable else set()
        for code in sorted(codes):
            responses[str(code)] = {
                "description": ERROR_TEXT.get(code, "error"),
                "content": {PROBLEM_CONTENT_TYPE: {"schema": "Problem"}},
            }
        if "503" in responses:
            responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
        responses.update(op.extra_responses)
        if op.replayable:
            responses[str(op.status)]["headers"] = {"Idempotent-Replayed": IDEMPOTENT_REPLAYED}
        operation = {
            "summary": op.summary,
            "operationId": op.operation_id,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.description:
            operation["description"] = op.description
        if not op.public:
            operation["security"] = [{"bearer": []}]
        if op.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.request}},
            }
        paths.setdefault(path, {})[op.method.lower()] = operation
    for path, operations_of_path in paths.items():
        spec.path(path=path, operations=operations_of_path)
    return spec.to_dict()


OPERATIONAL = (
    Operation(
        "GET",
        "/health/live",
        "The process is up",
        "health_live",
        "operations",
        public=True,
        errors=(),
        unavailable=False,
    ),
    Operation(
        "GET",
        "/health/ready",
        "The database and the broker are reachable",
        "health_ready",
        "operations",
        public=True,
        errors=(503,),
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics of this service",
        "metrics",
        "operations",
        public=True,
        errors=(),
        unavailable=False,
    ),
    Operation(
        "GET",
        "/api/v1/openapi.json",
        "This document",
        "openapi",
        "operations",
        public=True,
        errors=(),
        unavailable=False,
    ),
    Operation(
        "GET",
        "/problems/<slug>",
        "The page explaining a problem type (what a problem's type URI names)",
        "problem_type",
        "operations",
        public=True,
        errors=(404,),
        unavailable=False,
        extra_responses={
            "200": {
                "description": "the explanation",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    ),
)
