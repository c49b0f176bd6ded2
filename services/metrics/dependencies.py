"""nameko dependencies of the metrics service: its settings, the batching projector, the renderer.

The projector is why the consumer keeps up: nameko hands each message to its own worker, and a
transaction per event would spend most of its time on statements and commits. Workers instead hand
their event to one writer greenthread and wait; the writer folds every event that arrived while it
was busy into a single transaction, then answers each worker, which acks (or, on an error, retries
and at last dead-letters) its own message as before. A batch that fails is written again one event
per transaction, so a poison event cannot take its neighbours down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

import eventlet
import sqlalchemy as sa
from eventlet.event import Event as Done
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session

from services.metrics import repository
from services.metrics.exposition import SlaCollector, UnitLabels, render
from shared.config import Setting, _positive, _positive_int, validate
from shared.db import create_engine
from shared.events import Event
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar

log = logging.getLogger(__name__)
MAX_BATCH = 500

SETTINGS = (
    Setting("METRICS_UNIT_DEPTH", _positive_int, description="depth of the 'unit' label (1 = province)"),
    Setting(
        "SATISFACTION_WINDOW_DAYS",
        _positive_int,
        description="days after the return during which a satisfaction rating is taken",
    ),
    Setting("METRICS_DUE_SOON_HOURS", _positive, description="how close a due time counts as 'due soon'"),
)


@dataclass(frozen=True)
class MetricsSettings:
    unit_depth: int
    satisfaction_window: timedelta
    due_soon: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetricsSettings:
        """Checked like the common settings: a wrong value stops the service with its name."""
        parsed = validate(config, SETTINGS)
        return cls(
            unit_depth=parsed["METRICS_UNIT_DEPTH"],
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
    """``self.sla_metrics.render(engine)``: the /metrics page, SLA metrics read from the projection."""

    def setup(self) -> None:
        config = self.container.config
        settings = MetricsSettings.from_config(config)
        registry = UnitRegistry.from_settings(config.get("UNITS_FILE") or None)
        # Shared by every scrape: the unit -> label mapping is cached inside.
        self.unit_labels = UnitLabels(registry, settings.unit_depth)
        self.due_soon = settings.due_soon

    def render(self, engine: sa.Engine) -> bytes:
        return render(SlaCollector(engine, self.unit_labels, self.due_soon))

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
            return repository.project_batch(session, events, self.timezone, self.consumer)

    def project(self, event: Event) -> bool:
        return self.write([event])[0]


class Projector(DependencyProvider):
    """``self.projector.project(event)``: True once folded in (or logged to wait), False if seen."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer

    def setup(self) -> None:
        config = self.container.config
        url = validate(config)["DATABASE_URL"]
        timezone = WorkingCalendar.from_settings(config.get("CALENDAR") or None).timezone
        self.projection = Projection(create_engine(url, pool_size=2), timezone, self.consumer)
        self.queue: LightQueue = LightQueue()

    def start(self) -> None:
        self.container.spawn_managed_thread(self._write_batches, identifier="metrics-projector")

    def stop(self) -> None:
        # Workers have finished by now (nameko stops dependencies after them): let the writer go.
        self.queue.put(None)
        self.projection.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> Projector:
        return self

    def project(self, event: Event) -> bool:
        done = Done()
        self.queue.put((event, done))
        return done.wait()

    def _write_batches(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            self._write(batch)
            eventlet.sleep(0)  # let the workers just answered ack and take the next messages

    def _write(self, batch: list[tuple[Event, Done]]) -> None:
        try:
            answers = self.projection.write([event for event, _ in batch])
        except Exception as exc:  # noqa: BLE001 - answered below, to the workers that wait
            if len(batch) == 1:
                batch[0][1].send_exception(exc)  # the worker raises: retried, then dead-lettered
                return
            log.warning("a batch of %d events failed; writing them one by one", len(batch), exc_info=True)
            for item in batch:
                self._write([item])
            return
        for (_, done), answer in zip(batch, answers, strict=True):
            done.send(answer)
