"""The dossier service's own settings (parsed, checked and defaulted at start) and the watch's timer.

``SUPPLEMENT_ONCE``: a second supplement request for a dossier is refused.
``DUE_SOON_HOURS`` (one working day): ``dossier.due_soon`` when at most this much office time is left
before the appointment (half-way instead when the whole duration is shorter than twice it).
``OVERDUE_WATCH_SECONDS``: how often the watch looks; ``OVERDUE_WATCH_BATCH``: dossiers per look.
The defaults are on each :class:`~shared.config.Setting` below, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.dossier import catalogue, catalogue_files
from services.dossier.domain.model import Rules
from services.dossier.watch_backoff import WatchBackoff
from shared.config import Setting, boolean, positive, positive_int, validate

WATCH_SECONDS = Setting(
    "OVERDUE_WATCH_SECONDS", positive, default=60.0, description="how often the overdue watch runs"
)
SETTINGS = (
    Setting("SUPPLEMENT_ONCE", boolean, default=True, description="one supplement request per dossier"),
    Setting(
        "DUE_SOON_HOURS", positive, default=8.0, description="working hours of warning before a due time"
    ),
    WATCH_SECONDS,
    Setting("OVERDUE_WATCH_BATCH", positive_int, default=500, description="dossiers per overdue-watch run"),
)


@dataclass(frozen=True)
class LifecycleSettings:
    rules: Rules
    due_soon_lead: timedelta
    watch_seconds: float
    watch_batch: int


def lifecycle_settings(config: dict[str, Any]) -> LifecycleSettings:
    """Parse the dossier settings; ConfigurationError names each one at fault."""
    values = validate(config, SETTINGS)
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
        super().__init__(interval=WATCH_SECONDS.default, **kwargs)

    def setup(self) -> None:
        self.interval = lifecycle_settings(self.container.config).watch_seconds


watch_timer = WatchTimer.decorator


@cache
def _shipped_catalogue() -> catalogue.Catalogue:
    # Read and checked once per process: the procedure files ship with the code.
    return catalogue_files.load_catalogue()


class Catalogue(DependencyProvider):
    """``self.catalogue``: the procedure catalogue (services/dossier/procedures), loaded at start."""

    def setup(self) -> None:
        self.catalogue = _shipped_catalogue()

    def get_dependency(self, worker_ctx) -> catalogue.Catalogue:
        return self.catalogue
