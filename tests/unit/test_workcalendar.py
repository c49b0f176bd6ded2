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


# --- working days ------------------------------------------------------------------------
#
# Every expected date below is derived by hand from the rule (Civil Code 2015, Art. 147(1); the
# issue's worked examples) and from the holiday table of holidays.VN 0.109, written out here:
#   2026: Thu 1 Jan; Tết Mon 16 - Fri 20 Feb; Mon 27 Apr (observed); Thu 30 Apr; Fri 1 May;
#         Mon 31 Aug (bridge day, worked on Sat 22 Aug instead); Tue 1 and Wed 2 Sep;
#         Tue 24 Nov (Vietnam Cultural Day).
#   2027: Fri 1 Jan; Tết Thu 4 - Wed 10 Feb; Fri 16 Apr; Fri 30 Apr; Mon 3 May (observed);
#         Thu 2 and Fri 3 Sep; Wed 24 Nov.
# "start" is the day counted from (not itself counted); the due time is 17:00 local (10:00 UTC)
# on the N-th working day after it.


def test_the_holiday_table_is_what_the_expectations_assume():
    off = [
        date(2026, 2, 16), date(2026, 2, 20), date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2),
        date(2026, 11, 24), date(2027, 2, 4), date(2027, 2, 8), date(2027, 2, 10), date(2027, 9, 2),
        date(2027, 9, 3), date(2027, 11, 24),
    ]  # fmt: skip
    worked = [date(2026, 2, 13), date(2026, 2, 23), date(2026, 8, 22), date(2027, 2, 3), date(2027, 2, 11)]
    assert not any(CAL.is_working_day(d) for d in off)
    assert all(CAL.is_working_day(d) for d in worked)
    assert not CAL.is_working_day(date(2026, 8, 29))  # an ordinary Saturday


def test_worked_examples_of_the_issue():
    # Tue 1 Dec 2026 09:00, before the cut-off: start Tue 1 Dec; 3 working days after it are
    # Wed 2, Thu 3, Fri 4 -> due Fri 4 Dec 17:00
    assert CAL.deadline(vn(2026, 12, 1, 9), "3 working_days") == vn(2026, 12, 4, 17)
    # the same day at 16:00, after the cut-off: start Wed 2 Dec; Thu 3, Fri 4, Mon 7 -> Mon 7 Dec
    assert CAL.start_day(vn(2026, 12, 1, 16)) == date(2026, 12, 2)
    assert CAL.deadline(vn(2026, 12, 1, 16), "3 working_days") == vn(2026, 12, 7, 17)
    # Sat 5 Dec, 1 working day: start Mon 7 Dec; the working day after it is Tue 8 Dec
    assert CAL.start_day(vn(2026, 12, 5, 10)) == date(2026, 12, 7)
    assert CAL.deadline(vn(2026, 12, 5, 10), "1 working_days") == vn(2026, 12, 8, 17)


def test_one_working_day_is_later_than_same_day():
    # Tue 1 Dec 2026 09:00: same day = close on the start day Tue 1; 1 working day = Wed 2
    assert CAL.deadline(vn(2026, 12, 1, 9), "same_day") == vn(2026, 12, 1, 17)
    assert CAL.deadline(vn(2026, 12, 1, 9), "1 working_days") == vn(2026, 12, 2, 17)


def test_tet_2026():
    # Fri 13 Feb 09:00: start Fri 13; the next working day is Mon 23 Feb (Sat 14 - Sun 22 off)
    received = vn(2026, 2, 13, 9)
    assert CAL.deadline(received, "same_day") == vn(2026, 2, 13, 17)
    assert CAL.deadline(received, "1 working_days") == vn(2026, 2, 23, 17)
    # 2 days: Mon 23, Tue 24; 5 days: Mon 23 ... Fri 27
    assert CAL.deadline(received, "2 working_days") == vn(2026, 2, 24, 17)
    assert CAL.deadline(received, "5 working_days") == vn(2026, 2, 27, 17)
    # Thu 12 Feb 16:00, after the cut-off: start Fri 13; 1 day -> Mon 23
    assert CAL.deadline(vn(2026, 2, 12, 16), "1 working_days") == vn(2026, 2, 23, 17)
    # received during Tết (Wed 18 Feb): start Mon 23; 3 days: Tue 24, Wed 25, Thu 26
    assert CAL.start_day(vn(2026, 2, 18, 10)) == date(2026, 2, 23)
    assert CAL.deadline(vn(2026, 2, 18, 10), "3 working_days") == vn(2026, 2, 26, 17)


def test_tet_2026_hour_based_skips_the_holiday():
    # 16:00 Fri 13 Feb: 1 h left that day, 7 h more from 07:30 Mon 23 Feb -> 15:30 + 30 min = 16:00
    assert CAL.deadline(vn(2026, 2, 13, 16), "8 working_hours") == vn(2026, 2, 23, 16)


def test_tet_2027():
    # Wed 3 Feb 2027 14:00: start Wed 3; Thu 4 - Wed 10 off, so 1 day -> Thu 11 Feb;
    # 3 days: Thu 11, Fri 12, Mon 15
    assert CAL.deadline(vn(2027, 2, 3, 14), "same_day") == vn(2027, 2, 3, 17)
    assert CAL.deadline(vn(2027, 2, 3, 14), "1 working_days") == vn(2027, 2, 11, 17)
    assert CAL.deadline(vn(2027, 2, 3, 14), "3 working_days") == vn(2027, 2, 15, 17)
    # Wed 3 Feb at 15:00 is at the cut-off, so after it: start Thu 11; same day Thu 11, 1 day Fri 12
    assert CAL.start_day(vn(2027, 2, 3, 15)) == date(2027, 2, 11)
    assert CAL.deadline(vn(2027, 2, 3, 15), "same_day") == vn(2027, 2, 11, 17)
    assert CAL.deadline(vn(2027, 2, 3, 15), "1 working_days") == vn(2027, 2, 12, 17)


def test_national_day_2026_and_its_swapped_saturday():
    # Fri 21 Aug 09:00: start Fri 21; the first working day after it is the swapped Sat 22 Aug
    assert CAL.deadline(vn(2026, 8, 21, 9), "1 working_days") == vn(2026, 8, 22, 17)
    # Thu 20 Aug 10:00, 2 days: Fri 21, Sat 22 -> the Saturday is the 2nd working day; 3 days -> Mon 24
    assert CAL.deadline(vn(2026, 8, 20, 10), "2 working_days") == vn(2026, 8, 22, 17)
    assert CAL.deadline(vn(2026, 8, 20, 10), "3 working_days") == vn(2026, 8, 24, 17)
    # Fri 21 Aug 16:00, after the cut-off: the start day is the Saturday itself, which is not
    # counted, so 1 day -> Mon 24; same day -> Sat 22
    assert CAL.start_day(vn(2026, 8, 21, 16)) == date(2026, 8, 22)
    assert CAL.deadline(vn(2026, 8, 21, 16), "same_day") == vn(2026, 8, 22, 17)
    assert CAL.deadline(vn(2026, 8, 21, 16), "1 working_days") == vn(2026, 8, 24, 17)
    # Fri 28 Aug 10:00: Sat 29, Sun 30 weekend, Mon 31 (bridge), Tue 1, Wed 2 Sep off ->
    # 1 day is Thu 3 Sep, 2 days Fri 4 Sep
    assert CAL.deadline(vn(2026, 8, 28, 10), "1 working_days") == vn(2026, 9, 3, 17)
    assert CAL.deadline(vn(2026, 8, 28, 10), "2 working_days") == vn(2026, 9, 4, 17)
    # Sat 29 Aug: start Thu 3 Sep, 1 day -> Fri 4 Sep
    assert CAL.deadline(vn(2026, 8, 29, 9), "1 working_days") == vn(2026, 9, 4, 17)
    # hour-based: Fri 21 Aug 16:00 + 2 h = 16:00-17:00 Fri, 07:30-08:30 on the swapped Saturday
    assert CAL.deadline(vn(2026, 8, 21, 16), "2 working_hours") == vn(2026, 8, 22, 8, 30)


def test_national_day_2027():
    # Wed 1 Sep 2027 10:00: Thu 2, Fri 3 off -> 1 day is Mon 6 Sep
    assert CAL.deadline(vn(2027, 9, 1, 10), "1 working_days") == vn(2027, 9, 6, 17)


def test_vietnam_cultural_day_24_november():
    # 2026: Mon 23 Nov 10:00, start Mon 23; Tue 24 off -> 1 day is Wed 25 Nov
    assert CAL.deadline(vn(2026, 11, 23, 10), "1 working_days") == vn(2026, 11, 25, 17)
    # Mon 23 Nov 15:30, after the cut-off: start Wed 25; same day Wed 25, 1 day Thu 26
    assert CAL.start_day(vn(2026, 11, 23, 15, 30)) == date(2026, 11, 25)
    assert CAL.deadline(vn(2026, 11, 23, 15, 30), "same_day") == vn(2026, 11, 25, 17)
    assert CAL.deadline(vn(2026, 11, 23, 15, 30), "1 working_days") == vn(2026, 11, 26, 17)
    # 2027: Tue 23 Nov 09:00, 2 days: Wed 24 off -> Thu 25, Fri 26
    assert CAL.deadline(vn(2027, 11, 23, 9), "2 working_days") == vn(2027, 11, 26, 17)


def test_national_day_2024_and_2025():
    assert not CAL.is_working_day(date(2024, 9, 2))
    assert not CAL.is_working_day(date(2024, 9, 3))
    assert not CAL.is_working_day(date(2025, 9, 1))
    assert not CAL.is_working_day(date(2025, 9, 2))
    # 2025: Fri 2 May off, Sat 26 Apr worked
    assert not CAL.is_working_day(date(2025, 5, 2))
    assert CAL.is_working_day(date(2025, 4, 26))


def test_cutoff():
    # Mon 2 Mar 2026 (no holiday that week): 14:59 counts from Mon, 15:00 from Tue
    assert CAL.start_day(vn(2026, 3, 2, 14, 59)) == date(2026, 3, 2)
    assert CAL.start_day(vn(2026, 3, 2, 15, 0)) == date(2026, 3, 3)
    # 1 day from Mon -> Tue 3; from Tue -> Wed 4
    assert CAL.deadline(vn(2026, 3, 2, 9), "1 working_days") == vn(2026, 3, 3, 17)
    assert CAL.deadline(vn(2026, 3, 2, 16), "1 working_days") == vn(2026, 3, 4, 17)
    # Fri 6 Mar 15:30: start Mon 9; 2 days: Tue 10, Wed 11
    assert CAL.deadline(vn(2026, 3, 6, 15, 30), "2 working_days") == vn(2026, 3, 11, 17)
    # 08:30 UTC is 15:30 in Hanoi: after the cut-off
    assert CAL.start_day(utc(2026, 3, 2, 8, 30)) == date(2026, 3, 3)


def test_weekend_receipt_counts_from_monday():
    # Sat 7 / Sun 8 Mar: start Mon 9; 1 day -> Tue 10
    assert CAL.start_day(vn(2026, 3, 7, 9)) == date(2026, 3, 9)
    assert CAL.deadline(vn(2026, 3, 8, 9), "1 working_days") == vn(2026, 3, 10, 17)


def test_same_day():
    assert CAL.deadline(vn(2026, 3, 2, 9), "same_day") == vn(2026, 3, 2, 17)
    assert CAL.deadline(vn(2026, 3, 2, 15, 30), "same_day") == vn(2026, 3, 3, 17)
    assert CAL.deadline(vn(2026, 3, 7, 9), "same_day") == vn(2026, 3, 9, 17)


def test_hour_based_spans_lunch_break():
    # 10:30 + 2 h = 10:30-11:30 and 13:00-14:00
    assert CAL.deadline(vn(2026, 3, 2, 10, 30), "2 working_hours") == vn(2026, 3, 2, 14)
    # received during lunch: counts from 13:00
    assert CAL.deadline(vn(2026, 3, 2, 12), "1 working_hours") == vn(2026, 3, 2, 14)
    # ending exactly at the end of the morning session stays at 11:30
    assert CAL.deadline(vn(2026, 3, 2, 9, 30), "2 working_hours") == vn(2026, 3, 2, 11, 30)


def test_hour_based_overnight_and_weekend():
    # 16:00 Mon + 3 h = 1 h Mon + 2 h from 07:30 Tue
    assert CAL.deadline(vn(2026, 3, 2, 16), "3 working_hours") == vn(2026, 3, 3, 9, 30)
    # received at 18:00: counts from the next opening
    assert CAL.deadline(vn(2026, 3, 2, 18), "1 working_hours") == vn(2026, 3, 3, 8, 30)
    # received before opening
    assert CAL.deadline(vn(2026, 3, 3, 6), "8 working_hours") == vn(2026, 3, 3, 17)
    # Friday 16:30 + 1 h: 30 min Fri, 30 min Mon
    assert CAL.deadline(vn(2026, 3, 6, 16, 30), "1 working_hours") == vn(2026, 3, 9, 8)
    # the cut-off does not apply to hours
    assert CAL.deadline(vn(2026, 3, 2, 15, 30), "1 working_hours") == vn(2026, 3, 2, 16, 30)


def test_extra_day_off():
    cal = WorkingCalendar(extra_days_off=["2026-03-03"])
    assert not cal.is_working_day(date(2026, 3, 3))
    # Mon 2 Mar 09:00, 2 days: Tue 3 is off here -> Wed 4, Thu 5; the national calendar: Tue 3, Wed 4
    assert cal.deadline(vn(2026, 3, 2, 9), "2 working_days") == vn(2026, 3, 5, 17)
    assert CAL.deadline(vn(2026, 3, 2, 9), "2 working_days") == vn(2026, 3, 4, 17)
    # 16:00 Mon + 2 h: 1 h Mon, then 1 h from 07:30 Wed
    assert cal.deadline(vn(2026, 3, 2, 16), "2 working_hours") == vn(2026, 3, 4, 8, 30)


def test_extra_day_off_overrides_swapped_saturday():
    cal = WorkingCalendar(extra_days_off=[date(2026, 8, 22)])
    assert not cal.is_working_day(date(2026, 8, 22))
    assert cal.next_working_day(date(2026, 8, 21)) == date(2026, 8, 24)
    # after Fri 21 Aug: Mon 24 .. Fri 28 (5), then Thu 3 Sep (6)
    assert cal.add_working_days(date(2026, 8, 21), 6) == date(2026, 9, 3)


def test_extra_working_saturday():
    cal = WorkingCalendar(extra_working_days=[date(2026, 3, 7)])
    assert cal.is_working_day(date(2026, 3, 7))
    # Thu 5 Mar 09:00, 2 days: Fri 6, Sat 7 (worked here) -> Sat 7; nationally Fri 6, Mon 9
    assert cal.deadline(vn(2026, 3, 5, 9), "2 working_days") == vn(2026, 3, 7, 17)
    assert CAL.deadline(vn(2026, 3, 5, 9), "2 working_days") == vn(2026, 3, 9, 17)
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


def test_resume_day_based_moves_by_whole_working_days():
    # received Tue 1 Dec 2026 09:00, 3 working days: due Fri 4 Dec 17:00 (worked example)
    due = CAL.deadline(vn(2026, 12, 1, 9), "3 working_days")
    assert due == vn(2026, 12, 4, 17)
    # stopped Wed 2 Dec 10:00, resumed Mon 7 Dec 14:00: the days from the stop's to the
    # resumption's are Thu 3, Fri 4, Mon 7 = 3, so Fri 4 + 3 = Mon 7, Tue 8, Wed 9 -> Wed 9, 17:00
    assert CAL.resume(due, vn(2026, 12, 2, 10), vn(2026, 12, 7, 14), "3 working_days") == vn(2026, 12, 9, 17)
    # stopped and resumed within Wed 2 Dec: a partial day is not counted, nothing moves
    assert CAL.resume(due, vn(2026, 12, 2, 10), vn(2026, 12, 2, 16), "3 working_days") == due
    # stopped Wed 2 Dec 16:00, resumed Thu 3 Dec 08:00: one working day (Thu 3) -> Mon 7 Dec 17:00
    assert CAL.resume(due, vn(2026, 12, 2, 16), vn(2026, 12, 3, 8), "3 working_days") == vn(2026, 12, 7, 17)
    # stopped Wed 2 Dec 18:00 (after close, so it counts in Thu 3), resumed Thu 3 Dec 09:00: nothing
    assert CAL.resume(due, vn(2026, 12, 2, 18), vn(2026, 12, 3, 9), "3 working_days") == due
    # stopped Sat 5 Dec (counts in Mon 7) is after the due time: already late, it stays
    assert CAL.resume(due, vn(2026, 12, 5, 9), vn(2026, 12, 8, 9), "3 working_days") == due
    # across 24 Nov 2026: received Fri 20 Nov 09:00, 2 days: Mon 23, Wed 25 (Tue 24 off) -> Wed 25;
    # stopped Mon 23 10:00, resumed Wed 25 10:00: one working day (Wed 25) -> Thu 26 Nov 17:00
    due = CAL.deadline(vn(2026, 11, 20, 9), "2 working_days")
    assert due == vn(2026, 11, 25, 17)
    assert CAL.resume(due, vn(2026, 11, 23, 10), vn(2026, 11, 25, 10), "2 working_days") == vn(
        2026, 11, 26, 17
    )
    # same day moves the same way: due Tue 1 Dec 17:00; stopped Tue 10:00, resumed Wed 08:00 -> Wed 2
    due = CAL.deadline(vn(2026, 12, 1, 9), "same_day")
    assert CAL.resume(due, vn(2026, 12, 1, 10), vn(2026, 12, 2, 8), "same_day") == vn(2026, 12, 2, 17)


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
    # Mon 2 Mar 09:00: start Mon 2, 1 day -> Tue 3, closing at 17:30 here
    assert cal.deadline(vn(2026, 3, 2, 9), "1 working_days") == vn(2026, 3, 3, 17, 30)
    # Fri 6 Mar 09:00: Saturday is worked here -> Sat 7; Mon 9 09:00, 2 days: Tue 10 off -> Wed 11, Thu 12
    assert cal.deadline(vn(2026, 3, 6, 9), "1 working_days") == vn(2026, 3, 7, 17, 30)
    assert cal.deadline(vn(2026, 3, 9, 9), "2 working_days") == vn(2026, 3, 12, 17, 30)
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
    for _ in range(1000):  # the start day Mon 2 Mar is not counted
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
    for _ in range(duration.amount):  # the start day is not counted; same day has amount 0
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


@FAST
@given(received=RECEIPTS)
def test_one_working_day_is_always_later_than_same_day(received):
    same_day = CAL.deadline(received, Duration("same_day"))
    one_day = CAL.deadline(received, Duration("working_days", 1))
    assert one_day > same_day
    # and exactly one working day later: the next working day's close of office
    assert one_day.astimezone(VN).date() == next_working_day_oracle(same_day.astimezone(VN).date())
    assert one_day.astimezone(VN).time() == same_day.astimezone(VN).time() == time(17)


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
    assert CAL.resume(due, stopped, resumed, duration) == expected
    assert CAL.working_time_between(stopped, resumed) == k * CAL.day_length


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
