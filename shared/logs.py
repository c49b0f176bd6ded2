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
"""

from __future__ import annotations

import logging
import re
import traceback

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
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return record

    logging.setLogRecordFactory(scrubbed_record)
    _installed = True
