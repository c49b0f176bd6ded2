"""nameko dependencies for the plain-Python foundations: the unit map and the working calendar.

Both are loaded once at start from the service's settings and shared by its workers.
"""

from __future__ import annotations

from nameko.extensions import DependencyProvider

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
