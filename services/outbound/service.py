"""The outbound service's entrypoints: what leaves motcua for outside systems.

The national portal sync: dossier events are consumed into a durable queue per dossier
(:func:`.service_layer.enqueue`), and a timer sends each dossier's queue to the portal's adapter in
order (:func:`.service_layer.sync_round`) from the one elected replica. The portal's mapping, field by
field: :mod:`.domain.portal`; the adapter: :mod:`.portal`. Operators replay parked dossiers and
re-sync a unit's dossiers with ``python -m shared.ops portal-replay`` / ``portal-resync``.

HTTP subscriptions (docs/contracts.md §5): the API under ``/api/v1/subscriptions``; every event is fanned
out into deliveries (:func:`.service_layer.fan_out`), which are handed, per subscription, to a green
thread of the dispatcher (:func:`.service_layer.deliver`) as soon as they are stored, and by a timer
when a retry comes due.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from werkzeug.wrappers import Response

from services.outbound import metrics, repository, service_layer
from services.outbound.dependencies import Dispatcher, PortalSync, dispatch_timer, sync_timer
from services.outbound.models import SERVICE, pipeline
from services.outbound.openapi import document as openapi_document
from services.outbound.schemas import (
    CreatedSubscriptionSchema,
    DeliveryLogSchema,
    RedeliveryRequestSchema,
    SubscriptionRequestSchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
)
from shared import clock
from shared.auth import Auth
from shared.consumer import event_batch_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

PORTAL_QUEUE = service_layer.PORTAL_CONSUMER
SUBSCRIPTIONS_QUEUE = service_layer.SUBSCRIPTIONS_CONSUMER
BATCH_SIZE, BATCH_WAIT = 100, 0.05
SUBSCRIPTION_REQUEST, SUBSCRIPTION_UPDATE = SubscriptionRequestSchema(), SubscriptionUpdateSchema()
SUBSCRIPTION, CREATED, DELIVERY_LOG = SubscriptionSchema(), CreatedSubscriptionSchema(), DeliveryLogSchema()
REDELIVERY_REQUEST = RedeliveryRequestSchema()


class OutboundService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline, relay=False)
    units = Units()
    calendar = Calendar()
    portal_sync = PortalSync()
    auth = Auth()
    dispatcher = Dispatcher()

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

    # --- HTTP subscriptions ------------------------------------------------------------------------

    @event_batch_consumer(
        SUBSCRIPTIONS_QUEUE,
        ["dossier.#", "postal.#", "esign.#"],
        batch_size=BATCH_SIZE,
        batch_wait=BATCH_WAIT,
    )
    def fan_out(self, events: list[Event]) -> list[bool]:
        """Each event once into a delivery per matching subscription; False for a redelivery. The
        subscriptions that got deliveries are dispatched at once, not at the next tick."""
        return service_layer.fan_out(events, self.uow, self._courier(), self._start)

    @dispatch_timer
    def dispatch(self) -> int:
        """Hand each subscription with due deliveries to a green thread of its own (elected replica)."""
        with self.uow.transaction() as tx:
            metrics.SUBSCRIPTIONS_DISABLED.set(repository.disabled_subscriptions(tx.session))
            due = (
                repository.subscriptions_with_due_deliveries(tx.session, clock.now())
                if self.dispatcher.leads()
                else []
            )
        return self._start(due, woken=False)

    def _start(self, subscription_ids, *, woken: bool = True) -> int:
        """Have each subscription delivered to, if this replica dispatches (the timer asked just now;
        a consumer's wake-up asks here)."""
        if not subscription_ids or not (not woken or self.dispatcher.leads()):
            return 0
        self.dispatcher.want(list(subscription_ids), self._run, woken=woken)
        return len(subscription_ids)

    def _run(self, subscription_ids: list[str]) -> None:
        """The dispatcher's start: the subscriptions' first rounds read in one transaction, then each
        delivered to in a green thread of its own (those with nothing due are released)."""
        dispatcher, uow, courier = self.dispatcher, self.uow, self._courier()
        first = service_layer.claim(subscription_ids, uow, courier)
        dispatcher.release([s for s in subscription_ids if s not in first])
        for subscription_id, round_ in first.items():
            dispatcher.run(
                subscription_id,
                partial(service_layer.deliver, subscription_id, uow, courier, _observe, round_),
            )

    @api("POST", "/api/v1/subscriptions")
    def create_subscription(self, request):
        """A subscription within the caller's jurisdiction; its callback must answer a signed test."""
        principal = self.auth.principal(request)
        command = service_layer.CreateSubscription(principal, read_json(request, SUBSCRIPTION_REQUEST))

        def change(tx):
            subscription, secret = service_layer.create_subscription(command, tx, self._courier())
            body = CREATED.dump(subscription) | {"secret": secret}
            return 201, body, {"Location": f"/api/v1/subscriptions/{subscription.id}"}

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/subscriptions")
    def list_subscriptions(self, request):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            found = service_layer.list_subscriptions(principal, tx, self._courier())
        return {"count": len(found), "results": SUBSCRIPTION.dump(found, many=True)}

    @api("GET", "/api/v1/subscriptions/<string:subscription_id>")
    def get_subscription(self, request, subscription_id):
        command = service_layer.ReadSubscription(self.auth.principal(request), subscription_id)
        with self.uow.transaction() as tx:
            return SUBSCRIPTION.dump(service_layer.read_subscription(command, tx, self._courier()))

    @api("PATCH", "/api/v1/subscriptions/<string:subscription_id>")
    def update_subscription(self, request, subscription_id):
        principal = self.auth.principal(request)
        command = service_layer.UpdateSubscription(
            principal, subscription_id, read_json(request, SUBSCRIPTION_UPDATE)
        )

        def change(tx):
            return 200, SUBSCRIPTION.dump(service_layer.update_subscription(command, tx, self._courier()))

        return idempotent(self.uow, principal.sub, request, change)

    @api("DELETE", "/api/v1/subscriptions/<string:subscription_id>")
    def delete_subscription(self, request, subscription_id):
        command = service_layer.ReadSubscription(self.auth.principal(request), subscription_id)
        with self.uow.transaction() as tx:
            service_layer.delete_subscription(command, tx, self._courier())
        return Response(status=204)

    @api("GET", "/api/v1/subscriptions/<string:subscription_id>/deliveries")
    def deliveries(self, request, subscription_id):
        """The latest deliveries, newest first, with every attempt: when, status, error."""
        command = service_layer.ReadSubscription(self.auth.principal(request), subscription_id)
        with self.uow.transaction() as tx:
            return DELIVERY_LOG.dump({"results": service_layer.delivery_log(command, tx, self._courier())})

    @api("GET", "/api/v1/subscriptions/<string:subscription_id>/dead-letters")
    def dead_letters(self, request, subscription_id):
        """The dead deliveries (every try failed), newest first, with every try; redeliveries send them."""
        command = service_layer.ReadSubscription(self.auth.principal(request), subscription_id)
        with self.uow.transaction() as tx:
            return DELIVERY_LOG.dump({"results": service_layer.dead_letters(command, tx, self._courier())})

    @api("POST", "/api/v1/subscriptions/<string:subscription_id>/redeliveries")
    def redeliver(self, request, subscription_id):
        """Send again one delivery, or every delivery enqueued in a time range."""
        principal = self.auth.principal(request)
        body = read_json(request, REDELIVERY_REQUEST)
        command = service_layer.Redeliver(
            principal, subscription_id, body.get("delivery_id"), body.get("from_"), body.get("to")
        )

        def change(tx):
            return 202, {"redelivered": service_layer.redeliver(command, tx, self._courier())}

        return idempotent(self.uow, principal.sub, request, change)

    def _courier(self) -> service_layer.Courier:
        settings = self.portal_sync.settings
        return service_layer.Courier(
            units=self.units,
            calendar=self.calendar,
            portal=self.portal_sync.portal,
            personal=self.portal_sync.dossiers,
            policy=settings.policy,
            gap_wait=settings.gap_wait,
            webhooks=self.dispatcher.sender,
            backoff=self.dispatcher.settings.backoff,
            parallel=self.dispatcher.parallel,
            record=self.dispatcher.record,
        )


def _observe(outcome: str, lag: float) -> None:
    metrics.DELIVERIES.labels(outcome).inc()
    if outcome == "delivered":
        metrics.DELIVERY_LAG.observe(lag)


def _refresh(rows: list[tuple[str, int, datetime | None, int]]) -> None:
    now = clock.now()  # the rows' times are the service clock's
    for gauge in (metrics.PORTAL_BACKLOG, metrics.PORTAL_OLDEST, metrics.PORTAL_PARKED):
        gauge.clear()
    for unit, pending, oldest, parked in rows:
        metrics.PORTAL_BACKLOG.labels(unit).set(pending)
        metrics.PORTAL_OLDEST.labels(unit).set((now - oldest).total_seconds() if oldest else 0)
        metrics.PORTAL_PARKED.labels(unit).set(parked)
