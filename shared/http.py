"""HTTP for every service: the entrypoint, JSON in and out, problem responses, idempotent writes.

``@api("POST", "/api/v1/dossiers")`` is nameko's ``@http`` with three differences: a dict or list
result becomes JSON, every error (ours, werkzeug's 404/405, an unexpected crash) becomes an RFC 9457
problem built in :meth:`ApiEntrypoint.response_from_exception`, and each request is counted and timed.

A refusal (a 4xx problem) is logged as one INFO line naming the request id (``X-Request-Id``, given or
made up, and echoed in the response); tracebacks are for failures. nameko's own "(expected) error
handling worker" warning, two chained tracebacks for every refusal, is dropped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from shared import domain, logs, metrics, tracing
from shared.domain import DomainError
from shared.jsontext import dumps
from shared.neighbours import NeighbourUnavailable
from shared.problems import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.transient import describe, is_transient
from shared.uow import StoredResponse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
# What a client is told to wait while the database or the broker is down (Retry-After, seconds).
RETRY_AFTER_SECONDS = 5
PRIVATE_PREFIX = "/api/v1/"
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
JSON_TYPES = ("application/json", "application/problem+json")
# As the OpenAPI documents state it (shared/openapi.py): what a header carries safely.
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        dumps(body), status=status, headers=headers, content_type="application/json; charset=utf-8"
    )


def problem_base(config: dict) -> str:
    """Where problem types are explained: ``PUBLIC_BASE_URL``, else this service's own address."""
    public = str(config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    if public:
        return public
    host, _, port = str(config.get("WEB_SERVER_ADDRESS") or "0.0.0.0:8000").rpartition(":")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def problem_response(problem: Problem, instance: str | None = None, base: str = "") -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if problem.status == 503 else {}
    headers.update(problem.headers)
    response = Response(
        dumps(problem.to_dict(instance, base)),
        status=problem.status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response.problem = problem  # for the one log line of the request (ApiEntrypoint.handle_request)
    return response


def request_id(request) -> str:
    """The request's id: the client's ``X-Request-Id`` when it is usable, else one made up for it."""
    known = getattr(request, "request_id", None)
    if known is None:
        given = request.headers.get("X-Request-Id", "")
        known = given if 0 < len(given) <= 100 and given.isprintable() else str(uuid.uuid4())
        request.request_id = known
    return known


class _NoExpectedErrorTracebacks(logging.Filter):
    """Drops nameko's "(expected) error handling worker" record: the entrypoint logs the refusal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("(expected) error handling worker")


_EXPECTED_ERRORS_FILTER = _NoExpectedErrorTracebacks()


def _from_werkzeug(exc: HTTPException) -> Problem:
    if exc.code == 404:
        return NotFound("no such resource; the API lives under /api/v1/ (see /api/v1/openapi.json)")
    if exc.code == 405:
        problem = MethodNotAllowed(f"{exc.description}")
        # RFC 9110 §15.5.6: a 405 says which methods the resource takes.
        problem.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", None) or ())
        return problem
    problem = Problem(exc.description or exc.name)
    problem.status, problem.title = exc.code or 500, exc.name
    problem.slug = exc.name.lower().replace(" ", "-")
    return problem


class ProblemWsgiApp(WsgiApp):
    """nameko's WSGI app, with routing errors (404, 405) answered as problems too."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = problem_response(_from_werkzeug(exc), request.path, self.problem_base)
        return response(environ, start_response)

    @property
    def problem_base(self) -> str:
        return problem_base(self.server.container.config)


class ProblemWebServer(WebServer):
    def get_wsgi_app(self):
        return ProblemWsgiApp(self)

    def context_data_from_headers(self, request):
        # The handler's worker runs in a greenthread of its own: it continues the request's server
        # span, and its log lines name the request (shared/tracing.py).
        return tracing.worker_data(**{tracing.REQUEST_ID_KEY: request_id(request), **tracing.current()})

    def process_request(self, sock, address):
        # eventlet.wsgi writes headers and body separately: with Nagle's algorithm on, a body of
        # more than one segment waits for the client's delayed ACK (about 40 ms per response).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(sock, address)


class ApiEntrypoint(HttpRequestHandler):
    server = ProblemWebServer()

    def __init__(self, method: str, url: str, *, max_body: int = MAX_BODY_BYTES, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", (Problem, DomainError))
        self.max_body = max_body
        super().__init__(method, url, **kwargs)

    def setup(self) -> None:
        logs.install()  # a service that takes applicants' data logs none of it
        containers_log = logging.getLogger("nameko.containers")
        if _EXPECTED_ERRORS_FILTER not in containers_log.filters:
            containers_log.addFilter(_EXPECTED_ERRORS_FILTER)
        # Links the API hands out start here, never with the request's Host header (which a client sets).
        self.public_base_url = str(self.container.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
        self.problem_base = problem_base(self.container.config)
        super().setup()

    def handle_request(self, request):
        started = time.perf_counter()
        request.public_base_url = self.public_base_url
        request_token = logs.REQUEST_ID.set(request_id(request))
        try:
            with tracing.server_span(self.container.service_name, request, self.url) as span:
                response = self._answer(request)
                tracing.answered(span, response.status_code)
        finally:
            logs.REQUEST_ID.reset(request_token)
        service = self.container.service_name
        metrics.HTTP_REQUESTS.labels(service, self.method, self.url, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(service, self.method, self.url).observe(time.perf_counter() - started)
        return response

    def _answer(self, request) -> Response:
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            _buffer_chunked_body(request, self.max_body)
        if (request.content_length or 0) > self.max_body:
            response = problem_response(
                PayloadTooLarge(f"request bodies are limited to {self.max_body} bytes"),
                request.path,
                self.problem_base,
            )
        else:
            request.max_content_length = self.max_body
            response = super().handle_request(request)
        if request.path.startswith(PRIVATE_PREFIX) and request.path not in PUBLIC_PATHS:
            # Dossiers, forms, audit trails, reports: applicants' data, never kept by a shared cache.
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Request-Id", request.request_id)
        problem = getattr(response, "problem", None)
        if problem is not None:
            log.log(
                logging.INFO if problem.status < 500 else logging.WARNING,
                "%s %s %s: %s %s (request %s): %s",
                "refused" if problem.status < 500 else "answered",
                request.method,
                request.path,
                problem.status,
                problem.slug,
                request.request_id,
                problem.detail,
            )
        return response

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple) and len(result) in (2, 3) and isinstance(result[0], int):
            status, body, *rest = result
            return json_response(body, status, rest[0] if rest else None)
        return json_response(result)

    def response_from_exception(self, exc):
        if isinstance(exc, DomainError):
            exc = problem_for(exc)
        if isinstance(exc, Problem):
            return problem_response(exc, base=self.problem_base)
        if isinstance(exc, HTTPException):
            return problem_response(_from_werkzeug(exc), base=self.problem_base)
        if isinstance(exc, NeighbourUnavailable):
            # Another service or an outside party: 503 with the wait its circuit or its answer says.
            log.warning("answering 503: %s", exc)
            return problem_response(exc.problem(), base=self.problem_base)
        if is_transient(exc):
            # The database or the broker, not the request: the client may retry the same request.
            # The kind only: the error text may name hosts and ports, which clients need not see.
            log.warning("answering 503: %s", describe(exc))
            return problem_response(
                ServiceUnavailable(f"a dependency is unavailable ({type(exc).__name__}); retry later"),
                base=self.problem_base,
            )
        log.error("unexpected error answering a request", exc_info=exc)
        return problem_response(
            Problem("an unexpected error occurred; it has been logged"), base=self.problem_base
        )


api = ApiEntrypoint.decorator


def problem_for(error: DomainError) -> Problem:
    """The one mapping of domain errors to RFC 9457 problems: a bad value 422 (pointing at it), not
    found 404, forbidden 403, and a rule of the domain (Conflict, or any other DomainError) 409."""
    if isinstance(error, domain.Invalid):
        pointer = f"/{error.field}"
        return ValidationFailed(
            f"{error.field}: {error.message}", errors=[{"pointer": pointer, "detail": error.message}]
        )
    if isinstance(error, domain.NotFound):
        return NotFound(error.detail, **error.facts)
    if isinstance(error, domain.Forbidden):
        return Forbidden(error.detail, **error.facts)
    return Conflict(error.detail, **error.facts)


def _buffer_chunked_body(request, limit: int = MAX_BODY_BYTES) -> None:
    """Read a chunked body (eventlet de-chunks ``wsgi.input``) into memory, up to one byte past the limit,
    and present it with its length: werkzeug would otherwise take a body without Content-Length as empty.
    Bigger than the limit: the Content-Length set here makes the request a 413."""
    stream = request.environ["wsgi.input"]
    body = bytearray()
    while len(body) <= limit:
        piece = stream.read(min(65536, limit + 1 - len(body)))
        if not piece:
            break
        body += piece
    request.environ["wsgi.input"] = io.BytesIO(bytes(body))
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)  # no longer chunked: werkzeug reads the length


def read_json(request, schema: Schema) -> Any:
    """Parse and validate a JSON body; 415/400/413/422 problems name what is wrong."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    try:
        raw = request.get_data(cache=True)
    except HTTPException as exc:
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes") from exc
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: a body nested thousands of levels deep is refused, not a crash. ValueError
        # (JSONDecodeError's base) also covers an integer of more than 4,300 digits, which Python
        # refuses to convert (sys.int_info.default_max_str_digits).
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    try:
        return schema.load(document)
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc


def read_query(request, schema: Schema) -> Any:
    """Validate query parameters (repeated parameters become lists where the schema says so)."""
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        field = schema.fields.get(key)
        many = field is not None and field.__class__.__name__ == "List"
        data[key] = values if many else values[-1]
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc


def page_links(request, page: int, page_size: int, count: int) -> dict[str, str | None]:
    """``next`` and ``previous`` URLs for a paginated list (docs/contracts.md §2): ``PUBLIC_BASE_URL`` and the
    path, or the path alone when it is not set; never the request's ``Host``, which the client chooses."""

    def url(number: int) -> str:
        args = request.args.copy()
        args["page"], args["page_size"] = str(number), str(page_size)
        query = "&".join(f"{k}={v}" for k, values in args.lists() for v in values)
        return f"{getattr(request, 'public_base_url', '')}{request.path}?{query}"

    last = max(1, -(-count // page_size))
    return {
        "next": url(page + 1) if page < last else None,
        "previous": url(page - 1) if page > 1 and page - 1 <= last else None,
    }


def idempotent(
    uow, principal_sub: str, request, handler: Callable, kept: Callable[[Any], Any] | None = None
) -> tuple[int, Any, dict]:
    """Run a write once per ``Idempotency-Key``: the same key and body return the first response.

    ``handler(tx)`` returns ``(status, body)`` or ``(status, body, headers)``; the response is stored
    in the same transaction as the change, so a replay can never see a half-applied write. ``kept``:
    the body as kept for a replay, when the first answer carries what must be kept nowhere (a secret).
    """
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 200 printable ASCII characters")
    body_hash = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data(cache=True)
    ).hexdigest()
    for _attempt in range(3):
        try:
            with uow.transaction() as tx:
                if key is not None:
                    stored = _stored_response(tx, principal_sub, key, body_hash)
                    if stored is not None:
                        return stored
                status, body, *rest = handler(tx)
                headers = rest[0] if rest else {}
                if key is not None and status < 500:
                    answer = StoredResponse(
                        request.method,
                        request.path,
                        body_hash,
                        status,
                        headers,
                        dumps(body if kept is None else kept(body)),
                    )
                    tx.remember(principal_sub, key, answer)
                return status, body, headers
        except sa.exc.IntegrityError:
            # A concurrent request with the same key committed first: replay its answer.
            if key is None:
                raise
            continue
    raise Problem("could not complete the request; retry with the same Idempotency-Key")


def _stored_response(tx, principal_sub: str, key: str, body_hash: str):
    row = tx.recall(principal_sub, key)
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for a different request "
            f"({row.method} {row.path}); use a new key for a new request"
        )
    headers = dict(row.headers or {})
    headers["Idempotent-Replayed"] = "true"
    return row.status, json.loads(row.body), headers
