"""The outbound service's entrypoints: what leaves motcua for outside systems.

The national portal sync: dossier events are consumed into a durable queue per dossier
(:func:`.service_layer.enqueue`), and a timer sends each dossier's queue to the portal's adapter in
order (:func:`.service_layer.sync_round`) from the one elected replica. The portal's mapping, field by
field: :mod:`.domain.portal`; the adapter: :mod:`.portal`. Operators replay parked dossiers and
re-sync a unit's dossiers with ``python -m shared.ops portal-replay`` / ``portal-resync``.
"""

from __future__ import annotations

from datetime import datetime

from services.outbound import metrics, service_layer
from services.outbound.dependencies import PortalSync, sync_timer
from services.outbound.models import SERVICE, pipeline
from services.outbound.openapi import document as openapi_document
from shared import clock
from shared.consumer import event_batch_consumer
from shared.events import Event
from shared.operations import OperationalEndpoints
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

PORTAL_QUEUE = service_layer.PORTAL_CONSUMER
BATCH_SIZE, BATCH_WAIT = 100, 0.05


class OutboundService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline, relay=False)
    units = Units()
    calendar = Calendar()
    portal_sync = PortalSync()

    @event_batch_consumer(PORTAL_QUEUE, ["dossier.#"], batch_size=BATCH_SIZE, batch_wait=BATCH_WAIT)
    def queue_for_the_portal(self, events: list[Event]) -> list[bool]:
        """Each dossier event once into its dossier's portal queue; False for a redelivery."""
        return service_layer.enqueue(events, self.uow, self._courier())

    @sync_timer
    def sync_portal(self) -> dict[str, int] | None:
        """The elected replica sends the due head of each dossier's queue; every replica's gauges follow."""
        counts = service_layer.sync_round(self.uow, self._courier()) if self.portal_sync.leads() else None
        service_layer.backlog(self.uow, _refresh)
        return counts

    def _courier(self) -> service_layer.Courier:
        settings = self.portal_sync.settings
        return service_layer.Courier(
            units=self.units,
            calendar=self.calendar,
            portal=self.portal_sync.portal,
            personal=self.portal_sync.dossiers,
            policy=settings.policy,
            gap_wait=settings.gap_wait,
        )


def _refresh(rows: list[tuple[str, int, datetime | None, int]]) -> None:
    now = clock.now()  # the rows' times are the service clock's
    for gauge in (metrics.PORTAL_BACKLOG, metrics.PORTAL_OLDEST, metrics.PORTAL_PARKED):
        gauge.clear()
    for unit, pending, oldest, parked in rows:
        metrics.PORTAL_BACKLOG.labels(unit).set(pending)
        metrics.PORTAL_OLDEST.labels(unit).set((now - oldest).total_seconds() if oldest else 0)
        metrics.PORTAL_PARKED.labels(unit).set(parked)
