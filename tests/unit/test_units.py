"""Tests for shared.units: the administrative-unit hierarchy as data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import units as units_module
from shared.units import EXAMPLE_3LEVEL_FILE, Unit, UnitRegistry, UnknownUnit

HCMC = "79"
HCMC_COMMUNE = "26740"  # Phường Sài Gòn (the 2025 map; 26734 does not exist there)


@pytest.fixture(scope="module")
def default() -> UnitRegistry:
    return UnitRegistry.default()


@pytest.fixture(scope="module")
def example() -> UnitRegistry:
    return UnitRegistry.from_file(EXAMPLE_3LEVEL_FILE)


def write(tmp_path: Path, text: str, name: str = "units.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- default (two-level) map --------------------------------------------------------------------


def test_default_counts(default: UnitRegistry) -> None:
    assert len(default.units_at_level("province")) == 34
    assert len(default.units_at_level("commune")) == 3321
    assert default.units_at_level("district") == ()
    assert len(default) == 34 + 3321


def test_default_code_format(default: UnitRegistry) -> None:
    for unit in default.units_at_level("province"):
        assert len(unit.code) == 2 and unit.code.isdigit(), unit
        assert unit.parent is None and unit.path == (unit.code,)
    for unit in default.units_at_level("commune"):
        assert len(unit.code) == 5 and unit.code.isdigit(), unit
        assert unit.path == (unit.parent, unit.code)
    assert default.get("01").name == "Thành phố Hà Nội"
    assert default.get("00070").name == "Phường Hoàn Kiếm"
    assert default.get("00070").path == ("01", "00070")


def test_default_names_are_clean(default: UnitRegistry) -> None:
    assert all("  " not in u.name and u.name == u.name.strip() for u in default)


def test_hcmc_commune(default: UnitRegistry) -> None:
    commune = default.get(HCMC_COMMUNE)
    assert commune.name == "Phường Sài Gòn"
    assert commune.level == "commune"
    assert commune.parent == HCMC
    assert default.path(HCMC_COMMUNE) == ("79", "26740")
    assert default.routing_path(HCMC_COMMUNE) == "79.26740"
    assert commune.routing_path == "79.26740"
    assert default.routing_path(HCMC) == "79"
    assert default.is_within(HCMC_COMMUNE, HCMC)
    assert default.is_within(HCMC_COMMUNE, HCMC_COMMUNE)
    assert not default.is_within(HCMC_COMMUNE, "01")
    assert not default.is_within(HCMC, HCMC_COMMUNE)
    assert HCMC_COMMUNE in default.descendants(HCMC)
    assert default.get(HCMC) in [default.get(a) for a in default.ancestors(HCMC_COMMUNE)]
    assert default.get(HCMC_COMMUNE) in default.children(HCMC)


def test_default_is_cached() -> None:
    assert UnitRegistry.default() is UnitRegistry.default()
    rebuilt = units_module._default_registry.__wrapped__()  # uncached build
    assert len(rebuilt) == len(UnitRegistry.default())


def test_descendants_partition_communes(default: UnitRegistry) -> None:
    total = sum(len(default.descendants(p.code)) - 1 for p in default.units_at_level("province"))
    assert total == 3321


def test_unknown_unit(default: UnitRegistry) -> None:
    with pytest.raises(UnknownUnit) as info:
        default.get("99999")
    assert isinstance(info.value, KeyError)
    assert "99999" in str(info.value)
    assert "99999" not in default
    assert 79 not in default  # codes are strings; an int is simply not a code
    for call in (
        lambda: default.path("nope"),
        lambda: default.routing_path("nope"),
        lambda: default.is_within("nope", "79"),
        lambda: default.is_within("26740", "nope"),
        lambda: default.children("nope"),
        lambda: default.descendants("nope"),
        lambda: default.at_depth("nope", 1),
    ):
        with pytest.raises(UnknownUnit, match="nope"):
            call()


# -- three-level example ------------------------------------------------------------------------


def test_example_paths(example: UnitRegistry) -> None:
    assert example.path("30280") == ("89", "883", "30280")
    assert example.routing_path("30280") == "89.883.30280"
    assert example.routing_path("30316") == "89.884.30316"
    assert example.routing_path("883") == "89.883"
    assert example.ancestors("30280") == ("883", "89")
    assert example.ancestors("89") == ()
    assert len(example.units_at_level("district")) == 2
    assert len(example.units_at_level("commune")) == 6


def test_example_is_within_across_levels(example: UnitRegistry) -> None:
    assert example.is_within("30280", "883")
    assert example.is_within("30280", "89")
    assert example.is_within("883", "89")
    assert not example.is_within("30280", "884")
    assert not example.is_within("30280", "30283")
    assert not example.is_within("883", "30280")
    assert not example.is_within("89", "883")


def test_example_district_jurisdiction(example: UnitRegistry) -> None:
    for commune in ("30280", "30283", "30285"):
        assert example.covers(["883"], commune)
        assert not example.covers(["884"], commune)
    for commune in ("30316", "30319", "30322"):
        assert example.covers(["884"], commune)
        assert not example.covers(["883"], commune)
    assert example.covers(["884", "883"], "30280")
    assert example.covers(["89"], "30316")
    assert not example.covers([], "30316")
    assert example.descendants("883") == {"883", "30280", "30283", "30285", "883-TNMT"}
    assert {u.code for u in example.children("884")} == {"30316", "30319", "30322"}


def test_example_agencies(example: UnitRegistry) -> None:
    justice = example.get("89-STP")
    assert justice.level == "agency"
    assert justice.path == ("89", "89-STP")
    assert justice.routing_path == "89.89-STP"
    assert justice.identifier == "000.00.21.H01"
    assert example.is_within("89-STP", "89")
    assert not example.is_within("89-STP", "883")
    assert example.is_within("89-CT", "89")
    assert example.path("883-TNMT") == ("89", "883", "883-TNMT")
    assert example.is_within("883-TNMT", "883")
    assert not example.is_within("883-TNMT", "884")
    assert {u.code for u in example.units_at_level("agency")} == {"89-STP", "89-CT", "883-TNMT"}


def test_identifier_defaults_to_code(example: UnitRegistry) -> None:
    assert example.get("30283").identifier == "30283"
    assert example.get("30280").identifier == "000.01.31.H01"
    assert Unit("x", "X", "province").identifier == "x"


def test_at_depth(example: UnitRegistry, default: UnitRegistry) -> None:
    assert example.at_depth("30280", 1) == "89"
    assert example.at_depth("30280", 2) == "883"
    assert example.at_depth("30280", 3) == "30280"
    assert example.at_depth("30280", 7) == "30280"
    assert example.at_depth("89", 2) == "89"
    assert example.at_depth("89-STP", 2) == "89-STP"
    assert default.at_depth(HCMC_COMMUNE, 1) == HCMC
    assert default.at_depth(HCMC_COMMUNE, 2) == HCMC_COMMUNE
    with pytest.raises(ValueError, match="depth"):
        example.at_depth("30280", 0)


def test_unknown_level(example: UnitRegistry) -> None:
    with pytest.raises(ValueError, match="ward"):
        example.units_at_level("ward")


# -- loading from files -------------------------------------------------------------------------

GOOD_HEAD = """\
units:
  - {code: "89", name: Tỉnh An Giang, level: province, parent: null}
  - {code: "883", name: Thành phố Long Xuyên, level: district, parent: "89"}
"""

MALFORMED = {
    "unknown parent": (
        GOOD_HEAD + '  - {code: "30280", name: Mỹ Bình, level: commune, parent: "999"}\n',
        ["30280", "999", "parent"],
    ),
    "duplicate code": (
        GOOD_HEAD + '  - {code: "883", name: Again, level: district, parent: "89"}\n',
        ["883", "duplicate", "units[2]"],
    ),
    "dotted code": (
        GOOD_HEAD + '  - {code: "883.1", name: Dotted, level: commune, parent: "883"}\n',
        ["883.1", "code"],
    ),
    "missing name": (
        GOOD_HEAD + '  - {code: "30283", level: commune, parent: "883"}\n',
        ["30283", "name"],
    ),
    "cycle": (
        GOOD_HEAD
        + '  - {code: "A1", name: Phòng A, level: agency, parent: "A2"}\n'
        + '  - {code: "A2", name: Phòng B, level: agency, parent: "A1"}\n',
        ["cycle", "A1", "A2"],
    ),
    "self parent": (
        GOOD_HEAD + '  - {code: "A1", name: Phòng A, level: agency, parent: "A1"}\n',
        ["cycle", "A1"],
    ),
    "unquoted integer code": (
        GOOD_HEAD + "  - {code: 30280, name: Mỹ Bình, level: commune, parent: '883'}\n",
        ["30280", "string"],
    ),
    "unknown field": (
        GOOD_HEAD + '  - {code: "30280", name: Mỹ Bình, level: commune, parnet: "883"}\n',
        ["30280", "parnet"],
    ),
    "bad level": (
        GOOD_HEAD + '  - {code: "30280", name: Mỹ Bình, level: ward, parent: "883"}\n',
        ["30280", "level", "ward"],
    ),
    "province with parent": (
        GOOD_HEAD + '  - {code: "90", name: Tỉnh X, level: province, parent: "89"}\n',
        ["'90'", "parent"],
    ),
    "commune without parent": (
        GOOD_HEAD + '  - {code: "30280", name: Mỹ Bình, level: commune}\n',
        ["30280", "parent"],
    ),
    "district under district": (
        GOOD_HEAD + '  - {code: "884", name: Châu Đốc, level: district, parent: "883"}\n',
        ["884", "883", "district"],
    ),
    "no units key": ("unit: []\n", ["unit"]),
    "units not a list": ("units: {code: '89'}\n", ["units"]),
    "not yaml": ("units: [\n", ["parse"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file(tmp_path: Path, case: str) -> None:
    text, needles = MALFORMED[case]
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        UnitRegistry.from_file(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_good_head_is_valid(tmp_path: Path) -> None:
    # Guards the malformed cases: each one fails because of its last entry, not the head.
    registry = UnitRegistry.from_file(write(tmp_path, GOOD_HEAD))
    assert registry.routing_path("883") == "89.883"


def test_order_of_entries_is_free(tmp_path: Path) -> None:
    text = """\
units:
  - {code: "30280", name: Mỹ Bình, level: commune, parent: "883"}
  - {code: "883", name: Long Xuyên, level: district, parent: "89"}
  - {code: "89", name: An Giang, level: province}
"""
    registry = UnitRegistry.from_file(write(tmp_path, text))
    assert registry.routing_path("30280") == "89.883.30280"


def test_json_file(tmp_path: Path) -> None:
    data = {
        "units": [
            {"code": "01", "name": "Thành phố Hà Nội", "level": "province", "parent": None},
            {"code": "00070", "name": "Phường Hoàn Kiếm", "level": "commune", "parent": "01"},
        ]
    }
    path = write(tmp_path, json.dumps(data, ensure_ascii=False), "units.json")
    registry = UnitRegistry.from_file(path)
    assert registry.routing_path("00070") == "01.00070"

    data["units"].append({"code": "00073", "name": "X", "level": "commune", "parent": "02"})
    write(tmp_path, json.dumps(data), "units.json")
    with pytest.raises(ValueError, match=r"units\.json.*00073.*'02'"):
        UnitRegistry.from_file(path)


def test_include_default_adds_agencies(tmp_path: Path, default: UnitRegistry) -> None:
    text = """\
include_default: true
units:
  - {code: "79-STP", name: Sở Tư pháp TP.HCM, level: agency, parent: "79",
     identifier: "000.00.21.H29"}
  - {code: "26740-TN", name: Bộ phận một cửa phường Sài Gòn, level: agency, parent: "26740"}
"""
    registry = UnitRegistry.from_file(write(tmp_path, text))
    assert len(registry) == len(default) + 2
    assert registry.routing_path("79-STP") == "79.79-STP"
    assert registry.routing_path("26740-TN") == "79.26740.26740-TN"
    assert registry.is_within("26740-TN", "79")
    assert registry.descendants("26740") == {"26740", "26740-TN"}
    assert registry.get("79-STP").identifier == "000.00.21.H29"
    assert default.descendants("26740") == {"26740"}  # the cached default is untouched


def test_include_default_rejects_redefinition(tmp_path: Path) -> None:
    text = """\
include_default: true
units:
  - {code: "79", name: Again, level: province}
"""
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match="'79'.*duplicate.*default"):
        UnitRegistry.from_file(path)


def test_from_settings(tmp_path: Path) -> None:
    UnitRegistry.clear_cache()
    assert UnitRegistry.from_settings(None) is UnitRegistry.default()
    assert UnitRegistry.from_settings("") is UnitRegistry.default()
    path = str(EXAMPLE_3LEVEL_FILE)
    first = UnitRegistry.from_settings(path)
    assert first is UnitRegistry.from_settings(path)
    assert first.routing_path("30280") == "89.883.30280"


def test_constructor_accepts_units_and_mappings() -> None:
    registry = UnitRegistry(
        [
            Unit("01", "Hà Nội", "province"),
            {"code": "00070", "name": "Hoàn Kiếm", "level": "commune", "parent": "01"},
        ]
    )
    assert registry.get("00070").path == ("01", "00070")
    with pytest.raises(ValueError, match=r"units\[1\].*'01'.*duplicate"):
        UnitRegistry([Unit("01", "A", "province"), Unit("01", "B", "province")])


# -- properties ---------------------------------------------------------------------------------


def naive_path(parents: dict[str, str | None], code: str) -> tuple[str, ...]:
    path: list[str] = []
    current: str | None = code
    while current is not None:
        path.append(current)
        current = parents[current]
    return tuple(reversed(path))


@st.composite
def forests(draw: st.DrawFn) -> list[dict[str, str | None]]:
    """Random province roots with agency chains of any depth under them, in shuffled order."""
    roots = draw(st.integers(min_value=1, max_value=4))
    extra = draw(st.integers(min_value=0, max_value=40))
    records: list[dict[str, str | None]] = []
    for i in range(roots):
        records.append({"code": f"P{i}", "name": f"Tỉnh {i}", "level": "province", "parent": None})
    for i in range(extra):
        parent = draw(st.sampled_from([r["code"] for r in records]))
        records.append({"code": f"A{i}", "name": f"Cơ quan {i}", "level": "agency", "parent": parent})
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    random.Random(seed).shuffle(records)
    return records


@settings(max_examples=150, deadline=None)
@given(records=forests(), data=st.data())
def test_property_random_forest(records: list[dict[str, str | None]], data: st.DataObject) -> None:
    registry = UnitRegistry(records)
    parents = {r["code"]: r["parent"] for r in records}
    codes = sorted(parents)
    for code in codes:
        assert registry.path(code) == naive_path(parents, code)
    u = data.draw(st.sampled_from(codes))
    a = data.draw(st.sampled_from(codes))
    expected = a in naive_path(parents, u)
    assert registry.is_within(u, a) == expected
    assert (u in registry.descendants(a)) == expected
    for ancestor in naive_path(parents, u):
        assert registry.is_within(u, ancestor)


REGISTRIES = {
    "default": UnitRegistry.default,
    "example": lambda: UnitRegistry.from_file(EXAMPLE_3LEVEL_FILE),
}


@pytest.mark.parametrize("which", sorted(REGISTRIES))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_property_is_within(which: str, data: st.DataObject) -> None:
    registry = REGISTRIES[which]()
    codes = registry.codes
    u = data.draw(st.sampled_from(codes), label="u")
    path = registry.path(u)
    a = data.draw(st.sampled_from(path), label="ancestor on path")
    assert registry.is_within(u, a)
    assert registry.covers([a], u)
    assert registry.at_depth(u, path.index(a) + 1) == a

    other = data.draw(st.sampled_from(codes), label="any unit")
    assert registry.is_within(u, other) == (other in path)
    assert registry.is_within(u, other) == (u in registry.descendants(other))
    if other != u:
        assert not (registry.is_within(u, other) and registry.is_within(other, u))


def test_a_shared_identifier_is_refused_naming_both_units(tmp_path: Path) -> None:
    text = """\
include_default: true
units:
  - {code: "79-STP", name: Sở Tư pháp TP.HCM, level: agency, parent: "79", identifier: "000.00.21.H29"}
  - {code: "79-SXD", name: Sở Xây dựng TP.HCM, level: agency, parent: "79", identifier: "000.00.21.H29"}
"""
    with pytest.raises(ValueError) as raised:
        UnitRegistry.from_file(write(tmp_path, text))
    message = str(raised.value)
    assert "'79-STP'" in message and "'79-SXD'" in message and "000.00.21.H29" in message


def test_an_identifier_equal_to_another_units_code_is_refused(tmp_path: Path) -> None:
    # 26740's identifier is its code; an agency claiming it would share 26740's dossier codes
    text = """\
include_default: true
units:
  - {code: "26740-TN", name: Bộ phận một cửa, level: agency, parent: "26740", identifier: "26740"}
"""
    with pytest.raises(ValueError, match=r"'26740'.*'26740-TN'"):
        UnitRegistry.from_file(write(tmp_path, text))


def test_a_jurisdiction_naming_units_not_in_the_map_covers_nothing(default: UnitRegistry) -> None:
    assert not default.covers(["99999"], "79")
    assert default.covers(["99999", "79"], "26740")  # the known unit still counts
    assert not default.covers(["79"], "99999")
