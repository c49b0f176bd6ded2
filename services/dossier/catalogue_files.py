"""Reading and checking the procedure catalogue's YAML files (the model: :mod:`.catalogue`).

Everything is validated when the catalogue loads, and every problem is reported with the file,
the line and the key path (``procedures/land.yaml:42: procedures[3].steps[1].allotment: ...``):
the files are edited by hand by people who are not developers, and a wrong duration silently
becomes a wrong appointment date on a citizen's receipt.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from services.dossier.catalogue import (
    LEVELS,
    SAME_DAY,
    SHIPPED_DIRECTORY,
    STEP_CODES,
    WORKING_DAYS,
    WORKING_HOURS,
    Catalogue,
    CatalogueError,
    Fee,
    Problem,
    Procedure,
    RequiredDocument,
    Step,
    split_duration,
)
from shared.vocabulary import CHANNELS, ONLINE_LEVELS

# Who performs a step: the one-stop desk, a level's People's Committee ("district"), one of its
# agencies by short code ("province:STP" = Sở Tư pháp), or a vertically organised agency.
_AGENCY_RE = re.compile(
    r"^(?:receiving_unit|tax|social_insurance|police|(?:commune|district|province)(?::[A-Z][A-Z0-9_]*)?)$"
)

# National TTHC codes are "1.001193" / "2.000635"; the suffixed per-province forms
# ("1.001193.000.00.00.H12") are derived from these and not stored in the catalogue.
_CODE_RE = re.compile(r"^\d\.\d{6}$")


# --------------------------------------------------------------------------------------------
# Schemas: marshmallow validates the shape; messages carry the offending value so that the
# file:line report is enough to fix the file without opening the code.


class _StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key must fail loudly, not be silently ignored


class _StrictBoolean(fields.Field):
    """Only YAML true/false: marshmallow's Boolean would also take 1, "yes", "on"."""

    default_error_messages = {"invalid": "not a boolean (write true or false): {input!r}"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class _StrictDate(fields.Field):
    """A calendar date: YAML's 2025-07-01 or the quoted string; datetimes are refused."""

    default_error_messages = {"invalid": "not a date (write YYYY-MM-DD): {input!r}"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if isinstance(value, datetime):  # a date with a time of day is a data-entry mistake
            raise self.make_error("invalid", input=value)
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.make_error("invalid", input=value)


def _validate_duration(value: str) -> None:
    if split_duration(value) is None:
        raise ValidationError(
            f"not a duration: {value!r} (write 'N working_days', 'N working_hours' or 'same_day')"
        )


def _one_of(choices: Iterable[str]) -> validate.OneOf:
    return validate.OneOf(tuple(choices), error="must be one of {choices}, not {input!r}")


def _text(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, error="must not be empty"), **kwargs)


def _count(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=_at_least(0), **kwargs)


def _at_least(minimum: int) -> validate.Range:
    return validate.Range(min=minimum, error="must be at least {min}, not {input!r}")


def _unique(values: list[Any], key: str) -> None:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValidationError(f"listed more than once: {', '.join(map(str, duplicates))}", key)


class StepSchema(_StrictSchema):
    code = fields.String(required=True, validate=_one_of(STEP_CODES))
    name = _text(required=True)
    agency = fields.String(
        required=True,
        validate=validate.Regexp(
            _AGENCY_RE,
            error="not an agency: {input!r} (receiving_unit, commune, district, province, "
            "province:XYZ, tax, social_insurance or police)",
        ),
    )
    allotment = fields.String(required=True, validate=_validate_duration)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Step:
        return Step(**data)


class FeeSchema(_StrictSchema):
    name = _text(required=True)
    amount_vnd = _count(required=True)
    note = fields.String(load_default="")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Fee:
        return Fee(**data)


class RequiredDocumentSchema(_StrictSchema):
    name = _text(required=True)
    original = _count(load_default=0)
    copies = _count(load_default=1)

    @validates_schema
    def _not_nothing(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("original", 0) + data.get("copies", 1) < 1:
            raise ValidationError("a document needs at least one original or one copy", "copies")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> RequiredDocument:
        return RequiredDocument(**data)


class ProcedureSchema(_StrictSchema):
    code = fields.String(
        required=True,
        # unquoted, YAML reads 1.001193 as a number and drops trailing zeros: say so
        error_messages={"invalid": 'must be a quoted string like "1.001193"'},
        validate=validate.Regexp(_CODE_RE, error="not a national procedure code like '1.001193': {input!r}"),
    )
    version = fields.Integer(strict=True, required=True, validate=_at_least(1))
    effective_from = _StrictDate(required=True)
    repealed_from = _StrictDate(load_default=None, allow_none=True)
    name = _text(required=True)
    name_en = _text(required=True)
    field = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    field_name = _text(required=True)
    levels = fields.List(
        fields.String(validate=_one_of(LEVELS)),
        required=True,
        validate=validate.Length(min=1, error="list at least one level"),
    )
    duration = fields.String(required=True, validate=_validate_duration)
    steps = fields.List(
        fields.Nested(StepSchema),
        required=True,
        validate=validate.Length(min=2, error="a plan needs at least a receive and a return step"),
    )
    # Required even when the procedure is free: an explicit [] or a 0 fee says "checked, free".
    fees = fields.List(fields.Nested(FeeSchema), required=True)
    required_documents = fields.List(fields.Nested(RequiredDocumentSchema), required=True)
    channels = fields.List(
        fields.String(validate=_one_of(CHANNELS)),
        required=True,
        validate=validate.Length(min=1, error="list at least one channel"),
    )
    postal_return = _StrictBoolean(required=True)
    online_level = fields.String(load_default=None, allow_none=True, validate=_one_of(ONLINE_LEVELS))
    legal_basis = fields.List(
        _text(), required=True, validate=validate.Length(min=1, error="cite at least one text")
    )
    note = fields.String(load_default="")

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        _unique(data["levels"], "levels")
        _unique(data["channels"], "channels")
        online = "online" in data["channels"]
        if online and data["online_level"] is None:
            raise ValidationError("an online procedure needs online_level: full or partial", "online_level")
        if not online and data["online_level"] is not None:
            raise ValidationError(
                "online_level is set but 'online' is not among the channels", "online_level"
            )
        repealed = data["repealed_from"]
        if repealed is not None and repealed <= data["effective_from"]:
            raise ValidationError("must be after effective_from", "repealed_from")
        _check_plan(data["duration"], data["steps"])

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Procedure:
        for key in ("levels", "steps", "fees", "required_documents", "channels", "legal_basis"):
            data[key] = tuple(data[key])
        return Procedure(**data)


def _check_plan(duration: str, steps: list[Step]) -> None:
    """The step allotments must account for the whole legal duration, in the same unit.

    Mixed units (hours inside a day-based plan) cannot be checked without a working calendar,
    whose day length is configurable, so they are refused rather than trusted. Inside a
    day-based plan a step may take "same_day": done within the day it starts, no whole day used
    (receipt and hand-over, the return); otherwise a 3-day procedure could not have its four
    steps without fractions.
    """
    if steps[0].code != "receive":
        raise ValidationError({"steps": {0: {"code": ["the first step must be 'receive'"]}}})
    if steps[-1].code != "return":
        last = len(steps) - 1
        raise ValidationError({"steps": {last: {"code": ["the last step must be 'return'"]}}})
    unit, amount = split_duration(duration) or (SAME_DAY, 0)
    allowed = {SAME_DAY: {SAME_DAY}, WORKING_DAYS: {WORKING_DAYS, SAME_DAY}, WORKING_HOURS: {WORKING_HOURS}}[
        unit
    ]
    total = 0
    for index, step in enumerate(steps):
        step_unit, step_amount = split_duration(step.allotment) or (SAME_DAY, 0)
        if step_unit not in allowed:
            raise ValidationError(
                {
                    "steps": {
                        index: {
                            "allotment": [
                                f"{step.allotment!r} does not fit a plan of {duration!r} "
                                f"(allowed units: {', '.join(sorted(allowed))})"
                            ]
                        }
                    }
                }
            )
        total += step_amount
    if unit != SAME_DAY and total != amount:
        raise ValidationError(
            f"step allotments add up to {total} {unit} but the duration is {duration!r}", "steps"
        )


class CatalogueFileSchema(_StrictSchema):
    # Defaults for every procedure of the file; a procedure may override them.
    field = fields.String(load_default=None)
    field_name = fields.String(load_default=None)
    procedures = fields.List(fields.Nested(ProcedureSchema), required=True)


# --------------------------------------------------------------------------------------------
# YAML with line numbers

KeyPath = tuple[str | int, ...]


def _format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# far deeper than any catalogue file; only a recursive alias gets there
_MAX_DEPTH = 32


class _LinedDocument:
    """A parsed YAML file plus the line of every key and list item, by key path."""

    def __init__(self, data: Any, lines: dict[KeyPath, int]) -> None:
        self.data, self.lines = data, lines

    def line_of(self, path: KeyPath) -> int | None:
        # a missing key has no line of its own: point at the nearest enclosing entry
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text.

    PyYAML turns 2016-13-01 into a ValueError with no position; as text, the date reaches
    the schema, which reports it with file, line and key like any other bad value.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(text: str, label: str) -> tuple[_LinedDocument | None, list[Problem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem(label, 1, "", "the file is empty")]
        problems = _duplicate_keys(node, (), label)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        path = _format_path(_path_at_error(text, mark.line if mark else -1)) or "(top level)"
        message = f"YAML syntax error: {error.problem or error}"
        if error.context:
            message += f" ({error.context})"
        return None, [Problem(label, line, path, message)]
    except (yaml.YAMLError, ValueError, TypeError) as error:  # no position available
        return None, [Problem(label, None, "", f"YAML error: {error}")]
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
    # walked after construction: merge keys (<<) are flattened by then, so merged-in entries
    # get lines too (the anchor's), and explicit keys, coming last, win
    _record_lines(node, (), lines)
    return _LinedDocument(data, lines), problems


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], depth: int = 0) -> None:
    if depth > _MAX_DEPTH:  # a recursive alias (&a [*a]) would never end
        return
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                child = (*path, key.value)
                lines[child] = key.start_mark.line + 1
                _record_lines(value, child, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines, depth + 1)


def _duplicate_keys(node: yaml.Node, path: KeyPath, label: str) -> list[Problem]:
    """PyYAML keeps the last of two equal keys without a word; in a catalogue that hides edits."""
    problems: list[Problem] = []
    if len(path) > _MAX_DEPTH:
        return problems
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in first_line:
                problems.append(
                    Problem(
                        label,
                        line,
                        _format_path((*path, key.value)),
                        f"duplicate key (first at line {first_line[key.value]})",
                    )
                )
            else:
                first_line[key.value] = line
            problems += _duplicate_keys(value, (*path, key.value), label)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*path, index), label)
    return problems


def _path_at_error(text: str, error_line: int) -> KeyPath:
    """Where in the key structure the parser was when it hit a syntax error.

    Replays the event stream up to the error, keeping a stack of open mappings and sequences;
    the composed tree is not available then, but the events before the error are.
    """
    # each frame: [kind, key or index, expecting_a_key, line of the key]; between two entries
    # a mapping is named without its previous key, unless the error is on that key's line
    # ("name: a: b" fails after the value "a" was read)
    stack: list[list[Any]] = []

    def value_starts() -> None:
        if stack and stack[-1][0] == "seq":
            stack[-1][1] += 1

    def value_ends() -> None:
        if stack and stack[-1][0] == "map":
            stack[-1][2] = True

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            top = stack[-1] if stack else None
            is_key = top is not None and top[0] == "map" and top[2]
            if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                if is_key:
                    top[1:] = [getattr(event, "value", "*"), False, event.start_mark.line]
                else:
                    value_starts()
                    value_ends()
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if is_key:  # a complex key; the path cannot name it, keep the structure sane
                    top[2] = False
                else:
                    value_starts()
                kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
                stack.append([kind, None, True, -1] if kind == "map" else [kind, -1, False, -1])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                stack.pop()
                value_ends()
    except yaml.YAMLError:
        pass
    path: list[str | int] = []
    for kind, position, expecting_key, key_line in stack:
        if kind == "seq":
            named = position >= 0
        else:
            named = position is not None and (not expecting_key or key_line == error_line)
        if named:
            path.append(position)
    return tuple(path)


# --------------------------------------------------------------------------------------------
# Loading


def _flatten(messages: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """marshmallow's nested {key: {index: {key: [msg]}}} into (path, message) pairs."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            child = path if key == "_schema" else (*path, key)
            yield from _flatten(value, child)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _flatten(message, path)
    else:
        yield path, str(messages)


def _schema_at(path: KeyPath) -> Schema | None:
    """The schema that validates the mapping at ``path``, to suggest the key that was meant."""
    schema: Schema | None = CatalogueFileSchema()
    for part in path:
        if isinstance(part, int) or schema is None:
            continue
        found = schema.fields.get(part)
        if isinstance(found, fields.List):
            found = found.inner
        schema = found.schema if isinstance(found, fields.Nested) else None
    return schema


# marshmallow's stock messages, reworded for people editing YAML; the value is appended
_TYPE_MESSAGES = {
    "Missing data for required field.": "required key is missing",
    "Not a valid string.": "not a text value",
    "Not a valid integer.": "not a whole number",
    "Not a valid list.": "not a list",
    "Invalid input type.": "not a mapping",
    "Field may not be null.": "must not be empty (null)",
}


def _value_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _explain(path: KeyPath, message: str, data: Any) -> str:
    if message in _TYPE_MESSAGES:
        text = _TYPE_MESSAGES[message]
        if message == "Missing data for required field.":
            return text
        return f"{text}: {_value_at(data, path)!r}"
    if message != "Unknown field.":
        return message
    schema = _schema_at(path[:-1])
    allowed = sorted(schema.fields) if schema is not None else []
    close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown key ({hint})"


@dataclass(frozen=True)
class _Entry:
    """Where a validated procedure came from, to report problems found across entries."""

    label: str
    index: int
    document: _LinedDocument

    def problem(self, key: str, message: str) -> Problem:
        path = ("procedures", self.index, key)
        return Problem(self.label, self.document.line_of(path), _format_path(path), message)


def _load_file(path: Path, label: str) -> tuple[list[tuple[Procedure, _Entry]], list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], [Problem(label, None, "", f"cannot read: {error}")]
    document, problems = _read_yaml(text, label)
    if document is None:
        return [], problems
    data = document.data
    if not isinstance(data, dict):
        return [], [*problems, Problem(label, 1, "", "expected a mapping with 'procedures'")]
    # file-level field/field_name are defaults: copy them into each entry before validation so
    # a missing field is reported on the entry that lacks it
    entries = data.get("procedures")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict):
                for key in ("field", "field_name"):
                    if key not in entry and data.get(key) is not None:
                        entry[key] = data[key]
    try:
        loaded = CatalogueFileSchema().load(data)
    except ValidationError as error:
        for key_path, message in _flatten(error.messages, ()):
            problems.append(
                Problem(
                    label,
                    document.line_of(key_path),
                    _format_path(key_path),
                    _explain(key_path, message, data),
                )
            )
        return [], problems
    located = []
    for index, procedure in enumerate(loaded["procedures"]):
        entry = _Entry(label, index, document)
        source = f"{label}:{document.line_of(('procedures', index))}"
        located.append((replace(procedure, source=source), entry))
    return located, problems


def _cross_check(located: list[tuple[Procedure, _Entry]]) -> list[Problem]:
    """Rules across entries and files: unique (code, version), dates rising with versions."""
    problems: list[Problem] = []
    seen: dict[tuple[str, int], Procedure] = {}
    by_code: dict[str, list[tuple[Procedure, _Entry]]] = {}
    field_names: dict[str, Procedure] = {}
    for procedure, entry in located:
        key = (procedure.code, procedure.version)
        if key in seen:
            problems.append(
                entry.problem(
                    "version",
                    f"duplicate: {procedure.code} version "
                    f"{procedure.version} is already defined at "
                    f"{seen[key].source}",
                )
            )
            continue
        seen[key] = procedure
        by_code.setdefault(procedure.code, []).append((procedure, entry))
        first = field_names.setdefault(procedure.field, procedure)
        if first.field_name != procedure.field_name:
            # fields() maps a code to one name; two spellings would make it depend on file order
            problems.append(
                entry.problem(
                    "field_name",
                    f"{procedure.field_name!r} differs from "
                    f"{first.field_name!r} given for field "
                    f"{procedure.field!r} at {first.source}",
                )
            )
    for versions in by_code.values():
        versions.sort(key=lambda item: item[0].version)
        for (earlier, _), (later, entry) in zip(versions, versions[1:], strict=False):
            # otherwise "the version in force on a date" would be ambiguous
            if later.effective_from <= earlier.effective_from:
                problems.append(
                    entry.problem(
                        "effective_from",
                        f"{later.effective_from} is not after {earlier.effective_from}, when version "
                        f"{earlier.version} took effect ({earlier.source})",
                    )
                )
    return problems


def load_procedures(directory: str | Path | None = None) -> list[Procedure]:
    """Every version of every procedure in the ``*.yaml`` files of ``directory``, validated."""
    folder = Path(directory) if directory is not None else SHIPPED_DIRECTORY
    if not folder.is_dir():
        raise CatalogueError([Problem(str(folder), None, "", "not a directory")])
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise CatalogueError([Problem(str(folder), None, "", "no *.yaml procedure files")])
    problems: list[Problem] = []
    located: list[tuple[Procedure, _Entry]] = []
    for path in files:
        # shown as "procedures/land.yaml": enough to find it, short enough to read
        found, file_problems = _load_file(path, f"{folder.name}/{path.name}")
        located += found
        problems += file_problems
    problems += _cross_check(located)
    if problems:
        # report everything at once, in file order: fixing one error per run is slow
        raise CatalogueError(sorted(problems, key=lambda p: (p.file, p.line or 0, p.path)))
    return [procedure for procedure, _ in located]


def load_catalogue(directory: str | Path | None = None) -> Catalogue:
    """The catalogue of ``directory`` (default: the shipped ``procedures/`` folder), validated."""
    return Catalogue(load_procedures(directory))
