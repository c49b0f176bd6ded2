"""The event contract: envelope, routing keys, CC, catalogue validation."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, fields

from shared.asyncapi import load_catalogue
from shared.events import CATALOGUE, Event, InvalidEvent, build_event, event_type, routing_key
from shared.fields import Text


def sample(**overrides) -> Event:
    values = dict(
        source="dossier",
        name="received",
        subject="26740-261123-0001",
        data={"status": 2},
        unit_path="79.26740",
        sequence=1,
    )
    values.update(overrides)
    return Event(**values)


def test_routing_key_is_source_event_and_unit_path():
    assert routing_key("dossier", "received", "79.26740") == "dossier.received.79.26740"
    assert sample(unit_path="89.883.30280").routing_key == "dossier.received.89.883.30280"


@pytest.mark.parametrize(
    ("source", "name", "path"),
    [
        ("desk", "received", "79"),
        ("dossier", "Received", "79"),
        ("dossier", "received", "79.#"),
        ("dossier", "received", ""),
        ("dossier", "re.ceived", "79"),
    ],
)
def test_routing_key_refuses_what_would_break_bindings(source, name, path):
    with pytest.raises(ValueError):
        routing_key(source, name, path)


def test_cc_only_when_the_handling_unit_differs():
    assert sample().cc == []
    assert sample(handling_unit_path="79.26740").cc == []
    assert sample(handling_unit_path="79.79-STP").cc == ["dossier.received.79.79-STP"]
    # a transfer also reaches the unit the dossier leaves; each path once, never the receiving one
    moved = sample(name="transferred", handling_unit_path="79.79-CT", also_unit_paths=("79.79-STP",))
    assert moved.cc == ["dossier.transferred.79.79-CT", "dossier.transferred.79.79-STP"]
    assert sample(handling_unit_path="79.79-STP", also_unit_paths=("79.79-STP", "79.26740")).cc == [
        "dossier.received.79.79-STP"
    ]


def test_envelope_is_cloudevents_structured_mode():
    event = sample(handling_unit_path="79.79-STP")
    document = json.loads(event.to_json())
    assert document["specversion"] == "1.0"
    assert uuid.UUID(document["id"])
    assert document["source"] == "/motcua/dossier"
    assert document["type"] == "vn.motcua.dossier.received"
    assert document["subject"] == "26740-261123-0001"
    assert document["time"].endswith("Z")
    assert document["datacontenttype"] == "application/json"
    assert document["unitpath"] == "79.26740"
    assert document["handlingunitpath"] == "79.79-STP"
    # The CloudEvents sequence extension: a string ordering as text; 1 is ten digits, zero-padded.
    assert document["sequence"] == "0000000001"
    # dataschema: the `data` part of the published schema of the type (its $id in docs/schemas/).
    assert document["dataschema"] == (
        "https://motcua.github.io/schemas/vn.motcua.dossier.received.json#/properties/data"
    )
    assert "traceparent" not in document  # made outside any trace


def test_sequence_orders_as_text_as_it_does_as_a_number():
    """The extension's rule: a later event's sequence sorts after an earlier one's, as strings."""
    numbers = [1, 2, 9, 10, 11, 99, 100, 1000, 12345, 9_999_999_999]
    texts = [json.loads(sample(sequence=n).to_json())["sequence"] for n in numbers]
    assert sorted(texts) == texts
    assert texts[3] == "0000000010" and texts[-1] == "9999999999"


@pytest.mark.parametrize("sent", [7, "0000000007", "7", "00000000000000000007"])
def test_a_consumer_reads_both_forms_of_sequence(sent):
    """3.x producers (and outbox rows written before the upgrade) send an integer, 4.x a string."""
    document = {**json.loads(sample().to_json()), "sequence": sent}
    event = Event.from_json(json.dumps(document))
    assert event.sequence == 7
    # Re-sent (an outgoing webhook) in the form it came in.
    assert json.loads(event.to_json())["sequence"] == (7 if isinstance(sent, int) else "0000000007")


@pytest.mark.parametrize("sent", [0, "0000000000", -1, "-1", "+7", "7.0", 7.0, True, "", "٣", None, [7]])
def test_a_sequence_that_is_not_a_positive_counter_is_refused(sent):
    document = {**json.loads(sample().to_json()), "sequence": sent}
    with pytest.raises(InvalidEvent, match="sequence"):
        Event.from_json(json.dumps(document))


def test_the_trace_context_travels_with_the_event():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = sample(traceparent=parent, tracestate="rojo=00f067aa0ba902b7")
    document = json.loads(event.to_json())
    assert document["traceparent"] == parent and document["tracestate"] == "rojo=00f067aa0ba902b7"
    assert Event.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id: invalid
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id: invalid
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case: invalid
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
        42,
    ],
)
def test_a_malformed_traceparent_is_dropped_not_refused(traceparent):
    """W3C Trace Context: a vendor that cannot parse traceparent starts a new trace; the event stands."""
    document = {**json.loads(sample().to_json()), "traceparent": traceparent, "tracestate": "a=b"}
    event = Event.from_json(json.dumps(document))
    assert event.traceparent is None and event.tracestate is None


def test_round_trip_keeps_every_attribute():
    event = sample(handling_unit_path="79.79-STP", data={"status": 2, "name": "Đăng ký khai sinh"})
    assert Event.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", json.dumps({"specversion": "0.3"}).encode(), b"\xff\xfe"],
)
def test_malformed_messages_are_invalid_events(body):
    with pytest.raises(InvalidEvent):
        Event.from_json(body)


def test_a_wrong_attribute_is_named():
    document = json.loads(sample().to_json())
    document["sequence"] = 0
    with pytest.raises(InvalidEvent, match="sequence"):
        Event.from_json(json.dumps(document))


def test_build_event_checks_data_against_the_catalogue():
    @event_type("postal", "probe_checked", "A probe event for this test.")
    class ProbeSchema(Schema):
        count = fields.Integer(required=True)

    try:
        built = build_event(
            "postal", "probe_checked", subject="X", data={"count": 3}, unit_path="79", sequence=1
        )
        assert built.data == {"count": 3}
        with pytest.raises(ValueError, match="count"):
            build_event("postal", "probe_checked", subject="X", data={}, unit_path="79", sequence=1)
        with pytest.raises(ValueError, match="not in the catalogue"):
            build_event("postal", "never_registered", subject="X", data={}, unit_path="79", sequence=1)
    finally:
        CATALOGUE.pop("vn.motcua.postal.probe_checked", None)


@given(
    path=st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), min_size=1, max_size=4),
    sequence=st.integers(min_value=1, max_value=10**9),
)
def test_any_valid_event_survives_the_wire(path, sequence):
    event = sample(unit_path=".".join(path), sequence=sequence)
    again = Event.from_json(event.to_json().encode())
    assert again == event
    assert again.routing_key.split(".")[2:] == path


FREE_TEXT = re.compile(r"(^|_)(reasons?|notes?|comments?|remarks?|opinions?|texts?|explanations?)$")


def _free_text_fields(schema: Schema, prefix: str = "") -> list[str]:
    found = []
    for name, field in schema.fields.items():
        if isinstance(field, fields.Nested):
            found += _free_text_fields(field.schema, f"{prefix}{name}.")
        elif isinstance(field, fields.String) and (isinstance(field, Text) or FREE_TEXT.search(name)):
            found.append(f"{prefix}{name}")
    return found


def test_no_event_of_any_service_carries_an_officer_s_free_text():
    """An officer's or desk's words stay behind the authorised API: an event carries the reason as a
    code and ``has_reason_text``, never a reason, note or comment field (every service's catalogue)."""
    catalogue = load_catalogue()
    assert {entry.source for entry in catalogue.values()} >= {"dossier", "postal", "esign"}
    offenders = {
        entry.type: found for entry in catalogue.values() if (found := _free_text_fields(entry.schema()))
    }
    assert offenders == {}
