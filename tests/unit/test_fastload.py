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
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared.events import _ENVELOPE, CATALOGUE, Event, InvalidEvent, data_schema
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
        fast = data_schema(CATALOGUE[document["type"]].schema)
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
    fast = data_schema(CATALOGUE[document["type"]].schema)
    keys = sorted(fast.schema.load_fields)
    same_load(fast, mutated(document["data"], keys[pick % len(keys)], action, value))


def test_what_it_cannot_reproduce_is_left_to_the_schema():
    class Probe(Schema):
        count = fields.Integer(required=True)

        @validates_schema
        def odd(self, data, **kwargs):
            if data["count"] % 2 == 0:
                raise ValidationError("even", "count")

    class Lenient(Schema):
        class Meta:
            unknown = EXCLUDE

        count = fields.Integer(required=True)

    class Defaulted(Schema):
        count = fields.Integer(load_default=0)

    class Nested(Schema):
        items = fields.List(fields.Integer(), required=True)

    for schema in (Probe, Lenient, Defaulted, Nested):
        assert compile_loader(schema()) is None, schema
    assert FastSchema(Probe()).validate({"count": 2}) == {"count": ["even"]}
    assert FastSchema(Lenient()).load({"count": 2, "other": 1}) == {"count": 2}
    assert FastSchema(Defaulted()).load({}) == {"count": 0}


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
