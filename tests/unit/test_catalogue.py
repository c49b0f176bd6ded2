"""The procedure catalogue: the shipped data, version lookup, and how bad files are reported."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dossier.catalogue import (
    SHIPPED_DIRECTORY,
    Catalogue,
    CatalogueError,
    Procedure,
    UnknownProcedure,
    split_duration,
)
from services.dossier.catalogue_files import load_catalogue

# --------------------------------------------------------------------------------------------
# The shipped catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def all_versions(catalogue: Catalogue) -> list[Procedure]:
    return [p for code in catalogue.codes() for p in catalogue.versions(code)]


def test_shipped_catalogue_has_enough_current_procedures(catalogue: Catalogue) -> None:
    current = list(catalogue)
    assert len(current) == len(catalogue) >= 14
    assert len({p.code for p in current}) == len(current)  # one version per code
    assert sum(p.interlinked for p in current) >= 3


def test_shipped_catalogue_covers_every_level(catalogue: Catalogue) -> None:
    current_levels = {level for p in catalogue for level in p.levels}
    assert {"commune", "province"} <= current_levels
    # districts are gone since 1 July 2025 but a three-level map still needs their procedures
    before_reform = catalogue.in_force(date(2025, 6, 30))
    assert any("district" in p.levels for p in before_reform)
    assert not any("district" in p.levels for p in catalogue.in_force(date(2025, 7, 1)))


def test_shipped_files_are_one_per_field(catalogue: Catalogue) -> None:
    files = sorted(path.name for path in SHIPPED_DIRECTORY.glob("*.yaml"))
    assert {
        "civil-status.yaml",
        "land.yaml",
        "residence.yaml",
        "business.yaml",
        "construction.yaml",
        "justice.yaml",
        "social.yaml",
    } <= set(files)
    assert catalogue.fields()["civil_status"] == "Hộ tịch"
    assert len(catalogue.fields()) >= 7


def test_every_plan_adds_up_to_its_duration(catalogue: Catalogue) -> None:
    for procedure in all_versions(catalogue):
        unit, amount = split_duration(procedure.duration)
        parts = [split_duration(step.allotment) for step in procedure.steps]
        assert procedure.steps[0].code == "receive" and procedure.steps[-1].code == "return"
        if unit == "same_day":
            assert {u for u, _ in parts} == {"same_day"}, procedure.code
        else:
            assert {u for u, _ in parts} <= {unit, "same_day"}, procedure.code
            assert sum(n for u, n in parts if u == unit) == amount, procedure.code


def test_shipped_entries_are_well_formed(catalogue: Catalogue) -> None:
    for procedure in all_versions(catalogue):
        assert re.fullmatch(r"\d\.\d{6}", procedure.code)
        # Vietnamese names keep their diacritics (an ASCII-only name is a lost encoding)
        assert not procedure.name.isascii(), procedure.name
        assert procedure.name_en.isascii(), procedure.name_en
        assert procedure.legal_basis and procedure.required_documents
        assert ("online" in procedure.channels) == (procedure.online_level is not None)
        assert all(fee.amount_vnd >= 0 for fee in procedure.fees)
        assert procedure.source.startswith("procedures/") and ".yaml:" in procedure.source


def test_known_legal_durations(catalogue: Catalogue) -> None:
    expected = {
        "1.001193": "same_day",  # khai sinh
        "1.000894": "same_day",  # kết hôn
        "2.000635": "same_day",  # bản sao trích lục hộ tịch
        "1.004873": "3 working_days",  # xác nhận tình trạng hôn nhân
        "1.004194": "7 working_days",  # đăng ký thường trú
        "1.004227": "3 working_days",  # đăng ký tạm trú
        "2.000488": "10 working_days",  # phiếu lý lịch tư pháp
        "2.001035": "2 working_days",  # chứng thực hợp đồng
    }
    for code, duration in expected.items():
        assert catalogue.get(code).duration == duration, code
    record = catalogue.get("2.000488")
    assert record.levels == ("province",)
    assert record.agencies == ("province:STP", "police")
    hour_based = [p for p in catalogue if p.duration.endswith("working_hours")]
    assert hour_based, "the catalogue should exercise hour-based plans"


def test_interlinked_procedures(catalogue: Catalogue) -> None:
    birth = catalogue.get("1.012766")
    assert birth.interlinked
    assert birth.agencies == ("commune", "police", "social_insurance")
    assert catalogue.get("1.012797").agencies == ("province:VPDKDD", "tax")
    # the desk plus one office is an ordinary one-stop procedure, not an interlinked one
    assert not catalogue.get("1.001193").interlinked
    assert catalogue.get("1.001193").agencies == ("commune",)


# --------------------------------------------------------------------------------------------
# Versions


def test_version_in_force_at_a_date(catalogue: Catalogue) -> None:
    before = catalogue.get("2.000720", at=date(2025, 6, 30))
    after = catalogue.get("2.000720", at=date(2025, 7, 1))
    assert (before.version, before.levels) == (1, ("district",))
    assert (after.version, after.levels) == (2, ("commune",))
    assert catalogue.get("2.000720") == after  # today
    assert catalogue.versions("2.000720") == (before, after)


def test_three_versions_pick_the_latest_effective(catalogue: Catalogue) -> None:
    agency = {
        date(2021, 1, 4): ("province:SKHDT", 1),
        date(2025, 2, 28): ("province:SKHDT", 1),
        date(2025, 3, 1): ("province:STC", 2),
        date(2025, 7, 1): ("province:STC", 3),
    }
    for day, (expected_agency, version) in agency.items():
        procedure = catalogue.get("2.002048", at=day)
        assert procedure.version == version, day
        assert procedure.agencies == (expected_agency,)
    assert [p.version for p in catalogue.versions("2.002048")] == [1, 2, 3]
    # YAML anchors share the fee list between versions
    assert catalogue.get_version("2.002048", 3).fees == catalogue.get_version("2.002048", 1).fees


def test_datetimes_are_read_in_vietnam_time(catalogue: Catalogue) -> None:
    # 17:30 UTC on 30 June is 00:30 on 1 July in Hanoi: the new version applies
    assert catalogue.get("2.000720", at=datetime(2025, 6, 30, 17, 30, tzinfo=UTC)).version == 2
    assert catalogue.get("2.000720", at=datetime(2025, 6, 30, 16, 59, tzinfo=UTC)).version == 1
    # naive datetimes are local time
    assert catalogue.get("2.000720", at=datetime(2025, 6, 30, 23, 59)).version == 1


def test_get_version(catalogue: Catalogue) -> None:
    assert catalogue.get_version("1.012767", 1).levels == ("commune", "district")
    assert catalogue.get_version("1.012767", 2).levels == ("commune",)
    with pytest.raises(UnknownProcedure, match=r"1\.012767 has no version 9"):
        catalogue.get_version("1.012767", 9)


def test_unknown_and_not_yet_in_force(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownProcedure) as info:
        catalogue.get("9.999999")
    assert isinstance(info.value, KeyError)
    assert "9.999999" in str(info.value)
    with pytest.raises(UnknownProcedure) as info:
        catalogue.get("2.000720", at=date(2020, 12, 31))
    assert "2.000720" in str(info.value) and "2020-12-31" in str(info.value)
    assert info.value.code == "2.000720" and info.value.at == date(2020, 12, 31)
    with pytest.raises(UnknownProcedure):
        catalogue.versions("9.999999")
    assert "2.000720" in catalogue and "9.999999" not in catalogue


def test_repealed_version_is_not_in_force(catalogue: Catalogue) -> None:
    assert catalogue.get("1.001776", at=date(2025, 6, 30)).interlinked
    with pytest.raises(UnknownProcedure, match="2025-07-01"):
        catalogue.get("1.001776", at=date(2025, 7, 1))
    assert "1.001776" not in {p.code for p in catalogue}
    assert "1.001776" in catalogue.codes()


# --------------------------------------------------------------------------------------------
# Malformed files: every problem names the file, the line and the key path

ENTRY = """\
  - code: "{code}"
    version: {version}
    effective_from: {effective_from}
    name: Đăng ký khai sinh
    name_en: Birth registration
    levels: [commune]
    duration: {duration}
    steps:
      - code: receive
        name: Tiếp nhận
        agency: receiving_unit
        allotment: same_day
      - code: appraise
        name: Thẩm định
        agency: commune
        allotment: {appraise}
      - code: return
        name: Trả kết quả
        agency: receiving_unit
        allotment: same_day
    fees:
      - {{name: Lệ phí, amount_vnd: 0}}
    required_documents:
      - {{name: Tờ khai, original: 1, copies: 0}}
    channels: {channels}
    postal_return: true
    online_level: {online_level}
    legal_basis: [Luật Hộ tịch số 60/2014/QH13]
"""


def entry(**overrides: object) -> str:
    values: dict[str, object] = {
        "code": "1.001193",
        "version": 1,
        "effective_from": "2016-01-01",
        "duration": "3 working_days",
        "appraise": "3 working_days",
        "channels": "[counter, online]",
        "online_level": "full",
    }
    values.update(overrides)
    return ENTRY.format(**values)


def catalogue_file(*entries: str) -> str:
    return "field: civil_status\nfield_name: Hộ tịch\nprocedures:\n" + "".join(entries)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def load_error(directory: Path) -> CatalogueError:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(directory)
    return info.value


def assert_reported(error: CatalogueError, file: str, line: int, path: str, *words: str) -> None:
    message = str(error)
    assert f"{file}:{line}: {path}:" in message, message
    for word in words:
        assert word in message, message


def test_a_valid_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", catalogue_file(entry()))
    catalogue = load_catalogue(str(tmp_path))
    procedure = catalogue.get("1.001193", at=date(2020, 1, 1))
    assert procedure.field == "civil_status" and procedure.field_name == "Hộ tịch"
    assert procedure.source == f"{tmp_path.name}/good.yaml:4"
    assert procedure.required_documents[0].original == 1


def test_unknown_key(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace(
        "        agency: commune\n", "        agency: commune\n        colour: red\n"
    )
    write(tmp_path, "bad.yaml", text)
    error = load_error(tmp_path)
    assert_reported(
        error, "bad.yaml", line_of(text, "colour"), "procedures[0].steps[1].colour", "unknown key"
    )
    (problem,) = error.problems
    assert problem.line == line_of(text, "colour")
    assert problem.path == "procedures[0].steps[1].colour"


def test_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace("    postal_return:", "    postal_retrun:")
    write(tmp_path, "bad.yaml", text)
    error = load_error(tmp_path)
    assert_reported(
        error,
        "bad.yaml",
        line_of(text, "postal_retrun"),
        "procedures[0].postal_retrun",
        "did you mean 'postal_return'",
    )
    # and the real key is now missing, reported on the entry
    assert_reported(error, "bad.yaml", line_of(text, "- code:"), "procedures[0].postal_return")


def test_bad_duration_string(tmp_path: Path) -> None:
    text = catalogue_file(entry(appraise="3 days"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "allotment: 3 days"),
        "procedures[0].steps[1].allotment",
        "not a duration: '3 days'",
    )


@pytest.mark.parametrize(
    "duration",
    ["3 days", "0 working_days", "1.5 working_days", "trong ngày", "03 working_days", "3  working_hours"],
)
def test_procedure_duration_format(tmp_path: Path, duration: str) -> None:
    text = catalogue_file(entry(duration=f'"{duration}"'))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "    duration:"),
        "procedures[0].duration",
        "not a duration",
    )


def test_duplicate_code_and_version_in_one_file(tmp_path: Path) -> None:
    text = catalogue_file(entry(), entry())
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "version: 1", 2),
        "procedures[1].version",
        "duplicate",
        "1.001193 version 1",
        f"{tmp_path.name}/bad.yaml:4",
    )


def test_duplicate_code_and_version_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", catalogue_file(entry()))
    text = catalogue_file(entry(code="1.000656"), entry())
    write(tmp_path, "b.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "b.yaml",
        line_of(text, "version: 1", 2),
        "procedures[1].version",
        "already defined at",
        "a.yaml:4",
    )


def test_step_sum_mismatch(tmp_path: Path) -> None:
    text = catalogue_file(entry(duration="5 working_days", appraise="4 working_days"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "    steps:"),
        "procedures[0].steps",
        "add up to 4 working_days",
        "'5 working_days'",
    )


def test_hours_inside_a_day_plan_are_refused(tmp_path: Path) -> None:
    text = catalogue_file(entry(appraise="24 working_hours"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "24 working_hours"),
        "procedures[0].steps[1].allotment",
        "does not fit",
    )


def test_hour_plan_sums_hours(tmp_path: Path) -> None:
    good = catalogue_file(
        entry(duration="4 working_hours", appraise="4 working_hours").replace(
            "allotment: same_day", "allotment: 1 working_hours"
        )
    )
    write(tmp_path, "good.yaml", good)
    with pytest.raises(CatalogueError, match="add up to 6 working_hours"):
        load_catalogue(tmp_path)
    fixed = good.replace("allotment: 4 working_hours", "allotment: 2 working_hours")
    write(tmp_path, "good.yaml", fixed)
    assert load_catalogue(tmp_path).get("1.001193").duration == "4 working_hours"


def test_bad_channel(tmp_path: Path) -> None:
    text = catalogue_file(entry(channels="[counter, fax]", online_level="null"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "channels:"),
        "procedures[0].channels[1]",
        "'fax'",
        "counter, online, postal",
    )


def test_online_channel_needs_an_online_level(tmp_path: Path) -> None:
    text = catalogue_file(entry(online_level="null"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "online_level:"),
        "procedures[0].online_level",
        "full or partial",
    )


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace(
        "    name_en: Birth registration", "    name_en: [Birth registration"
    )
    write(tmp_path, "broken.yaml", text)
    error = load_error(tmp_path)
    (problem,) = error.problems
    assert problem.file.endswith("broken.yaml")
    assert "YAML syntax error" in str(error)
    # the parser notices the unclosed bracket after it; the path says where it was
    assert problem.line is not None and problem.line >= line_of(text, "name_en")
    assert problem.path.startswith("procedures[0].name_en")
    assert f"broken.yaml:{problem.line}: procedures[0]" in str(error)


def test_bad_indentation(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace("        agency: commune", "      agency: commune")
    write(tmp_path, "broken.yaml", text)
    error = load_error(tmp_path)
    assert_reported(
        error,
        "broken.yaml",
        line_of(text, "      agency: commune"),
        "procedures[0].steps[1]",
        "YAML syntax error",
    )


def test_duplicate_key(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace(
        "    levels: [commune]\n", "    levels: [commune]\n    levels: [province]\n"
    )
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "levels: [province]"),
        "procedures[0].levels",
        f"first at line {line_of(text, 'levels: [commune]')}",
    )


def test_unquoted_code(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace('code: "1.001193"', "code: 1.001193")
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "code: 1.001193"),
        "procedures[0].code",
        "quoted string",
    )


def test_versions_must_take_effect_in_order(tmp_path: Path) -> None:
    text = catalogue_file(entry(), entry(version=2, effective_from="2015-01-01"))
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "2015-01-01"),
        "procedures[1].effective_from",
        "not after 2016-01-01",
    )


def test_plan_must_start_with_receive(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace("      - code: receive", "      - code: approve")
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "- code: approve"),
        "procedures[0].steps[0].code",
        "'receive'",
    )


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", catalogue_file(entry(appraise="3 days")))
    write(tmp_path, "b.yaml", catalogue_file(entry(code="1.000656", channels="[fax]", online_level="null")))
    error = load_error(tmp_path)
    assert isinstance(error, ValueError)
    assert [p.file for p in error.problems] == [f"{tmp_path.name}/a.yaml", f"{tmp_path.name}/b.yaml"]
    assert len(str(error).splitlines()) == 2


def test_missing_directory_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="not a directory"):
        load_catalogue(tmp_path / "nope")
    write(tmp_path, "empty.yaml", "")
    (problem,) = load_error(tmp_path).problems
    assert str(problem) == f"{tmp_path.name}/empty.yaml:1: the file is empty"


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=12),
    parts=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
)
def test_loader_accepts_a_plan_exactly_when_it_adds_up(total: int, parts: list[int]) -> None:
    steps = "".join(
        f"      - {{code: appraise, name: Bước {n}, agency: commune, allotment: {days} working_days}}\n"
        for n, days in enumerate(parts)
    )
    text = catalogue_file(entry(duration=f"{total} working_days")).replace(
        "      - code: appraise\n        name: Thẩm định\n        agency: commune\n"
        "        allotment: 3 working_days\n",
        steps,
    )
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), "plan.yaml", text)
        if sum(parts) == total:
            assert load_catalogue(folder).get("1.001193").duration == f"{total} working_days"
        else:
            with pytest.raises(CatalogueError, match=f"add up to {sum(parts)} working_days"):
                load_catalogue(folder)


def test_error_on_the_line_of_a_key_names_that_key(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace("    name: Đăng ký khai sinh", "    name: Đăng ký: khai sinh")
    write(tmp_path, "broken.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "broken.yaml",
        line_of(text, "Đăng ký: khai sinh"),
        "procedures[0].name",
        "YAML syntax error",
    )


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            "effective_from: 2016-01-01",
            "effective_from: 2016-13-01",
            "procedures[0].effective_from",
            ("not a date", "'2016-13-01'"),
        ),
        (
            "effective_from: 2016-01-01",
            "effective_from: 2016-01-01 08:00:00",
            "procedures[0].effective_from",
            ("not a date",),
        ),
        ("postal_return: true", "postal_return: 1", "procedures[0].postal_return", ("not a boolean",)),
        ("version: 1", "version: 1.5", "procedures[0].version", ("not a whole number: 1.5",)),
        (
            "original: 1, copies: 0",
            "original: 0, copies: 0",
            "procedures[0].required_documents[0].copies",
            ("at least one original",),
        ),
        ("amount_vnd: 0", "amount_vnd: -5", "procedures[0].fees[0].amount_vnd", ("-5",)),
        (
            "agency: commune",
            "agency: ministry",
            "procedures[0].steps[1].agency",
            ("not an agency: 'ministry'",),
        ),
        (
            "levels: [commune]",
            "levels: [commune, commune]",
            "procedures[0].levels",
            ("more than once: commune",),
        ),
        ("levels: [commune]", "levels: [ward]", "procedures[0].levels[0]", ("'ward'",)),
    ],
)
def test_value_errors(tmp_path: Path, old: str, new: str, path: str, words: tuple[str, ...]) -> None:
    text = catalogue_file(entry()).replace(old, new)
    assert new in text
    write(tmp_path, "bad.yaml", text)
    assert_reported(load_error(tmp_path), "bad.yaml", line_of(text, new), path, *words)


def test_missing_key_points_at_the_entry(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace("field: civil_status\n", "")
    write(tmp_path, "bad.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "bad.yaml",
        line_of(text, "- code:"),
        "procedures[0].field",
        "required key is missing",
    )


def test_procedure_may_override_the_file_field(tmp_path: Path) -> None:
    text = catalogue_file(entry()).replace(
        "    name_en: Birth registration\n",
        "    name_en: Birth registration\n    field: other\n    field_name: Khác\n",
    )
    write(tmp_path, "good.yaml", text)
    assert load_catalogue(tmp_path).fields() == {"other": "Khác"}


def test_field_names_must_agree_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", catalogue_file(entry()))
    text = catalogue_file(entry(code="1.000656")).replace("field_name: Hộ tịch", "field_name: Ho tich")
    write(tmp_path, "b.yaml", text)
    assert_reported(
        load_error(tmp_path),
        "b.yaml",
        line_of(text, "- code:"),
        "procedures[0].field_name",
        "'Ho tich' differs from 'Hộ tịch'",
    )
