"""Administrative units as data: provinces, districts, communes and agencies.

The hierarchy is deliberately *data, not code*: Vietnam went from three levels (province → district
→ commune) to two (province → commune) on 1 July 2025, and a deployment may still run a historical
three-level map or hang agencies (sở, phòng, tax departments) under any unit.  Everything that needs
the hierarchy (routing keys, jurisdiction checks, metric aggregation) asks a `UnitRegistry` instead
of assuming a depth.

The registry is immutable once built; every index is computed in ``__init__`` because `is_within`,
`path` and `routing_path` run once per event.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DATA_DIR",
    "EXAMPLE_3LEVEL_FILE",
    "LEVELS",
    "Unit",
    "UnitRegistry",
    "UnknownUnit",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
EXAMPLE_3LEVEL_FILE = DATA_DIR / "units-example-3level.yaml"

LEVELS: tuple[str, ...] = ("province", "district", "commune", "agency")

# Which parent levels each level may hang under.  Provinces are the roots because a routing key's
# unit path always starts at a province (docs/contracts.md §1); agencies may sit anywhere, including under
# another agency (a phòng inside a sở).
_ALLOWED_PARENT_LEVELS: dict[str, frozenset[str]] = {
    "province": frozenset(),
    "district": frozenset({"province"}),
    "commune": frozenset({"province", "district"}),
    "agency": frozenset(LEVELS),
}

# Codes become words of AMQP topic routing keys, where "." separates words and "*"/"#" are
# wildcards, so only this conservative charset is allowed.
_CODE_RE = re.compile(r"[A-Za-z0-9_-]+")

_RECORD_FIELDS = frozenset({"code", "name", "level", "parent", "identifier"})
_FILE_KEYS = frozenset({"units", "include_default"})


class UnknownUnit(KeyError):
    """Raised when a unit code is not in the registry."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        # KeyError's default str() is the repr of the key only; say what was missing.
        return f"unknown administrative unit {self.code!r}"


@dataclass(frozen=True)
class Unit:
    """One administrative unit or agency.

    `path` is filled in by `UnitRegistry`; a `Unit` built by hand may leave it empty and be passed
    to the registry as a record.
    """

    code: str
    name: str
    level: str
    parent: str | None = None
    path: tuple[str, ...] = ()
    # The agency identifier code used inside dossier codes (e.g. "000.00.21.H01").  Most units
    # have none of their own, so it falls back to `code`.
    identifier: str = ""

    def __post_init__(self) -> None:
        if not self.identifier:
            object.__setattr__(self, "identifier", self.code)

    @property
    def routing_path(self) -> str:
        """Dot-joined path, the unit-path part of a routing key: ``"79.26740"``."""
        return ".".join(self.path)

    @property
    def depth(self) -> int:
        return len(self.path)


class UnitRegistry:
    """An immutable, validated tree (forest of provinces) of `Unit`s with precomputed indexes."""

    def __init__(
        self,
        units: Iterable[Unit | Mapping[str, Any]],
        *,
        source: str | None = None,
        base: UnitRegistry | None = None,
    ) -> None:
        """Validate `units` and build the indexes.

        `source` (e.g. a file name) prefixes every error message so that a broken deployment file
        can be fixed without guessing.  `base` is an already validated registry that `units`
        extends (used for ``include_default: true``); its units are trusted and not re-checked.
        """
        self._source = source
        records: dict[str, Unit] = dict(base._units) if base is not None else {}
        entry_of: dict[str, int] = {}  # code -> index in `units`, for error messages

        new_codes: list[str] = []
        for index, raw in enumerate(units):
            unit = self._coerce(raw, index)
            if unit.code in records:
                where = f"units[{entry_of[unit.code]}]" if unit.code in entry_of else "the default map"
                raise self._error(index, unit.code, f"duplicate code (already defined by {where})")
            records[unit.code] = unit
            entry_of[unit.code] = index
            new_codes.append(unit.code)

        # Parent existence and level rules; done after all records are read so order is free.
        for code in new_codes:
            unit = records[code]
            allowed = _ALLOWED_PARENT_LEVELS[unit.level]
            if unit.parent is None:
                if allowed:
                    raise self._error(entry_of[code], code, f"field 'parent' is required for a {unit.level}")
                continue
            if not allowed:
                raise self._error(entry_of[code], code, f"a {unit.level} is a root and cannot have a parent")
            parent = records.get(unit.parent)
            if parent is None:
                raise self._error(entry_of[code], code, f"field 'parent': unknown unit {unit.parent!r}")
            if parent.level not in allowed:
                raise self._error(
                    entry_of[code],
                    code,
                    f"a {unit.level} cannot be under {parent.level} {parent.code!r}",
                )

        # The identifier goes into dossier codes, whose daily counter it keys: two units sharing one
        # would hand out the same codes. The base's units are trusted, so only the new ones are checked.
        owner: dict[str, str] = {}
        new = set(new_codes)
        for code, unit in records.items():
            if code not in new:
                owner.setdefault(unit.identifier, code)
        for code in new_codes:
            unit = records[code]
            other = owner.setdefault(unit.identifier, code)
            if other != code:
                raise self._error(
                    entry_of[code],
                    code,
                    f"identifier {unit.identifier!r} is already the identifier of unit {other!r} "
                    f"({records[other].name}); units {other!r} and {code!r} would hand out the same dossier "
                    "codes, so each unit needs its own identifier",
                )

        paths = self._compute_paths(records, new_codes, entry_of)

        # Final Unit objects carry their path so callers holding a Unit need no registry lookup.
        self._units: dict[str, Unit] = {}
        for code, unit in records.items():
            path = paths.get(code, unit.path)
            self._units[code] = (
                unit
                if unit.path == path
                else Unit(unit.code, unit.name, unit.level, unit.parent, path, unit.identifier)
            )

        self._routing: dict[str, str] = {c: ".".join(u.path) for c, u in self._units.items()}

        children: dict[str, list[Unit]] = {c: [] for c in self._units}
        desc: dict[str, list[str]] = {c: [] for c in self._units}
        by_level: dict[str, list[Unit]] = {lvl: [] for lvl in LEVELS}
        for unit in self._units.values():
            if unit.parent is not None:
                children[unit.parent].append(unit)
            # Every unit is a descendant of each code on its path (inclusive): O(sum of depths).
            for ancestor in unit.path:
                desc[ancestor].append(unit.code)
            by_level[unit.level].append(unit)
        self._children = {c: tuple(v) for c, v in children.items()}
        self._descendants = {c: frozenset(v) for c, v in desc.items()}
        self._by_level = {lvl: tuple(v) for lvl, v in by_level.items()}

    # -- construction helpers ---------------------------------------------------------------

    def _error(self, index: int | None, code: object, message: str) -> ValueError:
        parts = []
        if self._source:
            parts.append(self._source)
        if index is not None:
            parts.append(f"units[{index}]")
        if code is not None:
            parts.append(f"code {code!r}")
        return ValueError(f"{': '.join(parts)}: {message}" if parts else message)

    def _coerce(self, raw: Unit | Mapping[str, Any], index: int) -> Unit:
        if isinstance(raw, Unit):
            fields: Mapping[str, Any] = {
                "code": raw.code,
                "name": raw.name,
                "level": raw.level,
                "parent": raw.parent,
                "identifier": raw.identifier,
            }
        elif isinstance(raw, Mapping):
            fields = raw
        else:
            raise self._error(index, None, f"expected a mapping, got {type(raw).__name__}")

        code = fields.get("code")
        unknown = sorted(str(k) for k in fields if k not in _RECORD_FIELDS)
        if unknown:
            # Usually a typo ("parnet"); silently ignoring it would drop the parent.
            raise self._error(index, code, f"unknown field(s) {', '.join(map(repr, unknown))}")

        for key in ("code", "name", "level"):
            if fields.get(key) is None or fields.get(key) == "":
                raise self._error(index, code, f"missing required field {key!r}")
        # Codes must be strings: YAML turns an unquoted 01 into the integer 1 and the leading
        # zero, which is part of the GSO code, would be lost silently.
        for key in ("code", "parent", "identifier"):
            value = fields.get(key)
            if value is not None and not isinstance(value, str):
                raise self._error(
                    index, code, f"field {key!r} must be a string (quote it in YAML), got {value!r}"
                )
        if not isinstance(fields["name"], str):
            raise self._error(index, code, f"field 'name' must be a string, got {fields['name']!r}")
        if not _CODE_RE.fullmatch(code):
            raise self._error(index, code, "field 'code' may only contain letters, digits, '_' and '-'")
        level = fields["level"]
        if level not in _ALLOWED_PARENT_LEVELS:
            raise self._error(index, code, f"field 'level' must be one of {', '.join(LEVELS)}, got {level!r}")
        return Unit(
            code=code,
            name=fields["name"],
            level=level,
            parent=fields.get("parent"),
            identifier=fields.get("identifier") or "",
        )

    def _compute_paths(
        self, records: dict[str, Unit], new_codes: list[str], entry_of: dict[str, int]
    ) -> dict[str, tuple[str, ...]]:
        # Units from `base` already carry a valid path; only new ones need computing.
        paths: dict[str, tuple[str, ...]] = {c: u.path for c, u in records.items() if c not in entry_of}
        for code in new_codes:
            chain: list[str] = []
            on_chain: set[str] = set()
            current: str | None = code
            while current is not None and current not in paths:
                if current in on_chain:
                    cycle = chain[chain.index(current) :] + [current]
                    raise self._error(entry_of[current], current, f"cycle in parents: {' -> '.join(cycle)}")
                chain.append(current)
                on_chain.add(current)
                current = records[current].parent
            prefix = paths[current] if current is not None else ()
            # Unwind: the chain runs from `code` upwards, so assign from the top down.
            for c in reversed(chain):
                prefix = (*prefix, c)
                paths[c] = prefix
        return paths

    # -- alternative constructors -----------------------------------------------------------

    @classmethod
    def default(cls) -> UnitRegistry:
        """Today's two-level map (34 provinces, 3,321 communes) from `vietnam-provinces`.

        Cached: the registry is immutable and every service loads it at start.
        """
        return _default_registry()

    @classmethod
    def from_file(cls, path: str | Path) -> UnitRegistry:
        """Load ``{units: [{code, name, level, parent, identifier?}, ...], include_default?}``.

        ``.json`` files are parsed as JSON, anything else as YAML.  With ``include_default: true``
        the file's units extend the default map (typically: agencies under provinces/communes).
        """
        path = Path(path)
        label = str(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{label}: cannot parse: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ValueError(f"{label}: top level must be a mapping with key 'units'")
        unknown = sorted(str(k) for k in data if k not in _FILE_KEYS)
        if unknown:
            raise ValueError(f"{label}: unknown top-level key(s) {', '.join(map(repr, unknown))}")
        include_default = data.get("include_default", False)
        if not isinstance(include_default, bool):
            raise ValueError(f"{label}: key 'include_default' must be true or false")
        units = data.get("units")
        if units is None and not include_default:
            raise ValueError(f"{label}: missing key 'units'")
        if units is None:
            units = []
        if not isinstance(units, list):
            raise ValueError(f"{label}: key 'units' must be a list")
        base = _default_registry() if include_default else None
        return cls(units, source=label, base=base)

    @classmethod
    def from_settings(cls, units_file: str | None) -> UnitRegistry:
        """The registry a service should use: the default map, or the configured file.

        Cached per path because it runs at every service start (and worker), and the result is
        immutable; call `UnitRegistry.clear_cache()` after editing a file in a long-lived process.
        """
        if not units_file:
            return _default_registry()
        return _registry_from_file(str(Path(units_file).expanduser().resolve()))

    @staticmethod
    def clear_cache() -> None:
        _default_registry.cache_clear()
        _registry_from_file.cache_clear()

    # -- queries ----------------------------------------------------------------------------

    def get(self, code: str) -> Unit:
        try:
            return self._units[code]
        except (KeyError, TypeError):
            raise UnknownUnit(code) from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._units

    def __len__(self) -> int:
        return len(self._units)

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def __repr__(self) -> str:
        source = f" from {self._source}" if self._source else ""
        return f"<UnitRegistry {len(self)} units{source}>"

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._units)

    def path(self, code: str) -> tuple[str, ...]:
        return self.get(code).path

    def routing_path(self, code: str) -> str:
        try:
            return self._routing[code]
        except (KeyError, TypeError):
            raise UnknownUnit(code) from None

    def ancestors(self, code: str) -> tuple[str, ...]:
        """Parent, grandparent, … up to the province: nearest first, the unit itself excluded."""
        return self.get(code).path[-2::-1]

    def is_within(self, code: str, ancestor: str) -> bool:
        """True if `code` is `ancestor` or lies under it.

        O(1): an ancestor at depth d must sit at index d-1 of the unit's path.
        """
        path = self.get(code).path
        depth = len(self.get(ancestor).path)
        return depth <= len(path) and path[depth - 1] == ancestor

    def covers(self, jurisdiction: Iterable[str], code: str) -> bool:
        """True if any unit of `jurisdiction` contains `code` (a unit covers its descendants).

        A unit that is not in the map (a token naming a removed unit, or one of another deployment)
        covers nothing, and nothing covers a code that is not in the map: never an error.
        """
        if code not in self:
            return False
        return any(unit in self and self.is_within(code, unit) for unit in jurisdiction)

    def children(self, code: str) -> tuple[Unit, ...]:
        try:
            return self._children[code]
        except (KeyError, TypeError):
            raise UnknownUnit(code) from None

    def descendants(self, code: str) -> frozenset[str]:
        """All codes under `code`, `code` itself included (precomputed)."""
        try:
            return self._descendants[code]
        except (KeyError, TypeError):
            raise UnknownUnit(code) from None

    def units_at_level(self, level: str) -> tuple[Unit, ...]:
        try:
            return self._by_level[level]
        except KeyError:
            raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}") from None

    def at_depth(self, code: str, depth: int) -> str:
        """The unit on `code`'s path at `depth` (1 = province), or `code` if it is shallower.

        Lets metrics be aggregated at a configurable depth whatever the map's shape.
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        path = self.get(code).path
        return path[min(depth, len(path)) - 1]


def _clean_name(name: str) -> str:
    # The package data has stray double spaces ("Phường  Rạch Dừa"); names are shown to citizens.
    return " ".join(name.split())


@functools.cache
def _default_registry() -> UnitRegistry:
    # Imported lazily: only needed when the default map is actually used.
    from vietnam_provinces import Province, Ward

    records: list[Unit] = []
    for province in Province.iter_all():
        records.append(
            Unit(
                code=f"{int(province.code):02d}",
                name=_clean_name(province.name),
                level="province",
            )
        )
    for ward in Ward.iter_all():
        records.append(
            Unit(
                code=f"{int(ward.code):05d}",
                name=_clean_name(ward.name),
                level="commune",
                parent=f"{int(ward.province_code):02d}",
            )
        )
    return UnitRegistry(records, source="vietnam-provinces default map")


@functools.cache
def _registry_from_file(path: str) -> UnitRegistry:
    return UnitRegistry.from_file(path)
