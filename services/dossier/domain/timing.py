"""Deadline arithmetic of the lifecycle on top of the working calendar: plain functions, no state.

The calendar (:class:`shared.workcalendar.WorkingCalendar`) knows office hours; this module knows
what the lifecycle asks of it: the due time of each step of a procedure's plan, and when to warn that
a due time is near. Timeliness (early / on time / late) is judged in :mod:`shared.timeliness`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.vocabulary import DurationUnit
from shared.workcalendar import Duration, WorkingCalendar


def step_due_times(
    calendar: WorkingCalendar, filed_at: datetime, duration: str, allotments: Sequence[str]
) -> list[datetime]:
    """Due time of each step, in sequence: step i is due when the allotments up to i are used.

    Each step's allotment counts like any day-based period, from the previous step's due day
    without counting that day (Civil Code 2015, Art. 147(1)); that is the same as counting the
    allotments used so far from the filing time, which is how it is computed, so the last step's
    due is the dossier's appointment. A "same_day" step inside a day-based plan uses no whole day:
    it ends with the day of the step before it (the first one: on the start day).
    """
    total = Duration.parse(duration)
    dues: list[datetime] = []
    used = 0
    for allotment in allotments:
        used += Duration.parse(allotment).amount
        if total.unit == DurationUnit.SAME_DAY or used == 0:
            dues.append(calendar.deadline(filed_at, Duration(DurationUnit.SAME_DAY)))
        else:
            dues.append(calendar.deadline(filed_at, Duration(total.unit, used)))
    return dues


def warning_time(
    calendar: WorkingCalendar, filed_at: datetime, due_at: datetime, lead: timedelta
) -> datetime:
    """When to warn that ``due_at`` is near: ``lead`` of office time before it.

    When the whole duration is shorter than twice the lead (same-day procedures), the warning
    comes half-way instead, so that it never fires at the moment of receipt.
    """
    available = calendar.working_time_between(filed_at, due_at)
    if available <= 2 * lead:
        return calendar.add_working_time(filed_at, available / 2)
    return _office_time_before(calendar, due_at, lead)


def _office_time_before(calendar: WorkingCalendar, due_at: datetime, lead: timedelta) -> datetime:
    """The earliest instant from which at most ``lead`` of office time remains until ``due_at``."""
    # The calendar only counts forwards, so search: office time left shrinks as the instant moves on.
    span = timedelta(days=lead / calendar.day_length * 2 + 14)
    low = due_at - span
    while calendar.working_time_between(low, due_at) <= lead:
        span *= 2
        low = due_at - span
    high = due_at
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if calendar.working_time_between(middle, due_at) <= lead:
            high = middle
        else:
            low = middle
    return high
