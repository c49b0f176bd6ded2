"""Deadline arithmetic of the lifecycle on top of the working calendar: plain functions, no state.

The calendar (:class:`shared.workcalendar.WorkingCalendar`) knows office hours; this module knows
what the lifecycle asks of it: the due time of each step of a procedure's plan, whether something
finished early, on time or late, and when to warn that a due time is near.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.vocabulary import DurationUnit, Timeliness
from shared.workcalendar import Duration, WorkingCalendar


def step_due_times(
    calendar: WorkingCalendar, filed_at: datetime, duration: str, allotments: Sequence[str]
) -> list[datetime]:
    """Due time of each step, in sequence: step i is due when the allotments up to i are used.

    Counting cumulative allotments from the filing time (rather than chaining step after step)
    keeps the last step's due equal to the dossier's appointment: a "same_day" step inside a
    day-based plan uses no whole day, so it ends with the day of the step before it.
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


def judge(calendar: WorkingCalendar, finished_at: datetime, due_at: datetime) -> Timeliness:
    """Timeliness on Vietnam local dates: before the due day early, on it (by close) on time, else late."""
    zone = calendar.timezone
    finished, due = finished_at.astimezone(zone), due_at.astimezone(zone)
    if finished.date() < due.date():
        return Timeliness.EARLY
    close = datetime.combine(due.date(), calendar.sessions[-1][1], tzinfo=zone)
    if finished.date() == due.date() and (finished_at <= due_at or finished <= close):
        return Timeliness.ON_TIME
    return Timeliness.LATE


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
