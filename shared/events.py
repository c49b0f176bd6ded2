"""The event contract (docs/contracts.md §1) in one place: envelope, routing keys, exchanges, catalogue.

Every domain event of every service is a CloudEvents 1.0 JSON document published to the durable
topic exchange ``egov.events`` with routing key ``<source>.<event>.<receiving unit path>``; when the
handling unit differs, the ``CC`` header carries the key for the handling unit's path (and, for a
transfer, the path of the unit the dossier leaves).

Since contract 4.0 the envelope follows three CloudEvents extensions to the letter (docs/contracts.md §1):
``sequence`` is the sequence extension's string (the per-dossier counter, zero-padded to
:data:`SEQUENCE_DIGITS` digits so that it orders lexicographically), ``dataschema`` names the published
schema of ``data``, and ``traceparent``/``tracestate`` are the distributed-tracing extension's (W3C Trace
Context). A consumer reads ``sequence`` in both forms, the 3.x integer and the 4.x string, so events
written before an upgrade, and producers not yet upgraded, are still read.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, validate

from shared import clock, fastload
from shared.fastload import FastSchema

EXCHANGE = "egov.events"
DEAD_LETTER_EXCHANGE = "egov.events.dlx"
# Where an event no queue is bound for is kept (egov.events' alternate exchange; see shared.broker).
UNROUTED_EXCHANGE = "egov.events.unrouted"
UNROUTED_QUEUE = "egov.events.unrouted"
CONTENT_TYPE = "application/cloudevents+json"
SPEC_VERSION = "1.0"
SOURCES = ("dossier", "postal", "esign", "metrics", "outbound", "notifier", "payment")

# The published JSON Schemas (docs/schemas/<type>.json) are identified by this base; ``dataschema``
# points at the ``data`` part of the type's document.
SCHEMA_BASE = "https://motcua.github.io/schemas/"
# ``sequence`` as the CloudEvents sequence extension has it: a string that orders lexicographically.
SEQUENCE_DIGITS = 10
# W3C Trace Context (version 00): what ``traceparent`` must look like to be continued; anything else is
# dropped, as the recommendation says, never a reason to refuse the event.
TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
TRACESTATE_MAX = 512

_WORD = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class InvalidEvent(ValueError):
    """A message that is not a well-formed event of this contract."""


def schema_uri(event_type: str) -> str:
    """The published JSON Schema of a whole event of this type (its ``$id``)."""
    return f"{SCHEMA_BASE}{event_type}.json"


def sequence_text(sequence: int) -> str:
    """``sequence`` as sent since contract 4.0: ``0000000007`` orders after ``0000000006`` as text."""
    return f"{sequence:0{SEQUENCE_DIGITS}d}"


class SequenceField(fields.Field):
    """The per-dossier counter, read in both forms: the 4.x string (``"0000000007"``) and the 3.x
    integer (``7``); a bool, a float, a signed or non-decimal string is refused."""

    default_error_messages = {"invalid": "must be a decimal string of digits, or an integer"}

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
            return int(value)
        raise self.make_error("invalid")


def _fast_sequence(field: fields.Field):
    # The consume path's fast loader (shared/fastload.py): the common forms only, the field decides the rest.
    def convert(value: Any) -> Any:
        if type(value) is int:
            return value
        if type(value) is str and len(value) == SEQUENCE_DIGITS and value.isascii() and value.isdigit():
            return int(value)
        return fastload.UNSURE

    return convert


fastload.register(SequenceField, _fast_sequence)


def trace_context(document: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The event's ``traceparent`` and ``tracestate`` when well-formed, else None (never a refusal)."""
    parent = document.get("traceparent")
    if not isinstance(parent, str) or not TRACEPARENT.match(parent):
        return None, None
    state = document.get("tracestate")
    state = (
        state if isinstance(state, str) and 0 < len(state) <= TRACESTATE_MAX and state.isprintable() else None
    )
    return parent, state


class CloudEventSchema(Schema):
    """The CloudEvents 1.0 structured-mode envelope with motcua's extension attributes.

    Read tolerantly (docs/contracts.md §6): an attribute it does not know, such as a newer producer's
    extension attribute, is left out, not refused."""

    class Meta:
        unknown = EXCLUDE

    specversion = fields.String(required=True, validate=validate.Equal(SPEC_VERSION))
    id = fields.UUID(required=True)
    source = fields.String(required=True, validate=validate.Regexp(r"^/motcua/[a-z]+$"))
    type = fields.String(required=True, validate=validate.Regexp(r"^vn\.motcua\.[a-z]+\.[a-z0-9_]+$"))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=100))
    time = fields.AwareDateTime(required=True, format="iso")
    datacontenttype = fields.String(required=True, validate=validate.Equal("application/json"))
    data = fields.Dict(required=True)
    unitpath = fields.String(required=True, validate=validate.Regexp(_PATH))
    handlingunitpath = fields.String(validate=validate.Regexp(_PATH))
    sequence = SequenceField(required=True, validate=validate.Range(min=1))


_ENVELOPE = FastSchema(CloudEventSchema())


def routing_key(source: str, name: str, unit_path: str) -> str:
    """``dossier.received.79.26734``: how a subscriber selects events by kind and jurisdiction."""
    if source not in SOURCES:
        raise ValueError(f"unknown event source {source!r}")
    if not _WORD.match(name):
        raise ValueError(f"event name must be snake_case, got {name!r}")
    if not _PATH.match(unit_path):
        raise ValueError(f"unit path must be dot-separated unit codes, got {unit_path!r}")
    return f"{source}.{name}.{unit_path}"


@dataclass(frozen=True)
class Event:
    """One domain event, as it travels: the envelope attributes plus the minimal ``data``."""

    source: str
    name: str
    subject: str
    data: Mapping[str, Any]
    unit_path: str
    sequence: int
    handling_unit_path: str | None = None
    # Further unit paths that must receive this message through CC: for ``transferred``, the
    # handling unit the dossier leaves (docs/contracts.md §1 Events). Not part of the envelope.
    also_unit_paths: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=clock.now)
    # The trace the event was made in (W3C Trace Context); set by the unit of work at commit.
    traceparent: str | None = None
    tracestate: str | None = None
    # Sent as contract 3.x did (an integer ``sequence``): an event read in that form keeps it, and a
    # producer sends it while EVENT_SEQUENCE_FORMAT=integer (a rolling upgrade from 3.x).
    integer_sequence: bool = False

    @property
    def type(self) -> str:
        return f"vn.motcua.{self.source}.{self.name}"

    @property
    def routing_key(self) -> str:
        return routing_key(self.source, self.name, self.unit_path)

    @property
    def cc(self) -> list[str]:
        """Routing keys of the other jurisdictions that must receive this same message.

        The handling unit's path first, then ``also_unit_paths``; each once, never the receiving
        unit's own path (the routing key already reaches it).
        """
        paths = dict.fromkeys(p for p in (self.handling_unit_path, *self.also_unit_paths) if p)
        return [routing_key(self.source, self.name, path) for path in paths if path != self.unit_path]

    def envelope(self) -> dict[str, Any]:
        document = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": f"/motcua/{self.source}",
            "type": self.type,
            "subject": self.subject,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "dataschema": f"{schema_uri(self.type)}#/properties/data",
            "data": dict(self.data),
            "unitpath": self.unit_path,
            "sequence": self.sequence if self.integer_sequence else sequence_text(self.sequence),
        }
        if self.handling_unit_path:
            document["handlingunitpath"] = self.handling_unit_path
        if self.traceparent:
            document["traceparent"] = self.traceparent
            if self.tracestate:
                document["tracestate"] = self.tracestate
        return document

    def to_json(self) -> str:
        return json.dumps(self.envelope(), ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse and validate a received message; InvalidEvent says what is wrong."""
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidEvent("envelope must be a JSON object")
        try:
            loaded = _ENVELOPE.load(document)
        except ValidationError as exc:
            raise InvalidEvent(f"not a motcua CloudEvent: {exc.messages}") from exc
        traceparent, tracestate = trace_context(document)
        source = loaded["source"].rsplit("/", 1)[-1]
        name = loaded["type"].rsplit(".", 1)[-1]
        if loaded["type"] != f"vn.motcua.{source}.{name}":
            raise InvalidEvent(f"type {loaded['type']!r} does not match source {source!r}")
        return cls(
            source=source,
            name=name,
            subject=loaded["subject"],
            data=loaded["data"],
            unit_path=loaded["unitpath"],
            handling_unit_path=loaded.get("handlingunitpath"),
            sequence=loaded["sequence"],
            id=str(loaded["id"]),
            time=loaded["time"],
            traceparent=traceparent,
            tracestate=tracestate,
            integer_sequence=not isinstance(document["sequence"], str),
        )


@dataclass(frozen=True)
class EventType:
    """A catalogue entry: what the event means and the schema of its ``data``."""

    source: str
    name: str
    summary: str
    schema: type[Schema]

    @property
    def type(self) -> str:
        return f"vn.motcua.{self.source}.{self.name}"


CATALOGUE: dict[str, EventType] = {}


def event_type(source: str, name: str, summary: str):
    """Class decorator registering a marshmallow schema as the ``data`` of an event type."""

    def register(schema: type[Schema]) -> type[Schema]:
        routing_key(source, name, "0")  # validates source and name
        entry = EventType(source, name, summary, schema)
        if CATALOGUE.get(entry.type, entry).schema is not schema:
            raise ValueError(f"event type {entry.type} registered twice")
        CATALOGUE[entry.type] = entry
        return schema

    return register


@cache
def data_schema(schema: type[Schema]) -> FastSchema:
    """The one strict instance of a catalogue schema (the producer's), with its fast path (fastload)."""
    # Instantiating a marshmallow schema deep-copies its fields: once per type, not per event.
    return FastSchema(schema())


@cache
def reading_schema(schema: type[Schema]) -> FastSchema:
    """The consumer's instance of a catalogue schema: fields it does not know are left out."""
    return FastSchema(schema(unknown=EXCLUDE))


def read_data(entry: EventType, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as a consumer of this code's version reads it (docs/contracts.md §6 Evolving the contracts).

    A field the schema does not know (a newer producer's additive change) is left out; a missing optional
    field takes the schema's ``load_default`` when it declares one. A missing required field or a value of
    the wrong type is refused with marshmallow's ValidationError, as the producer's schema would. What is
    returned stays in JSON form (strings for times and ids), as the producer sent it."""
    schema = reading_schema(entry.schema)
    schema.load(data)  # raises ValidationError
    read: dict[str, Any] = {}
    for name, field_ in schema.schema.load_fields.items():
        key = field_.data_key or name
        if key in data:
            read[key] = data[key]
        elif not field_.required and field_.load_default is not missing:
            default = field_.load_default() if callable(field_.load_default) else field_.load_default
            read[key] = None if default is None else field_._serialize(default, name, None)
    return read


def build_event(
    source: str,
    name: str,
    *,
    subject: str,
    data: Mapping[str, Any],
    unit_path: str,
    sequence: int,
    handling_unit_path: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    also_unit_paths: tuple[str, ...] = (),
) -> Event:
    """The one place events are built: validates ``data`` against the catalogue schema.

    ``id`` and ``time`` are new and now unless given (a replay or a test simulator gives them)."""
    entry = CATALOGUE.get(f"vn.motcua.{source}.{name}")
    if entry is None:
        raise ValueError(f"event type vn.motcua.{source}.{name} is not in the catalogue")
    schema = data_schema(entry.schema)
    payload = schema.schema.dump(data)
    errors = schema.validate(payload)
    if errors:
        raise ValueError(f"data of {entry.type} does not match its schema: {errors}")
    return Event(
        source=source,
        name=name,
        subject=subject,
        data=payload,
        unit_path=unit_path,
        sequence=sequence,
        handling_unit_path=handling_unit_path,
        **({} if id is None else {"id": id}),
        **({} if time is None else {"time": time}),
        also_unit_paths=tuple(also_unit_paths),
    )
