"""Errors as RFC 9457 problem details: every error a client can see is one of these.

Domain and service code raise these; :mod:`shared.http` turns them into
``application/problem+json`` responses in one place.
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """An error with an HTTP status, a stable type and a message a person can act on."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extensions = extensions

    @property
    def type(self) -> str:
        return f"/problems/{self.slug}"

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "The request is malformed"


class ValidationFailed(Problem):
    status, slug, title = 422, "validation-error", "Some fields are invalid"

    @classmethod
    def from_messages(cls, messages: dict | list, detail: str | None = None) -> ValidationFailed:
        """From marshmallow's nested error messages: one entry per invalid field (JSON pointer)."""
        errors: list[dict[str, Any]] = []

        def walk(node: Any, pointer: str) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, f"{pointer}/{key}")
            elif isinstance(node, list) and node and all(isinstance(m, str) for m in node):
                errors.append({"pointer": pointer or "/", "detail": " ".join(node)})
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{pointer}/{index}")
            else:
                errors.append({"pointer": pointer or "/", "detail": str(node)})

        walk(messages, "")
        fields = ", ".join(e["pointer"].lstrip("/") or "(body)" for e in errors)
        return cls(detail or f"invalid fields: {fields}", errors=errors)


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "The request conflicts with the current state"


class IdempotencyKeyReused(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another request"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"
