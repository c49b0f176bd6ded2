"""The consume path's fast loading (shared/fastload.py) accepts only what the schema itself accepts.

The rule: for any document, the fast path either declines (the schema then decides, with its own
messages) or returns exactly what ``schema.load`` returns. Checked on realistic events of every dossier
type, mutated one attribute or one ``data`` field at a time with values of every JSON kind and the
near-misses of each field (naive and impossible times, padded and braced UUIDs, booleans for numbers,
NaN, a trailing newline after a regular expression's ``$``, …).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared.events import (
    _ENVELOPE,
    CATALOGUE,
    Event,
    EventType,
    InvalidEvent,
    build_event,
    data_schema,
    read_data,
    reading_schema,
)
from shared.fastload import FastSchema, compile_loader
from shared.units import UnitRegistry
from shared.verification import catalogue
from tests.support.metrics_streams import Simulator


def realistic_events() -> list[Event]:
    """A few simulated dossiers' events: at least one of each type the simulator emits."""
    registry = UnitRegistry.default()
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    simulator = Simulator(13, registry, now)
    rng = random.Random(13)
    units = sorted(registry.descendants("79"))
    by_type: dict[str, Event] = {}
    for _ in range(300):
        truth = simulator.dossier(rng.choice(units), now - timedelta(days=rng.uniform(1, 60)))
        for event in truth.events:
            by_type.setdefault(event.type, event)
    return list(by_type.values())


EVENTS = realistic_events()
ENVELOPES = [json.loads(event.to_json()) for event in EVENTS]

NEAR_MISSES = [
    "",
    "x" * 101,
    "3",
    "1.0",
    "true",
    "2026-11-20T09:00:00Z",
    "2026-11-20T09:00:00+07:00",
    "2026-11-20T09:00:00.123+00:00",
    "2026-11-20T09:00:00",
    "2026-11-20",
    "2026-02-30T09:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T09:00:00+25:00",
    "20261120T090000Z",
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    "{" + str(uuid.uuid4()) + "}",
    "urn:uuid:" + str(uuid.uuid4()),
    uuid.uuid4().hex,
    str(uuid.uuid4())[:-1],
    "/motcua/dossier",
    "/motcua/dossier\n",
    "/motcua/esign",
    "vn.motcua.dossier.received",
    "vn.motcua.dossier.received\n",
    "application/json",
    "79.26740",
    "79..26740",
    "79.26740\n",
    2**53,
    2**53 + 1,
    2**1100,
    -1,
    0,
    1,
    1.5,
    float("nan"),
    float("inf"),
    True,
    False,
    None,
    [],
    {},
]


def _choices() -> list:
    """Every value a OneOf of a catalogue schema allows, and the envelope's constants."""
    found = []
    for entry in catalogue().values():
        for field in data_schema(entry.schema).schema.load_fields.values():
            for validator in field.validators:
                if isinstance(validator, validate.OneOf):
                    found.extend(validator.choices)
    return found


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NEAR_MISSES + _choices()),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def same_load(fast: FastSchema, document) -> None:
    """The fast path declines, or agrees with the schema value for value (types and time zones too)."""
    quick = fast._fast(document)
    try:
        slow = fast.schema.load(document)
    except ValidationError as exc:
        assert quick is None, f"fast path accepted what the schema refuses: {exc.messages}"
        assert fast.validate(document) == exc.messages
        return
    if quick is not None:
        assert {k: (type(v), repr(v)) for k, v in quick.items()} == {
            k: (type(v), repr(v)) for k, v in slow.items()
        }
    assert fast.validate(document) == {}


def mutated(document: dict, key: str, action: str, value) -> dict:
    changed = dict(document)
    if action == "set":
        changed[key] = value
    elif action == "drop":
        changed.pop(key, None)
    else:
        changed[key + "_extra"] = value
    return changed


def test_every_schema_on_the_consume_path_has_a_fast_path():
    assert _ENVELOPE.fast
    assert [entry.type for entry in catalogue().values() if not data_schema(entry.schema).fast] == []
    assert [entry.type for entry in catalogue().values() if not reading_schema(entry.schema).fast] == []


def test_realistic_events_take_the_fast_path_with_the_schemas_result():
    assert len(EVENTS) >= 15
    for event, document in zip(EVENTS, ENVELOPES, strict=True):
        assert _ENVELOPE._fast(document) is not None, event.type
        assert data_schema(CATALOGUE[event.type].schema)._fast(document["data"]) is not None, event.type
        same_load(_ENVELOPE, document)
        same_load(data_schema(CATALOGUE[event.type].schema), document["data"])
        assert Event.from_json(event.to_json()) == event


def test_every_near_miss_in_every_place_loads_as_the_schema_says():
    for value in NEAR_MISSES:
        for key in [*ENVELOPES[0], "handlingunitpath"]:
            for action in ("set", "drop", "add"):
                same_load(_ENVELOPE, mutated(ENVELOPES[0], key, action, value))
    for document in ENVELOPES:  # one of each type: each has a data schema of its own
        for fast in (
            data_schema(CATALOGUE[document["type"]].schema),
            reading_schema(CATALOGUE[document["type"]].schema),
        ):
            for value in NEAR_MISSES:
                for key in fast.schema.load_fields:
                    for action in ("set", "drop", "add"):
                        same_load(fast, mutated(document["data"], key, action, value))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(ENVELOPES) - 1),
    pick=st.integers(min_value=0),
    action=st.sampled_from(["set", "set", "set", "drop", "add"]),
    value=values,
)
def test_a_mutated_envelope_loads_as_the_schema_says(index, pick, action, value):
    document = ENVELOPES[index]
    keys = sorted(document) + ["handlingunitpath"]
    changed = mutated(document, keys[pick % len(keys)], action, value)
    same_load(_ENVELOPE, changed)
    try:
        expected = _ENVELOPE.schema.load(changed)
    except ValidationError as exc:
        with pytest.raises(InvalidEvent) as refused:
            Event.from_json(json.dumps(changed))
        assert str(refused.value) == f"not a motcua CloudEvent: {exc.messages}"
    else:
        assert str(expected["id"]) == str(uuid.UUID(changed["id"]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(ENVELOPES) - 1),
    pick=st.integers(min_value=0),
    action=st.sampled_from(["set", "set", "set", "drop", "add"]),
    value=values,
)
def test_mutated_event_data_validates_as_the_schema_says(index, pick, action, value):
    document = ENVELOPES[index]
    for fast in (
        data_schema(CATALOGUE[document["type"]].schema),
        reading_schema(CATALOGUE[document["type"]].schema),
    ):
        keys = sorted(fast.schema.load_fields)
        same_load(fast, mutated(document["data"], keys[pick % len(keys)], action, value))


def test_what_it_cannot_reproduce_is_left_to_the_schema():
    class Probe(Schema):
        count = fields.Integer(required=True)

        @validates_schema
        def odd(self, data, **kwargs):
            if data["count"] % 2 == 0:
                raise ValidationError("even", "count")

    class Keeping(Schema):
        class Meta:
            unknown = INCLUDE

        count = fields.Integer(required=True)

    class Nested(Schema):
        items = fields.List(fields.Integer(), required=True)

    for schema in (Probe, Keeping, Nested):
        assert compile_loader(schema()) is None, schema
    assert FastSchema(Probe()).validate({"count": 2}) == {"count": ["even"]}
    assert FastSchema(Keeping()).load({"count": 2, "other": 1}) == {"count": 2, "other": 1}


def test_excluded_unknown_keys_and_load_defaults_take_the_fast_path_with_the_schemas_result():
    class Lenient(Schema):
        class Meta:
            unknown = EXCLUDE

        count = fields.Integer(required=True)
        note = fields.String(load_default="")
        tags = fields.Dict(load_default=dict)
        until = fields.AwareDateTime(format="iso", load_default=None, allow_none=True)

    fast = FastSchema(Lenient())
    assert fast.fast
    assert fast._fast({"count": 2, "other": 1}) == {"count": 2, "note": "", "tags": {}, "until": None}
    for document in (
        {"count": 2, "other": 1},
        {"count": 2, "note": "x", "other": {"a": 1}},
        {"other": 1},
        {"count": "2", "other": 1},
        {"count": 2, "note": 3},
        {"count": 2, "until": "2026-11-20T09:00:00"},
    ):
        same_load(fast, document)
    assert fast.load({"count": 2})["tags"] is not fast.load({"count": 2})["tags"]  # a new dict each time


def test_an_envelope_attribute_a_consumer_does_not_know_is_ignored():
    document = {**ENVELOPES[0], "comexampleextension1": "value"}
    assert _ENVELOPE._fast(document) is not None
    same_load(_ENVELOPE, document)
    assert Event.from_json(json.dumps(document)) == EVENTS[0]


class _Filed(Schema):
    dossier_code = fields.String(required=True)
    pages = fields.Integer(required=True, strict=True)
    note = fields.String(load_default="")
    channel = fields.String()


_FILED = EventType("dossier", "filed_probe", "a probe", _Filed)


def test_a_consumer_reads_data_tolerantly():
    # An older consumer of a newer producer: the new field is left out, the optional ones it lacks default.
    newer = {"dossier_code": "000.00.79.H29-261120-0001", "pages": 3, "courier": "VNPost", "extra": {"a": 1}}
    assert read_data(_FILED, newer) == {"dossier_code": "000.00.79.H29-261120-0001", "pages": 3, "note": ""}
    sent = {"dossier_code": "X", "pages": 1, "note": "n", "channel": "online"}
    assert read_data(_FILED, sent) == sent


@pytest.mark.parametrize(
    "data",
    [
        {"pages": 3, "courier": "VNPost"},  # a required field missing
        {"dossier_code": "X", "pages": "3"},  # a number as a string
        {"dossier_code": "X", "pages": True},
        {"dossier_code": None, "pages": 3},
        {"dossier_code": "X", "pages": 3, "note": 7},  # a known optional field of the wrong type
    ],
)
def test_a_consumer_still_refuses_a_missing_required_field_or_a_wrong_type(data):
    with pytest.raises(ValidationError):
        read_data(_FILED, data)


def test_a_producer_stays_strict():
    # What a consumer would let through (a required field missing is refused anyway) a producer refuses.
    event = EVENTS[0]
    schema = data_schema(CATALOGUE[event.type].schema)
    required = next(name for name, field in schema.schema.load_fields.items() if field.required)
    data = schema.load(event.data)
    with pytest.raises(ValueError, match="does not match its schema"):
        build_event(
            event.source,
            event.name,
            subject=event.subject,
            data={key: value for key, value in data.items() if key != required},
            unit_path=event.unit_path,
            sequence=event.sequence,
        )


def test_a_field_validator_refuses_on_the_fast_path_too():
    def below_ten(n: int) -> None:
        if n >= 10:
            raise ValidationError("too many")

    class Probe(Schema):
        count = fields.Integer(required=True, validate=below_ten)

    fast = FastSchema(Probe())
    assert fast.fast
    assert fast._fast({"count": 3}) == {"count": 3}
    assert fast._fast({"count": 30}) is None
    assert fast.validate({"count": 30}) == {"count": ["too many"]}
