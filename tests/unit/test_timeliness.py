"""The one timeliness rule (issue 7, item 2), written out from docs/domain.md §10 and the issue, by hand."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import services.dossier.domain.timing as dossier_timing
import services.metrics.projection as metrics_projection
from shared.timeliness import EARLY, LATE, ON_TIME, is_overdue, judge_timeliness

VN = ZoneInfo("Asia/Ho_Chi_Minh")
# A day-based appointment: close of office on Thu 5 Mar 2026 (10:00 UTC)
DAY_DUE = datetime(2026, 3, 5, 17, tzinfo=VN)
# An hour-based one: Thu 5 Mar 2026 at 10:30 local
HOUR_DUE = datetime(2026, 3, 5, 10, 30, tzinfo=VN)


@pytest.mark.parametrize("unit", ["working_days", "same_day", None])
@pytest.mark.parametrize(
    ("decided", "expected"),
    [
        (datetime(2026, 3, 4, 23, 59, tzinfo=VN), EARLY),  # the day before the due date
        (datetime(2026, 3, 5, 0, 0, tzinfo=VN), ON_TIME),  # the due date, at midnight
        (datetime(2026, 3, 5, 16, 59, tzinfo=VN), ON_TIME),
        (datetime(2026, 3, 5, 17, 0, tzinfo=VN), ON_TIME),  # close of office
        (datetime(2026, 3, 5, 17, 30, tzinfo=VN), ON_TIME),  # after close, still the due date
        (datetime(2026, 3, 5, 23, 59, tzinfo=VN), ON_TIME),
        (datetime(2026, 3, 6, 0, 0, tzinfo=VN), LATE),  # the next date (still 5 March in UTC)
    ],
)
def test_day_based_compares_vietnam_local_dates(unit, decided, expected):
    assert judge_timeliness(decided.astimezone(UTC), DAY_DUE.astimezone(UTC), unit, VN) == expected


@pytest.mark.parametrize(
    ("decided", "expected"),
    [
        (datetime(2026, 3, 4, 16, 0, tzinfo=VN), EARLY),  # an earlier date
        (datetime(2026, 3, 5, 7, 30, tzinfo=VN), ON_TIME),  # the due date, before the due instant
        (datetime(2026, 3, 5, 10, 30, tzinfo=VN), ON_TIME),  # exactly at the due instant
        (datetime(2026, 3, 5, 10, 31, tzinfo=VN), LATE),  # after it, though on the same date
        (datetime(2026, 3, 6, 8, 0, tzinfo=VN), LATE),
    ],
)
def test_hour_based_judges_by_the_due_instant(decided, expected):
    assert judge_timeliness(decided.astimezone(UTC), HOUR_DUE, "working_hours", VN) == expected


def test_overdue_is_strictly_after_the_original_appointment():
    assert not is_overdue(DAY_DUE, DAY_DUE)
    assert is_overdue(DAY_DUE, datetime(2026, 3, 5, 17, 0, 1, tzinfo=VN))
    # stopped before the due time: not overdue however long the citizen takes
    assert not is_overdue(DAY_DUE, datetime(2026, 4, 1, tzinfo=VN), datetime(2026, 3, 5, 9, tzinfo=VN))
    assert is_overdue(DAY_DUE, datetime(2026, 4, 1, tzinfo=VN), datetime(2026, 3, 6, 9, tzinfo=VN))
    assert not is_overdue(None, datetime(2026, 4, 1, tzinfo=VN))


def test_there_is_one_copy_of_the_rule():
    # the dossier service's judge and the metrics service's judge_timeliness are gone
    assert not hasattr(dossier_timing, "judge")
    assert metrics_projection.judge_timeliness is judge_timeliness
