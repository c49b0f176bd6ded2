"""The working-day calendar: concrete dates checked by hand, and properties checked by hypothesis.

Expected values below are written out from the official 2024-2026 holiday schedules, not
computed by the code under test; the property tests compare against a slow, obvious oracle
built straight on ``holidays.VN``.
"""

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.workcalendar import Duration, WorkingCalendar

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar()


def vn(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=VN)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- Duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10 working_days", Duration("working_days", 10)),
        ("  8 Working_Hours ", Duration("working_hours", 8)),
        ("same_day", Duration("same_day")),
        ({"unit": "working_days", "amount": 3}, Duration("working_days", 3)),
        ({"unit": "same_day"}, Duration("same_day", 0)),
        (Duration("working_hours", 4), Duration("working_hours", 4)),
    ],
)
def test_duration_parse(value, expected):
    assert Duration.parse(value) == expected


@pytest.mark.parametrize(
    ("unit", "amount", "message"),
    [
        ("working_days", 0, "positive"),
        ("working_hours", -2, "positive"),
        ("same_day", 1, "no amount"),
        ("weeks", 1, "unknown duration unit"),
        ("working_days", 1.5, "integer"),
        ("working_days", True, "integer"),
    ],
)
def test_duration_rejects_bad_values(unit, amount, message):
    with pytest.raises(ValueError, match=message):
        Duration(unit, amount)


@pytest.mark.parametrize("text", ["ten working_days", "5", "5 days", "", "working_days 5"])
def test_duration_parse_rejects_bad_text(text):
    with pytest.raises(ValueError):
        Duration.parse(text)


def test_duration_parse_rejects_unknown_dict_key():
    with pytest.raises(ValueError, match="amout"):
        Duration.parse({"unit": "working_days", "amout": 3})


# --- working days --------------------------------------------------------------------------


def test_tet_2026_days_off():
    # Tết Bính Ngọ: Mon 16 Feb (Giao thừa) to Fri 20 Feb 2026, framed by two weekends
    off = [date(2026, 2, d) for d in range(14, 23)]
    assert not any(CAL.is_working_day(d) for d in off)
    assert CAL.is_working_day(date(2026, 2, 13))
    assert CAL.is_working_day(date(2026, 2, 23))
    assert CAL.next_working_day(date(2026, 2, 13)) == date(2026, 2, 23)


def test_tet_2026_day_based_deadlines():
    received = vn(2026, 2, 13, 9)  # Friday before Tết, before cut-off: day 1 is 13 Feb
    assert CAL.deadline(received, Duration("working_days", 1)) == utc(2026, 2, 13, 10)
    assert CAL.deadline(received, Duration("working_days", 2)) == utc(2026, 2, 23, 10)
    assert CAL.deadline(received, Duration("working_days", 5)) == utc(2026, 2, 26, 10)
    # received during Tết: counting starts on the first day back
    assert CAL.start_day(vn(2026, 2, 18, 10)) == date(2026, 2, 23)
    assert CAL.deadline(vn(2026, 2, 18, 10), "3 working_days") == utc(2026, 2, 25, 10)


def test_tet_2026_hour_based_skips_the_holiday():
    # 16:00 Fri: 1 h left that day, 7 h more from 07:30 Mon 23 Feb -> 16:00 local
    assert CAL.deadline(vn(2026, 2, 13, 16), "8 working_hours") == utc(2026, 2, 23, 9)


def test_national_day_2026_with_swapped_saturday():
    # 2026: Mon 31 Aug off in exchange for working Sat 22 Aug; 1 and 2 Sep are National Day
    for day in (date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2)):
        assert not CAL.is_working_day(day)
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 29))
    # received Fri 28 Aug: day 1 = 28 Aug, day 2 = Thu 3 Sep
    assert CAL.deadline(vn(2026, 8, 28, 10), "2 working_days") == utc(2026, 9, 3, 10)
    # received after cut-off on Fri 21 Aug: day 1 is the swapped Saturday
    assert CAL.start_day(vn(2026, 8, 21, 16)) == date(2026, 8, 22)
    assert CAL.deadline(vn(2026, 8, 21, 16), "1 working_days") == utc(2026, 8, 22, 10)


def test_national_day_2024_and_2025():
    assert not CAL.is_working_day(date(2024, 9, 2))
    assert not CAL.is_working_day(date(2024, 9, 3))
    assert not CAL.is_working_day(date(2025, 9, 1))
    assert not CAL.is_working_day(date(2025, 9, 2))
    # 2025: Fri 2 May off, Sat 26 Apr worked
    assert not CAL.is_working_day(date(2025, 5, 2))
    assert CAL.is_working_day(date(2025, 4, 26))


def test_cutoff():
    monday = date(2026, 3, 2)
    assert CAL.start_day(vn(2026, 3, 2, 14, 59)) == monday
    assert CAL.start_day(vn(2026, 3, 2, 15, 0)) == date(2026, 3, 3)  # at cut-off is after it
    assert CAL.deadline(vn(2026, 3, 2, 9), "1 working_days") == utc(2026, 3, 2, 10)
    assert CAL.deadline(vn(2026, 3, 2, 16), "1 working_days") == utc(2026, 3, 3, 10)
    # Friday after cut-off: day 1 is Monday
    assert CAL.deadline(vn(2026, 3, 6, 15, 30), "2 working_days") == utc(2026, 3, 10, 10)
    # the same instant given in UTC
    assert CAL.start_day(utc(2026, 3, 2, 8, 30)) == date(2026, 3, 3)


def test_weekend_receipt_counts_from_monday():
    assert CAL.start_day(vn(2026, 3, 7, 9)) == date(2026, 3, 9)
    assert CAL.deadline(vn(2026, 3, 8, 9), "1 working_days") == utc(2026, 3, 9, 10)


def test_same_day():
    assert CAL.deadline(vn(2026, 3, 2, 9), "same_day") == utc(2026, 3, 2, 10)
    assert CAL.deadline(vn(2026, 3, 2, 15, 30), "same_day") == utc(2026, 3, 3, 10)
    assert CAL.deadline(vn(2026, 3, 7, 9), "same_day") == utc(2026, 3, 9, 10)


def test_hour_based_spans_lunch_break():
    # 10:30 + 2 h = 10:30-11:30 and 13:00-14:00
    assert CAL.deadline(vn(2026, 3, 2, 10, 30), "2 working_hours") == utc(2026, 3, 2, 7)
    # received during lunch: counts from 13:00
    assert CAL.deadline(vn(2026, 3, 2, 12), "1 working_hours") == utc(2026, 3, 2, 7)
    # ending exactly at the end of the morning session stays at 11:30
    assert CAL.deadline(vn(2026, 3, 2, 9, 30), "2 working_hours") == utc(2026, 3, 2, 4, 30)


def test_hour_based_overnight_and_weekend():
    # 16:00 Mon + 3 h = 1 h Mon + 2 h from 07:30 Tue
    assert CAL.deadline(vn(2026, 3, 2, 16), "3 working_hours") == utc(2026, 3, 3, 2, 30)
    # received at 18:00: counts from the next opening
    assert CAL.deadline(vn(2026, 3, 2, 18), "1 working_hours") == utc(2026, 3, 3, 1, 30)
    # received before opening
    assert CAL.deadline(vn(2026, 3, 3, 6), "8 working_hours") == utc(2026, 3, 3, 10)
    # Friday 16:30 + 1 h: 30 min Fri, 30 min Mon
    assert CAL.deadline(vn(2026, 3, 6, 16, 30), "1 working_hours") == utc(2026, 3, 9, 1)
    # the cut-off does not apply to hours
    assert CAL.deadline(vn(2026, 3, 2, 15, 30), "1 working_hours") == utc(2026, 3, 2, 9, 30)


def test_extra_day_off():
    cal = WorkingCalendar(extra_days_off=["2026-03-03"])
    assert not cal.is_working_day(date(2026, 3, 3))
    assert cal.deadline(vn(2026, 3, 2, 9), "2 working_days") == utc(2026, 3, 4, 10)
    assert cal.deadline(vn(2026, 3, 2, 16), "2 working_hours") == utc(2026, 3, 4, 1, 30)
    assert CAL.deadline(vn(2026, 3, 2, 9), "2 working_days") == utc(2026, 3, 3, 10)


def test_extra_day_off_overrides_swapped_saturday():
    cal = WorkingCalendar(extra_days_off=[date(2026, 8, 22)])
    assert not cal.is_working_day(date(2026, 8, 22))
    assert cal.next_working_day(date(2026, 8, 21)) == date(2026, 8, 24)
    assert cal.add_working_days(date(2026, 8, 21), 6) == date(2026, 9, 3)


def test_extra_working_saturday():
    cal = WorkingCalendar(extra_working_days=[date(2026, 3, 7)])
    assert cal.is_working_day(date(2026, 3, 7))
    assert cal.deadline(vn(2026, 3, 6, 9), "2 working_days") == utc(2026, 3, 7, 10)
    assert cal.next_working_day(date(2026, 3, 6)) == date(2026, 3, 7)
    assert cal.is_working_time(vn(2026, 3, 7, 8))
    assert not CAL.is_working_time(vn(2026, 3, 7, 8))


def test_overlapping_overrides_are_refused():
    with pytest.raises(ValueError, match="both off and worked"):
        WorkingCalendar(extra_days_off=["2026-03-07"], extra_working_days=[date(2026, 3, 7)])


def test_is_working_time():
    assert CAL.is_working_time(vn(2026, 3, 2, 7, 30))
    assert CAL.is_working_time(vn(2026, 3, 2, 17))
    assert not CAL.is_working_time(vn(2026, 3, 2, 7, 29))
    assert not CAL.is_working_time(vn(2026, 3, 2, 12))
    assert not CAL.is_working_time(vn(2026, 3, 2, 17, 1))
    assert not CAL.is_working_time(vn(2026, 2, 17, 9))
    assert CAL.is_working_time(utc(2026, 3, 2, 2))  # 09:00 local


def test_naive_datetimes_are_refused():
    naive = datetime(2026, 3, 2, 9)
    for call in (
        lambda: CAL.deadline(naive, "1 working_days"),
        lambda: CAL.is_working_time(naive),
        lambda: CAL.start_day(naive),
        lambda: CAL.add_working_time(naive, timedelta(hours=1)),
        lambda: CAL.working_time_between(naive, vn(2026, 3, 3)),
    ):
        with pytest.raises(ValueError, match="naive"):
            call()


def test_results_are_utc():
    result = CAL.deadline(datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("Europe/Paris")), "same_day")
    assert result.tzinfo == UTC
    # 09:00 Paris = 15:00 Hanoi, at the cut-off: next working day
    assert result == utc(2026, 3, 3, 10)


def test_working_time_between():
    assert CAL.working_time_between(vn(2026, 3, 2, 10), vn(2026, 3, 3, 10)) == timedelta(hours=8)
    assert CAL.working_time_between(vn(2026, 3, 6, 16), vn(2026, 3, 9, 8, 30)) == timedelta(hours=2)
    assert CAL.working_time_between(vn(2026, 3, 2, 11), vn(2026, 3, 2, 14)) == timedelta(hours=1.5)
    assert CAL.working_time_between(vn(2026, 3, 3), vn(2026, 3, 2)) == timedelta(0)
    # across Tết: Fri 13 Feb 16:00 to Mon 23 Feb 09:30
    assert CAL.working_time_between(vn(2026, 2, 13, 16), vn(2026, 2, 23, 9, 30)) == timedelta(hours=3)
    # across a year boundary: Wed 31 Dec 2025 16:00 to Fri 2 Jan 2026 08:30
    assert CAL.working_time_between(vn(2025, 12, 31, 16), vn(2026, 1, 2, 8, 30)) == timedelta(hours=2)


def test_working_time_between_grows_the_calendar_both_ways():
    cal = WorkingCalendar()  # fresh: nothing cached yet
    assert cal.working_time_between(vn(2030, 1, 2, 9), vn(2030, 1, 3, 9)) == timedelta(hours=8)
    start, end = date(2019, 12, 31), date(2030, 1, 2)
    worked = sum(is_working_day_oracle(start + timedelta(days=n)) for n in range((end - start).days))
    assert cal.working_time_between(vn(2019, 12, 31, 9), vn(2030, 1, 2, 9)) == worked * timedelta(hours=8)


def test_working_days_between():
    assert CAL.working_days_between(vn(2026, 3, 2, 10), vn(2026, 3, 4, 10)) == 2.0
    assert CAL.working_days_between(vn(2026, 3, 2, 7, 30), vn(2026, 3, 2, 11, 30)) == 0.5
    assert CAL.working_days_between(vn(2026, 3, 4), vn(2026, 3, 2)) == 0.0


def test_resume():
    deadline = vn(2026, 3, 4, 17)  # Wed close
    # stopped Mon 13:00 with 4 + 8 + 8 = 20 h left; resumed Thu 13:00: 4 h Thu + 8 Fri + 8 Mon
    assert CAL.resume(deadline, vn(2026, 3, 2, 13), vn(2026, 3, 5, 13)) == utc(2026, 3, 9, 10)
    # stopped over lunch and resumed the same afternoon: nothing lost
    assert CAL.resume(deadline, vn(2026, 3, 2, 11, 45), vn(2026, 3, 2, 12, 30)) == utc(2026, 3, 4, 10)
    # already late when stopped: the deadline stays where it was
    assert CAL.resume(deadline, vn(2026, 3, 5, 9), vn(2026, 3, 9, 9)) == utc(2026, 3, 4, 10)
    with pytest.raises(ValueError, match="before"):
        CAL.resume(deadline, vn(2026, 3, 3, 9), vn(2026, 3, 2, 9))


def test_add_working_time_rejects_negative():
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_time(vn(2026, 3, 2, 9), timedelta(hours=-1))


def test_from_settings():
    cal = WorkingCalendar.from_settings(
        {
            "timezone": "Asia/Ho_Chi_Minh",
            "sessions": ["08:00-12:00", "13:30-17:30"],
            "workdays": [0, 1, 2, 3, 4, 5],
            "cutoff": "16:00",
            "extra_days_off": ["2026-03-10"],
        }
    )
    assert cal.is_working_day(date(2026, 3, 7))  # Saturday is a workday here
    assert not cal.is_working_day(date(2026, 3, 10))
    assert cal.start_day(vn(2026, 3, 2, 15, 30)) == date(2026, 3, 2)
    assert cal.deadline(vn(2026, 3, 2, 9), "1 working_days") == utc(2026, 3, 2, 10, 30)
    assert cal.deadline(vn(2026, 3, 2, 11), "2 working_hours") == utc(2026, 3, 2, 7, 30)
    assert WorkingCalendar.from_settings(None).deadline(vn(2026, 3, 2, 9), "same_day") == utc(2026, 3, 2, 10)


def test_from_settings_names_the_bad_key():
    with pytest.raises(ValueError, match="'cut_off'"):
        WorkingCalendar.from_settings({"cut_off": "15:00"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timezone": "Asia/Hanoi_City"},
        {"sessions": ["11:30-07:30"]},
        {"sessions": ["07:30-12:00", "11:00-17:00"]},
        {"sessions": ["7h30-11h30"]},
        {"sessions": []},
        {"workdays": [7]},
        {"workdays": []},
        {"cutoff": "3pm"},
        {"extra_days_off": ["02/09/2026"]},
        {"country": "XX"},
    ],
)
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        WorkingCalendar(**kwargs)


def test_thousand_working_days_is_right():
    cal = WorkingCalendar()
    result = cal.deadline(vn(2026, 3, 2, 9), Duration("working_days", 1000))
    day = date(2026, 3, 2)
    for _ in range(999):
        day = next_working_day_oracle(day)
    assert result == datetime.combine(day, time(17), tzinfo=VN)


# --- oracle: slow and obvious, straight from holidays.VN ------------------------------------


@cache
def _vn_year(year: int) -> holidays.HolidayBase:
    return holidays.VN(years=year)


def is_working_day_oracle(day: date) -> bool:
    national = _vn_year(day.year)
    if day in national.weekend_workdays:
        return True
    return day.weekday() < 5 and day not in national


def next_working_day_oracle(day: date) -> date:
    day += timedelta(days=1)
    while not is_working_day_oracle(day):
        day += timedelta(days=1)
    return day


def in_office_session(local: datetime) -> bool:
    clock = local.timetz().replace(tzinfo=None)
    return time(7, 30) <= clock <= time(11, 30) or time(13) <= clock <= time(17)


def deadline_oracle(received: datetime, duration: Duration) -> datetime:
    local = received.astimezone(VN)
    if duration.unit == "working_hours":
        # walk minute by minute: only minutes fully inside a session count
        minute = local.replace(second=0, microsecond=0)
        assert minute == local, "oracle takes whole minutes"
        left = duration.amount * 60
        while left:
            if (
                is_working_day_oracle(minute.date())
                and in_office_session(minute)
                and (in_office_session(minute + timedelta(minutes=1)))
            ):
                left -= 1
            minute += timedelta(minutes=1)
        return minute
    day = local.date()
    if not (is_working_day_oracle(day) and local.time() < time(15)):
        day = next_working_day_oracle(day)
    for _ in range(max(duration.amount, 1) - 1):
        day = next_working_day_oracle(day)
    return datetime.combine(day, time(17), tzinfo=VN)


# --- properties ----------------------------------------------------------------------------

ZONES = st.sampled_from([VN, UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")])
RECEIPTS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31, 23, 59), timezones=ZONES
)
MINUTE_RECEIPTS = RECEIPTS.map(lambda moment: moment.replace(second=0, microsecond=0))
DURATIONS = st.one_of(
    st.builds(Duration, st.just("working_days"), st.integers(1, 60)),
    st.builds(Duration, st.just("working_hours"), st.integers(1, 200)),
    st.just(Duration("same_day")),
)
FAST = settings(max_examples=500, deadline=None)


@FAST
@given(received=RECEIPTS, duration=DURATIONS)
def test_deadline_is_inside_office_hours_on_a_working_day(received, duration):
    due = CAL.deadline(received, duration)
    local = due.astimezone(VN)
    assert due.tzinfo == UTC
    assert due > received
    assert is_working_day_oracle(local.date())
    assert in_office_session(local)
    assert CAL.is_working_time(due)


@FAST
@given(
    received=RECEIPTS,
    unit=st.sampled_from(["working_days", "working_hours"]),
    amount=st.integers(1, 120),
    extra=st.integers(1, 30),
)
def test_longer_duration_never_gives_an_earlier_deadline(received, unit, amount, extra):
    shorter = CAL.deadline(received, Duration(unit, amount))
    longer = CAL.deadline(received, Duration(unit, amount + extra))
    assert longer > shorter
    assert CAL.deadline(received, Duration("same_day")) <= CAL.deadline(received, Duration("working_days", 1))


@FAST
@given(received=RECEIPTS, duration=DURATIONS, into=st.integers(1, 10_000), k=st.integers(1, 25))
def test_stopping_for_k_working_days_moves_deadline_by_k_working_days(received, duration, into, k):
    due = CAL.deadline(received, duration)
    # stop at a working-time instant strictly before the deadline
    stopped = CAL.add_working_time(received, timedelta(minutes=into))
    assume(stopped < due)
    assert CAL.is_working_time(stopped)
    stopped_local = stopped.astimezone(VN)
    resume_day = stopped_local.date()
    due_local = due.astimezone(VN)
    shifted_day = due_local.date()
    for _ in range(k):
        resume_day = next_working_day_oracle(resume_day)
        shifted_day = next_working_day_oracle(shifted_day)
    resumed = datetime.combine(resume_day, stopped_local.timetz())
    expected = datetime.combine(shifted_day, due_local.timetz())
    assert CAL.resume(due, stopped, resumed) == expected
    assert CAL.working_days_between(stopped, resumed) == k


@settings(max_examples=200, deadline=None)
@given(
    received=MINUTE_RECEIPTS,
    duration=st.one_of(
        st.builds(Duration, st.just("working_days"), st.integers(1, 30)),
        st.builds(Duration, st.just("working_hours"), st.integers(1, 20)),
        st.just(Duration("same_day")),
    ),
)
def test_deadline_matches_the_slow_oracle(received, duration):
    assert CAL.deadline(received, duration) == deadline_oracle(received, duration)


@FAST
@given(start=RECEIPTS, hours=st.integers(0, 400), minutes=st.integers(0, 59))
def test_add_then_measure_round_trips(start, hours, minutes):
    amount = timedelta(hours=hours, minutes=minutes)
    end = CAL.add_working_time(start, amount)
    assert end >= start
    assert CAL.working_time_between(start, end) == amount


@FAST
@given(day=st.dates(date(2024, 1, 1), date(2027, 12, 31)), count=st.integers(1, 40))
def test_add_working_days_agrees_with_the_oracle(day, count):
    assert CAL.is_working_day(day) == is_working_day_oracle(day)
    expected = day
    for _ in range(count):
        expected = next_working_day_oracle(expected)
    assert CAL.add_working_days(day, count) == expected
