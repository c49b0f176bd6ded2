"""Errors as RFC 9457 problem details: every error a client can see is one of these.

Domain and service code raise these; :mod:`shared.http` turns them into
``application/problem+json`` responses in one place. A problem's ``type`` is an absolute URI,
``<base>/problems/<slug>``, where every service serves a page explaining it (``GET /problems/<slug>``);
the base is ``PUBLIC_BASE_URL`` when a deployment sets it, else the service's own address. Each kind of
problem is a subclass here (or in a service) with its ``explanation``; :data:`TYPES` lists them all.
"""

from __future__ import annotations

import html
import re
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPES: dict[str, type[Problem]] = {}


class Problem(Exception):
    """An error with an HTTP status, a stable type and a message a person can act on."""

    status = 500
    slug = "internal-error"
    title = "Internal error"
    explanation = (
        "The service failed while answering; nothing the client sent caused it, and it has been logged "
        "with its cause. A write may or may not have happened: repeat it with the same Idempotency-Key, "
        "which returns the first answer if it did."
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TYPES[cls.slug] = cls

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extensions = extensions
        self.headers: dict[str, str] = {}  # what the answer needs besides the body (Allow on a 405)

    def type_uri(self, base: str = "") -> str:
        return f"{base}/problems/{self.slug}"

    def to_dict(self, instance: str | None = None, base: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri(base),
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


TYPES[Problem.slug] = Problem


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "The request is malformed"
    explanation = (
        "The request could not be read at all: a body that is not JSON, a header that is malformed (an "
        "Idempotency-Key of more than 200 characters), a webhook that is not a tracking report. Fix the "
        "request as `detail` says; sending it again unchanged gets the same answer."
    )


class ValidationFailed(Problem):
    status, slug, title = 422, "validation-error", "Some fields are invalid"
    explanation = (
        "The request was read, but some values are not acceptable: a field missing, of the wrong kind or "
        "out of range, or a value the rules refuse (an unknown procedure, a unit outside the map). `errors` "
        "lists each one with a JSON pointer to the field (`pointer`) and what is wrong (`detail`). Nothing "
        "changed."
    )

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
    explanation = (
        "No valid bearer token came with the request: missing, expired, signed by another key or for "
        "another audience. Get a token from the identity provider and send it as `Authorization: Bearer "
        "<token>`."
    )


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"
    explanation = (
        "The token is valid, but its roles or units do not allow this: an action outside the caller's "
        "role, or a unit outside the caller's jurisdiction. Nothing changed."
    )


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"
    explanation = (
        "No such resource, or it is outside the caller's jurisdiction (the two are not told apart, so "
        "that codes cannot be probed). The API lives under /api/v1/; its document is "
        "/api/v1/openapi.json."
    )


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"
    explanation = "The path exists, but not with this method. The `Allow` header lists the methods it takes."


class Conflict(Problem):
    status, slug, title = 409, "conflict", "The request conflicts with the current state"
    explanation = (
        "The rules do not allow this now, in the resource's current state; nothing changed. For a "
        "dossier, `current_status` and `current_status_name` say where it is and `allowed_actions` what "
        "may be done instead."
    )


class IdempotencyKeyReused(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another request"
    explanation = (
        "This Idempotency-Key was already used by this caller for a different request (another method, "
        "path or body). A key names one request: use a new key for a new request."
    )


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"
    explanation = "The body is bigger than the service takes (`detail` says the limit). Nothing was read."


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"
    explanation = "The body must be JSON, sent with `Content-Type: application/json`."


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"
    explanation = (
        "A dependency (the database, the broker, the timestamp authority) does not answer: the request "
        "was not carried out. Retry after the `Retry-After` seconds, with the same Idempotency-Key for a "
        "write. On /health/ready, `checks` says which dependency is down."
    )


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"
    explanation = (
        "A public endpoint (the signature verifier, the citizen's status lookup) takes a limited number of "
        "requests a minute from one address, and the lookup as many for one dossier code; `detail` says "
        "when to retry."
    )


def explanation_page(slug: str) -> str | None:
    """The HTML page a problem type's URI resolves to; None for a type this service does not have."""
    kind = TYPES.get(slug)
    if kind is None:
        return None
    text = html.escape(kind.explanation)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    title = html.escape(kind.title)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>HTTP {kind.status} · problem type <code>{html.escape(slug)}</code></p>\n"
        f"<p>{text}</p>\n<p>Every error is an RFC 9457 problem: <code>type</code> (this page), "
        "<code>title</code>, <code>status</code>, <code>detail</code> (what went wrong with this request), "
        "and members of its own as this page says.</p></body></html>\n"
    )


def catalogue_markdown() -> str:
    """docs/problems.md: every problem type, as its page explains it."""
    lines = [
        "# Problem types",
        "",
        "Every error a motcua service answers is an RFC 9457 problem (`application/problem+json`).",
        "Its `type` is `<base>/problems/<slug>`: `<base>` is the deployment's `PUBLIC_BASE_URL`,",
        "or the service's own address when that is not set (`make run`: http://127.0.0.1:8000 for",
        "the dossier service), and every service serves the page below at that path.",
        "Generated by `make docs` from shared/problems.py.",
        "",
    ]
    for slug, kind in sorted(TYPES.items(), key=lambda item: (item[1].status, item[0])):
        lines += [f"## {slug}", "", f"HTTP {kind.status}: {kind.title}.", "", kind.explanation, ""]
    return "\n".join(lines)
