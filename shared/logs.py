"""No personal data in logs (docs/security.md): every log record is scrubbed as it is made.

Applicants' identity numbers, phones, names and addresses reach a service in request bodies and leave
it only through the authorised API. What could carry them into a log line is the text of an exception
(a database error quoting the row, a ``repr`` of a body) or a careless message. So every record, whatever
logger or handler it goes to, is formatted once and scrubbed before any handler sees it:

* single-quoted strings (Python reprs, SQL literals) and ``{…}`` literals (JSON bodies, dict reprs)
  become ``…``; a statement's ``[parameters: …]`` too;
* values after ``=`` in database messages (``Key (id_number)=(079190001234)``) become ``(…)``;
* identity numbers, phone numbers and e-mail addresses are masked.

SQLAlchemy engines are also created with ``hide_parameters`` (shared/db.py), so statements never carry
their values into an exception in the first place.

Every record also carries ``request_id`` (the HTTP request's ``X-Request-Id``, in the request and its
worker), ``trace_id`` and ``span_id`` (the current span's, shared/tracing.py), empty outside them. With
``LOG_FORMAT=json`` a service writes each record as one JSON object (:class:`JsonFormatter`): ``time``,
``level``, ``service``, ``logger``, ``message``, ``request_id``, ``trace_id``, ``span_id`` and, for a
failure, ``exc_info``; so one filing can be found in every service's log by its trace id.
"""

from __future__ import annotations

import logging
import re
import traceback
from contextvars import ContextVar

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The HTTP request a log record belongs to (set by shared/http.py and, in its worker, shared/tracing.py).
REQUEST_ID: ContextVar[str | None] = ContextVar("motcua_request_id", default=None)

_PATTERNS = (
    (re.compile(r"\[parameters: .*?\](?=\s|$)", re.S), "[parameters: …]"),
    (re.compile(r"=\s*\([^)]*\)"), "=(…)"),
    (re.compile(r"'(?:[^'\\\n]|\\.)*'"), "'…'"),
    (re.compile(r"\{[^{}]*\}"), "{…}"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # Identity numbers (9 or 12 digits), phones (0912345678, 0912 345 678, +84 912 345 678); not dates,
    # times, ports, addresses of hosts or dossier codes (26740-261123-0001), which operators need.
    (re.compile(r"(?<![\w-])(?:\+84|0)\d{2,3}[ .]\d{3}[ .]\d{3,4}(?![\w-])"), "<number>"),
    (re.compile(r"(?<![\w-])(?:\+84 ?)?\d{9,}(?![\w-])"), "<number>"),
)


def scrub(text: str) -> str:
    """``text`` without the values that may be personal data (see the module's docstring)."""
    for pattern, replacement in _PATTERNS:
        if replacement == "{…}":
            previous = None
            while previous != text:  # nested literals, innermost first
                previous, text = text, pattern.sub(replacement, text)
        else:
            text = pattern.sub(replacement, text)
    return text


_installed = False


def install() -> None:
    """Scrub every log record of this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call must still log something
            message = str(record.msg)
        record.msg, record.args = scrub(message), ()
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else ""
        record.span_id = format(span.span_id, "016x") if span.is_valid else ""
        record.request_id = REQUEST_ID.get() or ""
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return record

    logging.setLogRecordFactory(scrubbed_record)
    _installed = True


FORMATS = ("plain", "json")


def use_format(name: str, service: str) -> None:
    """``LOG_FORMAT``: ``plain`` keeps the service's configured formatters; ``json`` writes every record of
    the root logger's handlers as one JSON object."""
    if name not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {name!r}")
    if name == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter(service=service))


class JsonFormatter(_JsonFormatter):
    """One JSON object per record (``LOG_FORMAT=json``): the fields the module's docstring lists.

    Set on the root logger's handlers by :func:`use_format`."""

    FIELDS = ("asctime", "levelname", "name", "message", "request_id", "trace_id", "span_id")

    def __init__(self, service: str = "", **kwargs) -> None:
        super().__init__(
            " ".join(f"%({name})s" for name in self.FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service} if service else None,
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            json_ensure_ascii=False,
            **kwargs,
        )
