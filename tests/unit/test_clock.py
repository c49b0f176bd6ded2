"""The clock a test moves (shared/clock.py): one file moves every process, in development only."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared import clock

VIETNAM = timezone(timedelta(hours=7))
NEW_YEAR_IN_VIETNAM = datetime(2027, 1, 1, 0, 0, tzinfo=VIETNAM)  # 2026-12-31T17:00Z


def test_without_a_file_it_is_the_real_clock(tmp_path):
    before = datetime.now(UTC)
    shown = clock.FileClock(tmp_path / "clock").now()
    assert before <= shown <= datetime.now(UTC)


def test_the_file_sets_the_instant_and_the_clock_runs_on_from_it(tmp_path):
    path = tmp_path / "clock"
    clock.move_to(path, NEW_YEAR_IN_VIETNAM)
    moved = clock.FileClock(path)
    first = moved.now()
    assert timedelta(0) <= first - NEW_YEAR_IN_VIETNAM < timedelta(seconds=2)
    assert first.tzinfo is not None and first.utcoffset() == timedelta(0)
    assert moved.now() >= first  # it runs on


def test_each_move_is_seen_at_once_by_a_clock_already_reading(tmp_path):
    path = tmp_path / "clock"
    reader = clock.FileClock(path)
    instants = [datetime(2027, 2, day, 9, 0, tzinfo=VIETNAM) for day in (5, 6, 12, 8)]
    for instant in instants:  # several within one coarse mtime tick, some of the same length
        clock.move_to(path, instant)
        assert timedelta(0) <= reader.now() - instant < timedelta(seconds=2)


def test_a_human_overwriting_the_file_in_place_moves_it_too(tmp_path):
    path = tmp_path / "clock"
    reader = clock.FileClock(path)
    path.write_text("2026-12-29T09:00:00+07:00\n")
    assert reader.now().astimezone(VIETNAM).date().isoformat() == "2026-12-29"
    path.write_text("2027-01-04T09:00:00+07:00\n")
    assert reader.now().astimezone(VIETNAM).date().isoformat() == "2027-01-04"
    path.write_text("")
    assert abs(reader.now() - datetime.now(UTC)) < timedelta(seconds=2)


def test_an_instant_without_its_offset_is_refused(tmp_path):
    path = tmp_path / "clock"
    path.write_text("2027-01-01T08:00:00\n")
    with pytest.raises(ValueError, match="no UTC offset"):
        clock.FileClock(path).now()
    with pytest.raises(ValueError):
        clock.move_to(path, datetime(2027, 1, 1, 8, 0))


def test_only_development_arms_it():
    assert clock.armed({"MOTCUA_CLOCK_FILE": "/tmp/c", "MOTCUA_ENV": "development"}) == "/tmp/c"
    assert clock.armed({"MOTCUA_CLOCK_FILE": "/tmp/c", "MOTCUA_ENV": "production"}) is None
    assert clock.armed({"MOTCUA_CLOCK_FILE": "/tmp/c"}) is None
    assert clock.armed({"MOTCUA_ENV": "development"}) is None
    assert "outside MOTCUA_ENV=development" in clock.refusal({"MOTCUA_CLOCK_FILE": "/tmp/c"})
    assert clock.refusal({"MOTCUA_CLOCK_FILE": "/tmp/c", "MOTCUA_ENV": "development"}) is None
    assert clock.refusal({}) is None


def test_unarmed_now_and_at_are_the_real_clock():
    assert "MOTCUA_CLOCK_FILE" not in os.environ  # the unit tests never arm it
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)
    assert clock.at(1_798_736_400) == datetime(2026, 12, 31, 17, 0, tzinfo=UTC)


def test_the_command_line_moves_and_resets_the_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "clock"
    monkeypatch.setenv("MOTCUA_CLOCK_FILE", str(path))
    assert clock.main(["2027-02-05T09:00+07:00"]) == 0
    assert capsys.readouterr().out.startswith("2027-02-05T02:00")
    assert clock.main(["--real"]) == 0 and not path.exists()
    monkeypatch.delenv("MOTCUA_CLOCK_FILE")
    assert clock.main([]) == 2
