"""The event catalogue as an AsyncAPI 3.0 document and JSON Schemas, from the schemas the code uses.

Every ``@event_type`` registered in a service's ``schemas`` module appears here; ``make docs`` writes
``docs/asyncapi.yaml`` and ``docs/schemas/<type>.json``, and a test keeps them equal to the code (and
valid for AsyncAPI's own parser: tests/assets/test_asyncapi_valid.py).

AsyncAPI 3.0 splits what 2.x kept together: a **channel** per event type (its ``address``, the routing
key on ``egov.events`` with the unit path as a parameter, and the message it carries), an **operation**
per event type (``action: send``: the source service publishes it; the document describes motcua as
the application), and the **messages** under ``components``, whose payload is the published JSON Schema
of the whole CloudEvent (``docs/schemas/<type>.json``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import INCLUDE

from shared.events import (
    CATALOGUE,
    CONTENT_TYPE,
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    SEQUENCE_DIGITS,
    TRACEPARENT,
    TRACESTATE_MAX,
    EventType,
    schema_uri,
)

ROOT = Path(__file__).resolve().parent.parent
VERSION = "4.0.0"
# How a consumer reads an event, and so which changes are additive (docs/contracts.md §6).
TOLERANT_READING = (
    "Consumers read tolerantly: a `data` field or an envelope attribute they do not know is ignored, not "
    "a reason to dead-letter, and a missing optional field takes its default; so every `data` schema is "
    "open (`additionalProperties: true`). Adding an optional field is additive (a minor version); removing "
    "or renaming a field, or changing its type or meaning, is a major version."
)


def load_catalogue() -> dict[str, EventType]:
    """Import every service's schemas so that their event types register themselves."""
    for folder in sorted((ROOT / "services").iterdir()):
        if (folder / "schemas.py").is_file():
            importlib.import_module(f"services.{folder.name}.schemas")
    return dict(sorted(CATALOGUE.items()))


def _converter() -> OpenAPIConverter:
    spec = APISpec("motcua events", VERSION, "3.0.3", plugins=[MarshmallowPlugin()])
    return spec.plugins[0].converter


def data_schema(entry: EventType) -> dict[str, Any]:
    # Published open: what a consumer accepts (shared.events.read_data), not the producer's strict form.
    schema = _converter().schema2jsonschema(entry.schema(unknown=INCLUDE))
    return {"title": f"{entry.type} data", "description": entry.summary, **schema}


def envelope_schema(entry: EventType) -> dict[str, Any]:
    """JSON Schema of the whole CloudEvent carrying this type."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(entry.type),
        "title": entry.type,
        "description": f"{entry.summary} Read tolerantly: an attribute or a `data` field a consumer does "
        "not know is ignored (docs/contracts.md §6).",
        "type": "object",
        "additionalProperties": True,
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "dataschema",
            "data",
            "unitpath",
            "sequence",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid", "description": "idempotency key"},
            "source": {"const": f"/motcua/{entry.source}"},
            "type": {"const": entry.type},
            "subject": {"type": "string", "description": "the dossier code (mã hồ sơ)"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "unitpath": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
                "description": "receiving unit path, province first",
            },
            "handlingunitpath": {"type": "string", "description": "handling unit path"},
            "sequence": {
                "description": "the CloudEvents sequence extension: the per-dossier counter of the event's "
                f"source, 1, 2, 3 … over all that service's events of the dossier, zero-padded to "
                f"{SEQUENCE_DIGITS} digits so that it orders as text (`0000000003`); order and detect gaps "
                "per (source, subject). Contract 3.x sent it as an integer, and a producer still does while "
                "EVENT_SEQUENCE_FORMAT=integer (a rolling upgrade): read both.",
                "anyOf": [
                    {
                        "type": "string",
                        "pattern": f"^[0-9]{{{SEQUENCE_DIGITS}}}$",
                        "not": {"const": "0" * SEQUENCE_DIGITS},
                    },
                    {"type": "integer", "minimum": 1, "deprecated": True},
                ],
            },
            "dataschema": {
                "const": f"{schema_uri(entry.type)}#/properties/data",
                "description": "where the schema of `data` is published: this document's `data` property",
            },
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT.pattern,
                "description": "the CloudEvents distributed-tracing extension: the W3C Trace Context of the "
                "request or event the event was made in; continue the trace from it",
            },
            "tracestate": {
                "type": "string",
                "maxLength": TRACESTATE_MAX,
                "description": "W3C Trace Context vendor state, sent with traceparent when the trace has any",
            },
            "data": data_schema(entry),
        },
    }


def channel_id(entry: EventType) -> str:
    """``dossier_received``: the event type's name in the document (channel, message, operation)."""
    return entry.type.removeprefix("vn.motcua.").replace(".", "_")


def _channel(entry: EventType, name: str) -> dict[str, Any]:
    handling = (
        " The CC header lists both handling paths: the unit taking the dossier and the unit handing it over."
        if entry.name == "transferred"
        else ""
    )
    return {
        "address": f"{entry.source}.{entry.name}.{{unitpath}}",
        "title": entry.type,
        "description": f"{entry.summary} Routing key on the `{EXCHANGE}` topic exchange; the handling "
        f"unit's key travels in the CC header when it differs.{handling}",
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "parameters": {"unitpath": {"$ref": "#/components/parameters/unitpath"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": EXCHANGE,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }


def build() -> dict[str, Any]:
    catalogue = load_catalogue()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for entry in catalogue.values():
        name = channel_id(entry)
        channels[name] = _channel(entry, name)
        operations[f"send_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "title": f"The {entry.source} service publishes {entry.type}",
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}},
        }
        messages[name] = {
            "name": entry.type,
            "title": entry.type,
            "summary": entry.summary,
            "contentType": CONTENT_TYPE,
            "payload": {
                "schemaFormat": "application/schema+json;version=draft-07",
                "schema": {"$ref": f"schemas/{entry.type}.json"},
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "motcua events",
            "version": VERSION,
            "description": (
                "Domain events of the motcua services on RabbitMQ (docs/contracts.md §1): CloudEvents 1.0 in "
                f"JSON structured mode, persistent, on the durable topic exchange `{EXCHANGE}`; failed "
                f"deliveries go to `{DEAD_LETTER_EXCHANGE}`. Bind `dossier.*.79.26740` for a commune, "
                "`dossier.*.89.883.#` for a district, `dossier.*.79.#` for a province, `#` for all. "
                "Delivery is at least once: de-duplicate by `id`, order by `sequence` (each source "
                "numbers its own events of a dossier). " + TOLERANT_READING
            ),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "the broker of `make run`; a deployment's is its own",
            }
        },
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {
            "messages": dict(sorted(messages.items())),
            "parameters": {
                "unitpath": {
                    "description": "the receiving unit's administrative codes from the province down, "
                    "dot-separated (`79.26740`)",
                    "examples": ["79", "79.26740", "89.883.30316"],
                }
            },
        },
    }
