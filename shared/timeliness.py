"""The one timeliness rule of motcua, used by the dossier and the metrics services alike.

docs/domain.md §8 Postal flows (Decision 45/2016/QĐ-TTg) and issue 7:

* **Day-based and same-day durations** compare Vietnam-local dates: decided before the due date is
  ``early``, on it (at any hour, 17:30 included) ``on_time``, after it ``late``.
* **Hour-based durations**: decided by the due instant is ``on_time``, and ``early`` when the decision
  falls on an earlier date than the due instant; after the due instant it is ``late``.
* A duration unit that is not known (``None``: events that do not say) is judged by dates.

The instant judged against is the *original* appointment: it moves with clock stops and completed
supplements, never with a Form 04 apology (an apologised-for dossier stays late, docs/domain.md §6).

Overdue (for dossiers still in process) is judged by the instant: past the original due time, with
the clock running, or already past it when the clock stopped.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from shared.vocabulary import TIMELINESS, DurationUnit

EARLY, ON_TIME, LATE = TIMELINESS
_HOURS = DurationUnit.WORKING_HOURS


def judge_timeliness(
    decided_at: datetime, due_at: datetime, duration_unit: str | None, timezone: tzinfo
) -> str:
    """``early`` / ``on_time`` / ``late`` of something finished at ``decided_at`` and due at ``due_at``.

    ``duration_unit`` is the unit of the procedure's processing time (``working_days``,
    ``working_hours``, ``same_day``); ``timezone`` is the office's (Asia/Ho_Chi_Minh).
    """
    decided, due = decided_at.astimezone(timezone), due_at.astimezone(timezone)
    if duration_unit == _HOURS and decided_at > due_at:
        return LATE
    if decided.date() < due.date():
        return EARLY
    if decided.date() == due.date():
        return ON_TIME
    return LATE


def is_overdue(
    original_due_at: datetime | None, now: datetime, clock_stopped_at: datetime | None = None
) -> bool:
    """Past the original appointment now, or already past it when the clock stopped."""
    if original_due_at is None:
        return False
    return (clock_stopped_at or now) > original_due_at
