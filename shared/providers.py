"""nameko extensions for the plain-Python foundations: the unit map, the working calendar, and timers
whose interval is a setting.

Each is loaded once at start from the service's settings and shared by its workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar


class Units(DependencyProvider):
    """``self.units``: the administrative-unit hierarchy (``UNITS_FILE``, or today's national map)."""

    def setup(self) -> None:
        self.registry = UnitRegistry.from_settings(self.container.config.get("UNITS_FILE") or None)

    def get_dependency(self, worker_ctx) -> UnitRegistry:
        return self.registry


class Calendar(DependencyProvider):
    """``self.calendar``: the working-day calendar (``CALENDAR`` settings, docs/domain.md §7 defaults)."""

    def setup(self) -> None:
        self.calendar = WorkingCalendar.from_settings(self.container.config.get("CALENDAR") or None)

    def get_dependency(self, worker_ctx) -> WorkingCalendar:
        return self.calendar


def setting_timer(seconds: Callable[[dict], float], default: float) -> Any:
    """A nameko timer decorator whose interval is read from the service's settings at start, not at
    import (``default`` until then): ``watch_timer = setting_timer(lambda c: settings(c).watch, 30.0)``."""

    class SettingTimer(Timer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(interval=default, **kwargs)

        def setup(self) -> None:
            self.interval = seconds(self.container.config)

    return SettingTimer.decorator
