"""The dossier service's own settings (checked at start) and the overdue watch's timer.

``SUPPLEMENT_ONCE`` (default true): a second supplement request for a dossier is refused.
``DUE_SOON_HOURS`` (default 8, one working day): ``dossier.due_soon`` when at most this much office
time is left before the appointment (half-way instead when the whole duration is shorter than twice it).
``OVERDUE_WATCH_SECONDS`` (default 60): how often the watch looks; ``OVERDUE_WATCH_BATCH`` (default
500): dossiers it handles per look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.dossier.domain.model import Rules
from services.dossier.watch_backoff import WatchBackoff
from shared.config import Setting, validate


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _positive(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0 or number != float(value):
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return number


SETTINGS = (
    Setting("SUPPLEMENT_ONCE", _boolean, required=False, description="one supplement request per dossier"),
    Setting(
        "DUE_SOON_HOURS", _positive, required=False, description="working hours of warning before a due time"
    ),
    Setting(
        "OVERDUE_WATCH_SECONDS", _positive, required=False, description="how often the overdue watch runs"
    ),
    Setting(
        "OVERDUE_WATCH_BATCH", _positive_int, required=False, description="dossiers per overdue-watch run"
    ),
)
DEFAULTS = {
    "SUPPLEMENT_ONCE": True,
    "DUE_SOON_HOURS": 8.0,
    "OVERDUE_WATCH_SECONDS": 60.0,
    "OVERDUE_WATCH_BATCH": 500,
}


@dataclass(frozen=True)
class LifecycleSettings:
    rules: Rules
    due_soon_lead: timedelta
    watch_seconds: float
    watch_batch: int


def lifecycle_settings(config: dict[str, Any]) -> LifecycleSettings:
    """Parse the dossier settings; ConfigurationError names each one at fault."""
    parsed = validate(config, SETTINGS)
    values = {key: DEFAULTS[key] if parsed[key] is None else parsed[key] for key in DEFAULTS}
    return LifecycleSettings(
        rules=Rules(supplement_once=values["SUPPLEMENT_ONCE"]),
        due_soon_lead=timedelta(hours=values["DUE_SOON_HOURS"]),
        watch_seconds=values["OVERDUE_WATCH_SECONDS"],
        watch_batch=values["OVERDUE_WATCH_BATCH"],
    )


class Lifecycle(DependencyProvider):
    """``self.lifecycle``: the configured rules and watch settings."""

    def setup(self) -> None:
        self.settings = lifecycle_settings(self.container.config)

    def get_dependency(self, worker_ctx) -> LifecycleSettings:
        return self.settings


class WatchBackoffProvider(DependencyProvider):
    """``self.watch_backoff``: the overdue watch's per-container backoff for failing dossiers."""

    def setup(self) -> None:
        interval = lifecycle_settings(self.container.config).watch_seconds
        self.backoff = WatchBackoff(timedelta(seconds=interval))

    def get_dependency(self, worker_ctx) -> WatchBackoff:
        return self.backoff


class WatchTimer(Timer):
    """nameko's timer with its interval from ``OVERDUE_WATCH_SECONDS`` (read at start, not import)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(interval=DEFAULTS["OVERDUE_WATCH_SECONDS"], **kwargs)

    def setup(self) -> None:
        self.interval = lifecycle_settings(self.container.config).watch_seconds


watch_timer = WatchTimer.decorator
