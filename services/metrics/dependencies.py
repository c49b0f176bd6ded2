"""nameko dependencies of the metrics service: its settings, the projector, the renderer.

The projector writes a batch of consumed events in one transaction: the consumer is an
``@event_batch_consumer`` (shared/consumer.py), so one worker gets up to a few hundred events at once
instead of one worker per message and a transaction per event. If a batch fails, the entrypoint
hands its events over again one per call, so a poison event is retried and dead-lettered alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session

from services.metrics import service_layer
from services.metrics.exposition import SCORECARD_DEPTH, SLA_EXPORTER, SlaCollector, UnitLabels, render
from shared.config import Setting, positive, positive_int, validate
from shared.db import create_engine
from shared.events import Event
from shared.leadership import Leadership, job_key
from shared.transient import describe, is_transient
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar

log = logging.getLogger(__name__)
# The advisory lock of the replica that exports the SLA families (exposition.py).
SLA_EXPORTER_LOCK = job_key("SLA exporter", "metrics")

SETTINGS = (
    Setting(
        "METRICS_UNIT_DEPTH", positive_int, default=2, description="depth of the 'unit' label (1 = province)"
    ),
    Setting(
        "METRICS_SCORECARD_DEPTH",
        positive_int,
        default=SCORECARD_DEPTH,
        description="depth of the Decision 766 scorecard gauges' 'unit' label (1 = province; 2 = district "
        "on a three-level map)",
    ),
    Setting(
        "SATISFACTION_WINDOW_DAYS",
        positive_int,
        default=30,
        description="days after the return during which a satisfaction rating is taken",
    ),
    Setting(
        "METRICS_DUE_SOON_HOURS",
        positive,
        default=24.0,
        description="how close a due time counts as 'due soon'",
    ),
)


@dataclass(frozen=True)
class MetricsSettings:
    unit_depth: int
    scorecard_depth: int
    satisfaction_window: timedelta
    due_soon: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetricsSettings:
        """Checked like the common settings: a wrong value stops the service with its name."""
        parsed = validate(config, SETTINGS)
        return cls(
            unit_depth=parsed["METRICS_UNIT_DEPTH"],
            scorecard_depth=parsed["METRICS_SCORECARD_DEPTH"],
            satisfaction_window=timedelta(days=parsed["SATISFACTION_WINDOW_DAYS"]),
            due_soon=timedelta(hours=parsed["METRICS_DUE_SOON_HOURS"]),
        )


class Settings(DependencyProvider):
    """``self.settings``: :class:`MetricsSettings`."""

    def setup(self) -> None:
        self.settings = MetricsSettings.from_config(self.container.config)

    def get_dependency(self, worker_ctx) -> MetricsSettings:
        return self.settings


class SlaMetrics(DependencyProvider):
    """``self.sla_metrics.render(engine, day_length, timezone)``: the /metrics page, SLA metrics read from
    the projection, resolution times in seconds of ``day_length`` (the calendar's) per working day, the
    scorecard's month in the calendar's ``timezone``.

    With several replicas one exports the SLA families: the elected exporter (shared/leadership.py).
    The election runs every ``ELECTION_SECONDS`` in a thread of its own, so a replica takes over soon
    after the exporter dies, and again at each scrape, so a replica that lost its lock never exports
    beside the new exporter."""

    ELECTION_SECONDS = 5.0

    def setup(self) -> None:
        config = self.container.config
        settings = MetricsSettings.from_config(config)
        registry = UnitRegistry.from_settings(config.get("UNITS_FILE") or None)
        # Shared by every scrape: the unit -> label mapping is cached inside.
        self.unit_labels = UnitLabels(registry, settings.unit_depth)
        self.scorecard_labels = UnitLabels(registry, settings.scorecard_depth)
        self.due_soon = settings.due_soon
        # One connection holds the lock while this replica exports.
        conf = validate(config)
        self.engine = create_engine(
            conf["DATABASE_URL"], pool_size=1, timeout=conf["DATABASE_TIMEOUT_SECONDS"]
        )
        self.leadership = Leadership(self.engine, SLA_EXPORTER_LOCK, "SLA exporter of metrics")
        self._stopped = threading.Event()

    def start(self) -> None:
        self.container.spawn_managed_thread(self._elect, identifier="sla-exporter-election")

    def _elect(self) -> None:
        while not self._stopped.is_set():
            try:
                SLA_EXPORTER.set(1 if self.leadership.hold() else 0)
            except Exception as exc:
                # A managed thread: ending with an error would stop the whole service (nameko).
                if not (isinstance(exc, sa.exc.SQLAlchemyError) or is_transient(exc)):
                    raise
                log.warning("SLA exporter election: database error (%s); not exporting", describe(exc))
                self.leadership.release()
                SLA_EXPORTER.set(0)
            self._stopped.wait(self.ELECTION_SECONDS)
        self.leadership.release()

    def stop(self) -> None:
        # Let another replica take the export over now rather than when this process is gone.
        self._stopped.set()
        self.leadership.release()
        self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def render(self, engine: sa.Engine, day_length: timedelta, timezone: tzinfo) -> bytes:
        """Raises the database's error when it cannot be asked (the page answers 503)."""
        collector = SlaCollector(
            engine,
            self.unit_labels,
            self.due_soon,
            day_length,
            scorecard_labels=self.scorecard_labels,
            timezone=timezone,
        )
        return render(collector, exporting=self.leadership.hold())

    def get_dependency(self, worker_ctx) -> SlaMetrics:
        return self


class Projection:
    """Writes consumed events into the projection: one transaction per batch."""

    def __init__(self, engine: sa.Engine, timezone: tzinfo, consumer: str) -> None:
        self.engine = engine
        self.timezone = timezone
        self.consumer = consumer

    def write(self, events: list[Event]) -> list[bool]:
        with Session(self.engine) as session, session.begin():
            return service_layer.project(session, events, self.timezone, self.consumer)


class Projector(DependencyProvider):
    """``self.projector``: the :class:`Projection` on the service's database (its own small pool)."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer

    def setup(self) -> None:
        config = self.container.config
        conf = validate(config)
        timezone = WorkingCalendar.from_settings(config.get("CALENDAR") or None).timezone
        engine = create_engine(conf["DATABASE_URL"], pool_size=2, timeout=conf["DATABASE_TIMEOUT_SECONDS"])
        self.projection = Projection(engine, timezone, self.consumer)

    def stop(self) -> None:
        # Workers have finished by now: nameko stops dependencies after them.
        self.projection.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> Projection:
        return self.projection
