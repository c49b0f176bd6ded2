"""A fast path for loading well-formed documents with a marshmallow schema: the consume path's speed-up.

Every event a consumer takes is loaded twice with marshmallow: its envelope (``shared.events``) and its
``data`` (``shared.verification``), about a third of a consumer's CPU. :func:`compile_loader` reads a
schema's fields once and returns a plain function that loads a document the way ``schema.load`` would,
but only when it is sure: for a value of the exact JSON type the field takes, it converts it as the field
does (``datetime.fromisoformat``, ``uuid.UUID``, …) and runs the field's own validators. Whenever anything
is off, or is anything but the common case (an unknown key a strict schema refuses, a missing required
field, a string where a number goes, a field or schema option it does not know), it answers None and
the caller asks the schema itself, which refuses the document with its usual messages. So the fast path
accepts a subset of what the schema accepts, with the same result, and the schema alone still says why
a document is refused.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields
from marshmallow.utils import missing

Loader = Callable[[Any], dict[str, Any] | None]

_UNSURE = object()


def _string(field: fields.Field) -> Callable[[Any], Any]:
    return lambda value: value if type(value) is str else _UNSURE


def _integer(field: fields.Field) -> Callable[[Any], Any]:
    # bool is not an int here (marshmallow refuses it); an exact int is int(value) itself, strict or not.
    return lambda value: value if type(value) is int else _UNSURE


def _float(field: fields.Field) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is float:
            number = value
        elif type(value) is int and -(2**53) <= value <= 2**53:
            number = float(value)
        else:
            return _UNSURE
        if not field.allow_nan and not math.isfinite(number):
            return _UNSURE
        return number

    return convert


def _boolean(field: fields.Field) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not bool:
            return _UNSURE
        if not field.truthy or value in (field.truthy if value else field.falsy):
            return value
        return _UNSURE

    return convert


def _aware_datetime(field: fields.Field) -> Callable[[Any], Any] | None:
    if field.format not in ("iso", "iso8601") or field.default_timezone is not None:
        return None

    def convert(value: Any) -> Any:
        if type(value) is not str:
            return _UNSURE
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _UNSURE
        if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
            return _UNSURE
        return moment

    return convert


def _uuid(field: fields.Field) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not str:
            return _UNSURE
        try:
            return uuid.UUID(value)
        except ValueError:
            return _UNSURE

    return convert


def _dict(field: fields.Field) -> Callable[[Any], Any] | None:
    if field.key_field is not None or field.value_field is not None:
        return None
    return lambda value: dict(value) if type(value) is dict else _UNSURE


# Exact classes only: a subclass may deserialize differently.
_CONVERTERS: dict[type, Callable[[fields.Field], Callable[[Any], Any] | None]] = {
    fields.String: _string,
    fields.Integer: _integer,
    fields.Float: _float,
    fields.Boolean: _boolean,
    fields.AwareDateTime: _aware_datetime,
    fields.UUID: _uuid,
    fields.Dict: _dict,
}


def register(field_class: type, make: Callable[[fields.Field], Callable[[Any], Any] | None]) -> None:
    """Teach the fast path a field class of our own: ``make(field)`` returns its converter (a value, or
    ``_UNSURE`` by returning :data:`UNSURE`), which must convert exactly as the field's deserialization."""
    _CONVERTERS[field_class] = make


UNSURE = _UNSURE


def _passes(validators: list[Callable[[Any], Any]], value: Any) -> bool:
    # As in marshmallow 4, a validator refuses by raising (what it returns does not count).
    for validator in validators:
        try:
            validator(value)
        except Exception:  # noqa: BLE001 - the schema itself will say what is wrong
            return False
    return True


def compile_loader(schema: Schema) -> Loader | None:
    """A function loading a document as ``schema.load`` does, or None when it is not sure.

    None instead of a function when the schema uses anything this fast path does not reproduce
    exactly (hooks, other field types, field processors, options): then use the schema. Unknown keys are
    refused (``RAISE``) or left out (``EXCLUDE``, a consumer's tolerant reading); a missing optional
    field with a ``load_default`` takes it, as marshmallow gives it (not converted, not validated)."""
    if schema.many or schema.partial or schema.unknown not in (RAISE, EXCLUDE) or any(schema._hooks.values()):
        return None
    tolerant = schema.unknown == EXCLUDE
    specs = []
    for name, field in schema.load_fields.items():
        make = _CONVERTERS.get(type(field))
        convert = make(field) if make else None
        key = field.data_key if field.data_key is not None else name
        target = field.attribute or name
        if convert is None or field.pre_load or field.post_load or "." in target:
            return None
        default = missing if field.required else field.load_default
        specs.append(
            (key, target, field.required, default, field.allow_none, convert, list(field.validators))
        )
    known = frozenset(key for key, *_ in specs)

    def load(document: Any) -> dict[str, Any] | None:
        if type(document) is not dict or not (tolerant or known.issuperset(document)):
            return None
        loaded: dict[str, Any] = {}
        for key, target, required, default, allow_none, convert, validators in specs:
            if key not in document:
                if required:
                    return None
                if default is not missing:
                    loaded[target] = default() if callable(default) else default
                continue
            value = document[key]
            if value is None:
                if not allow_none:
                    return None
                loaded[target] = None
                continue
            value = convert(value)
            if value is _UNSURE or (validators and not _passes(validators, value)):
                return None
            loaded[target] = value
        return loaded

    return load


class FastSchema:
    """A schema instance with its fast path: ``load`` and ``validate`` answer as the schema's own do."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._fast = compile_loader(schema)

    @property
    def fast(self) -> bool:
        """Whether well-formed documents skip marshmallow (a schema it cannot reproduce never does)."""
        return self._fast is not None

    def load(self, document: Any) -> dict[str, Any]:
        """``schema.load(document)``: the loaded document, or marshmallow's ValidationError."""
        loaded = self._fast(document) if self._fast is not None else None
        return self.schema.load(document) if loaded is None else loaded

    def validate(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """``schema.validate(document)``: marshmallow's error messages, empty when it is valid."""
        if self._fast is not None and self._fast(document) is not None:
            return {}
        return self.schema.validate(dict(document))
