"""The working-day calendar: the one place that knows when offices are open.

Procedures set their processing time in working days (ngày làm việc), in working hours, or as
"trong ngày" (same day).  This module turns a receipt instant and such a duration into a due
instant, and measures office time between instants (for stopped clocks and for reports).

Rules and the choices made where the decree is silent:

* Every datetime passed in must be timezone-aware (any zone); naive ones raise ``ValueError``.
  Every datetime returned is in UTC.  Office hours are read on the office's wall clock.
* A working day is a weekday listed in ``workdays`` that is not a public holiday of
  ``holidays.VN`` (observed days included).  Swapped days come from the same package: a bridge
  day given off is a holiday there, and the Saturday worked in exchange (its
  ``weekend_workdays``) is a working day here.  Local overrides win over both:
  ``extra_working_days`` are always worked, ``extra_days_off`` never are.
* Office sessions are closed intervals: 07:30 and 17:00 are both inside office hours, so a
  deadline at close of office is still "within office hours".
* Day-based (Civil Code 2015, Art. 147(1): a period in days does not count its first day):
  ``start_day`` is the receipt day if it is a working day and the receipt is strictly before
  the cut-off, otherwise the next working day.  The due instant is close of office (end of the
  last session) on the N-th working day *after* the start day, so "1 working day" is always
  later than "same day".  A swapped Saturday is a working day like any other: a due date falls
  on it only when it is the N-th working day.
* Same day: close of office on ``start_day`` (after the cut-off it becomes the next working day).
* Hour-based: N hours of office time from the receipt instant; received outside office hours,
  the count starts at the next opening.  The cut-off does not apply.  A due instant that falls
  exactly on a session boundary is the end of the earlier session (11:30, not 13:00).
* ``resume``: if the clock was stopped at or after the deadline, the dossier was already late
  and keeps its deadline.  Otherwise, for an hour-based duration the office time left is added
  from the resumption instant.  For a day-based or same-day duration the clock stands still in
  whole working days: the due date moves by ``k`` working days and keeps its time of day (close
  of office stays close of office), where ``k`` counts the working days from the day of the stop
  to the day of the resumption.  The day of a moment is its date when that is a working day and
  the moment is not after close of office; otherwise it is the next working day.  So a stop and
  resumption within one working day moves nothing (partial days are not counted); stopped on
  Monday and resumed on Thursday moves the due date by three working days, whatever the hours;
  stopped on Friday after close and resumed on Monday moves nothing.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from shared.vocabulary import DURATION_UNITS

WORKING_DAYS, WORKING_HOURS, SAME_DAY = DURATION_UNITS

_MICROS_PER_SECOND = 1_000_000
_LAST_SUPPORTED_YEAR = 9998  # date.max is in 9999; keep one year of room for look-ahead
_DURATION_TEXT = re.compile(r"^\s*(\d+)\s+([a-z_]+)\s*$")


@dataclass(frozen=True)
class Duration:
    """A processing time as written in a procedure: N working days, N working hours, same day."""

    unit: str
    amount: int = 0

    UNITS: ClassVar[tuple[str, ...]] = DURATION_UNITS

    def __post_init__(self) -> None:
        if self.unit not in self.UNITS:
            raise ValueError(f"unknown duration unit {self.unit!r}; expected one of {self.UNITS}")
        # bool is an int subclass; True working days is a bug, not a duration
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise ValueError(f"duration amount must be an integer, got {self.amount!r}")
        if self.unit == SAME_DAY and self.amount != 0:
            raise ValueError(f"a same_day duration takes no amount, got {self.amount}")
        if self.unit != SAME_DAY and self.amount <= 0:
            raise ValueError(f"a {self.unit} duration needs a positive amount, got {self.amount}")

    @classmethod
    def parse(cls, value: DurationLike) -> Duration:
        """Read a Duration, a ``{"unit", "amount"}`` dict, or text like ``"10 working_days"``."""
        if isinstance(value, Duration):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"unit", "amount"}
            if unknown:
                raise ValueError(f"unknown duration key(s): {sorted(unknown)}")
            if "unit" not in value:
                raise ValueError("a duration needs a 'unit'")
            return cls(unit=value["unit"], amount=value.get("amount", 0))
        if isinstance(value, str):
            text = value.strip().lower()
            if text == SAME_DAY:
                return cls(SAME_DAY)
            match = _DURATION_TEXT.match(text)
            if not match:
                raise ValueError(
                    f"cannot read duration {value!r}; expected e.g. '10 working_days', "
                    "'8 working_hours' or 'same_day'"
                )
            return cls(unit=match.group(2), amount=int(match.group(1)))
        raise ValueError(f"cannot read a duration from {type(value).__name__}")

    def __str__(self) -> str:
        return SAME_DAY if self.unit == SAME_DAY else f"{self.amount} {self.unit}"


DurationLike = Duration | Mapping[str, Any] | str


@lru_cache(maxsize=512)
def _national_days(country: str, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Public holidays and swapped-in working days of one year, built once per process."""
    calendar = holidays.country_holidays(country, years=year)
    days_off = frozenset(calendar.keys())
    # weekend_workdays also carries cross-year swaps of other years; keep only this year's
    worked = frozenset(day for day in calendar.weekend_workdays if day.year == year)
    return days_off, worked


def _parse_time(value: str | time, what: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"{what}: expected a time like '07:30', got {value!r}") from None


def _parse_session(value: str | Sequence[str | time]) -> tuple[time, time]:
    if isinstance(value, str):
        parts = value.split("-")
        if len(parts) != 2:
            raise ValueError(f"session: expected 'HH:MM-HH:MM', got {value!r}")
    else:
        parts = list(value)
        if len(parts) != 2:
            raise ValueError(f"session: expected a (start, end) pair, got {value!r}")
    return _parse_time(parts[0], "session start"), _parse_time(parts[1], "session end")


def _parse_date(value: date | str, what: str) -> date:
    # a datetime would silently never match a date in the sets below
    if isinstance(value, datetime):
        raise ValueError(f"{what}: expected a date, got the datetime {value!r}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"{what}: expected an ISO date like '2026-02-16', got {value!r}") from None


def _micros_of_day(value: time) -> int:
    seconds = (value.hour * 60 + value.minute) * 60 + value.second
    return seconds * _MICROS_PER_SECOND + value.microsecond


def _time_of_micros(micros: int) -> time:
    seconds, micro = divmod(micros, _MICROS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return time(hour, minute, second, micro)


def _micros(amount: timedelta) -> int:
    return (amount.days * 86_400 + amount.seconds) * _MICROS_PER_SECOND + amount.microseconds


class WorkingCalendar:
    """Office days and hours of a receiving unit, and the deadlines that follow from them."""

    SETTINGS_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "timezone",
            "sessions",
            "workdays",
            "cutoff",
            "extra_days_off",
            "extra_working_days",
            "country",
        }
    )

    def __init__(
        self,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        sessions: Iterable[str | Sequence[str | time]] = (("07:30", "11:30"), ("13:00", "17:00")),
        workdays: Iterable[int] = (0, 1, 2, 3, 4),
        cutoff: str | time = "15:00",
        extra_days_off: Iterable[date | str] = (),
        extra_working_days: Iterable[date | str] = (),
        country: str = "VN",
    ) -> None:
        try:
            self.timezone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"timezone: unknown zone {timezone!r}") from None

        self.sessions: tuple[tuple[time, time], ...] = tuple(_parse_session(session) for session in sessions)
        if not self.sessions:
            raise ValueError("sessions: at least one office session is needed")
        bounds = [(_micros_of_day(s), _micros_of_day(e)) for s, e in self.sessions]
        if any(start >= end for start, end in bounds):
            raise ValueError(f"sessions: {self.sessions} has a session ending before it starts")
        if any(later < end for (_, end), (later, _) in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"sessions: {self.sessions} must be in order and not overlap")
        self._bounds = tuple(bounds)
        self._day_micros = sum(end - start for start, end in bounds)

        self.workdays = frozenset(workdays)
        if not self.workdays or not self.workdays <= set(range(7)):
            raise ValueError(f"workdays: expected weekday numbers 0-6 (Monday=0), got {workdays!r}")
        self.cutoff = _parse_time(cutoff, "cutoff")
        self._cutoff_micros = _micros_of_day(self.cutoff)
        self.extra_days_off = frozenset(_parse_date(d, "extra_days_off") for d in extra_days_off)
        self.extra_working_days = frozenset(_parse_date(d, "extra_working_days") for d in extra_working_days)
        clash = self.extra_days_off & self.extra_working_days
        if clash:
            raise ValueError(f"dates both off and worked: {sorted(clash)}")
        self.country = country
        try:
            _national_days(country, date.today().year)  # fail now on an unknown country
        except NotImplementedError:
            raise ValueError(f"country: no public holidays known for {country!r}") from None

        # ordinals of all working days in [_first_year, _last_year], for O(log n) day arithmetic
        self._ordinals: list[int] = []
        self._first_year = self._last_year = 0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> WorkingCalendar:
        """Build from the ``calendar`` block of a service's config; missing keys keep defaults."""
        settings = dict(settings or {})
        for key in settings:
            if key not in cls.SETTINGS_KEYS:
                raise ValueError(f"unknown calendar setting {key!r}; known: {sorted(cls.SETTINGS_KEYS)}")
        return cls(**settings)

    @property
    def day_length(self) -> timedelta:
        """Office time in one working day (8 hours by default)."""
        return timedelta(microseconds=self._day_micros)

    # --- days -------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """True when the office is open on ``day``."""
        day = _parse_date(day, "day")
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off:
            return False
        days_off, swapped_in = _national_days(self.country, day.year)
        if day in swapped_in:
            return True
        return day not in days_off and day.weekday() in self.workdays

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        return self.add_working_days(day, 1)

    def add_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day strictly after ``day`` (``day`` need not be worked)."""
        day = _parse_date(day, "day")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self._cover(day.year, day.year)
        index = bisect_left(self._ordinals, day.toordinal() + 1) + count - 1
        return date.fromordinal(self._ordinal_at(index))

    def start_day(self, received_at: datetime) -> date:
        """The day a day-based duration counts from (not itself counted); see the module docstring."""
        local = self._local(received_at)
        day = local.date()
        if self.is_working_day(day) and _micros_of_day(local.time()) < self._cutoff_micros:
            return day
        return self.next_working_day(day)

    # --- instants ---------------------------------------------------------------------------

    def is_working_time(self, moment: datetime) -> bool:
        """True inside an office session (ends included) on a working day."""
        local = self._local(moment)
        clock = _micros_of_day(local.time())
        return self.is_working_day(local.date()) and any(start <= clock <= end for start, end in self._bounds)

    def deadline(self, received_at: datetime, duration: DurationLike) -> datetime:
        """The due instant (UTC) of a dossier received at ``received_at``."""
        duration = Duration.parse(duration)
        if duration.unit == WORKING_HOURS:
            return self.add_working_time(received_at, timedelta(hours=duration.amount))
        first = self.start_day(received_at)
        if duration.unit == SAME_DAY:
            return self._close_of_office(first)
        # the start day is not counted: the due date is the N-th working day after it
        return self._close_of_office(self.add_working_days(first, duration.amount))

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """``start`` advanced by ``amount`` of office time, in UTC."""
        micros = _micros(amount)
        if micros < 0:
            raise ValueError(f"amount must not be negative, got {amount}")
        local = self._local(start)
        if micros == 0:
            return local.astimezone(UTC)
        day = local.date()
        if self.is_working_day(day):
            total = self._office_offset(local) + micros
        else:
            day, total = self.next_working_day(day), micros
        # offsets run over (0, day length], so a full day ends at close, not at next opening
        days_ahead, offset = divmod(total - 1, self._day_micros)
        if days_ahead:
            day = self.add_working_days(day, days_ahead)
        return self._at_offset(day, offset + 1)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Office time from ``start`` to ``end``; zero when ``end`` is not after ``start``."""
        local_start, local_end = self._local(start), self._local(end)
        if local_end <= local_start:
            return timedelta(0)
        # cover both years first: growing the index backwards shifts every position in it
        self._cover(local_start.year, local_end.year)
        return timedelta(microseconds=self._office_clock(end) - self._office_clock(start))

    def resume(
        self,
        deadline: datetime,
        stopped_at: datetime,
        resumed_at: datetime,
        duration: DurationLike | None = None,
    ) -> datetime:
        """The deadline after the clock stood still from ``stopped_at`` to ``resumed_at``.

        ``duration`` is the processing time the deadline was counted from; day-based and same-day
        deadlines move in whole working days (see the module docstring), hour-based ones (and
        ``None``) by the office time that was left.
        """
        if self._local(resumed_at) < self._local(stopped_at):
            raise ValueError(f"resumed_at {resumed_at} is before stopped_at {stopped_at}")
        if self._local(stopped_at) >= self._local(deadline):
            return deadline.astimezone(UTC)
        if duration is None or Duration.parse(duration).unit == WORKING_HOURS:
            return self.add_working_time(resumed_at, self.working_time_between(stopped_at, deadline))
        stop_day, resume_day = self._counted_day(stopped_at), self._counted_day(resumed_at)
        self._cover(stop_day.year, resume_day.year)
        shift = bisect_left(self._ordinals, resume_day.toordinal()) - bisect_left(
            self._ordinals, stop_day.toordinal()
        )
        if shift == 0:
            return deadline.astimezone(UTC)
        local = self._local(deadline)
        day = self.add_working_days(local.date(), shift)
        return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=self.timezone).astimezone(
            UTC
        )

    # --- internals --------------------------------------------------------------------------

    def _local(self, moment: datetime) -> datetime:
        if not isinstance(moment, datetime):
            raise ValueError(f"expected a datetime, got {moment!r}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment} - pass a timezone-aware one")
        return moment.astimezone(self.timezone)

    def _counted_day(self, moment: datetime) -> date:
        """The working day a moment counts in: its own, or the next one after close or on a day off."""
        local = self._local(moment)
        day = local.date()
        close = _micros_of_day(self.sessions[-1][1])
        if self.is_working_day(day) and _micros_of_day(local.time()) <= close:
            return day
        return self.next_working_day(day)

    def _office_offset(self, local: datetime) -> int:
        """Office time already elapsed on ``local``'s day at ``local``'s clock time."""
        clock = _micros_of_day(local.time())
        elapsed = 0
        for start, end in self._bounds:
            if clock <= start:
                return elapsed
            if clock < end:
                return elapsed + clock - start
            elapsed += end - start
        return elapsed

    def _at_offset(self, day: date, offset: int) -> datetime:
        """The instant on ``day`` when ``offset`` of office time has elapsed (0 < offset)."""
        elapsed = 0
        for start, end in self._bounds:
            if offset <= elapsed + end - start:
                clock = _time_of_micros(start + offset - elapsed)
                return datetime.combine(day, clock, tzinfo=self.timezone).astimezone(UTC)
            elapsed += end - start
        raise ValueError(f"offset {offset} exceeds one working day")

    def _close_of_office(self, day: date) -> datetime:
        return datetime.combine(day, self.sessions[-1][1], tzinfo=self.timezone).astimezone(UTC)

    def _office_clock(self, moment: datetime) -> int:
        """Office time from an arbitrary origin to ``moment``; only differences are meaningful."""
        local = self._local(moment)
        day = local.date()
        # a day off contributes nothing: its instants sit at the next working day's opening
        worked_before = bisect_left(self._ordinals, day.toordinal())  # caller covered the year
        today = self._office_offset(local) if self.is_working_day(day) else 0
        return worked_before * self._day_micros + today

    def _ordinal_at(self, index: int) -> int:
        while index >= len(self._ordinals):
            # about 250 working days a year, so this over-asks slightly and rarely loops
            missing_years = (index - len(self._ordinals)) // 200 + 1
            if self._last_year + missing_years > _LAST_SUPPORTED_YEAR:
                raise ValueError("deadline falls beyond the supported calendar range")
            self._cover(self._first_year, self._last_year + missing_years)
        return self._ordinals[index]

    def _cover(self, first_year: int, last_year: int) -> None:
        """Make sure the working-day index spans ``first_year``..``last_year``."""
        if not self._last_year:
            # a little headroom on both sides saves rebuilds for nearby dates
            first_year, last_year = max(first_year - 1, 1), min(last_year + 2, _LAST_SUPPORTED_YEAR)
            ordinals = self._working_ordinals(first_year, last_year)
        elif first_year >= self._first_year and last_year <= self._last_year:
            return
        else:
            first_year = min(first_year, self._first_year)
            last_year = max(last_year, self._last_year)
            ordinals = (
                self._working_ordinals(first_year, self._first_year - 1)
                + self._ordinals
                + self._working_ordinals(self._last_year + 1, last_year)
            )
        # swap in a finished list so a concurrent reader never sees a half-built index
        self._ordinals, self._first_year, self._last_year = ordinals, first_year, last_year

    def _working_ordinals(self, first_year: int, last_year: int) -> list[int]:
        ordinals: list[int] = []
        for year in range(first_year, last_year + 1):
            days_off, swapped_in = _national_days(self.country, year)
            # same precedence as is_working_day: local overrides first, then the national swaps
            worked = {
                d.toordinal()
                for d in (swapped_in - self.extra_days_off) | self.extra_working_days
                if d.year == year
            }
            off = {d.toordinal() for d in days_off | self.extra_days_off if d.year == year}
            start = date(year, 1, 1).toordinal()
            weekday = date(year, 1, 1).weekday()
            for n in range(start, date(year + 1, 1, 1).toordinal()):
                if n in worked or (weekday in self.workdays and n not in off):
                    ordinals.append(n)
                weekday = (weekday + 1) % 7
        return ordinals
