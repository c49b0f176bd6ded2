"""The notifier's entrypoints: telling the applicant when the dossier needs them or the result is ready.

Dossier events are consumed into notices (:func:`.service_layer.enqueue`: only those that call for a
message, each once); a timer sends the due ones from the one elected replica
(:func:`.service_layer.send_round`), reading the applicant's consent and contact from the dossier service
at each send. The rules: :mod:`.domain.messages`; the texts: templates.yaml; the gateways: :mod:`.gateways`.
The desk reads a dossier's messages at ``GET /api/v1/notifications/{code}``.
"""

from __future__ import annotations

from services.notifier import metrics, service_layer
from services.notifier.dependencies import Delivery, send_timer
from services.notifier.models import SERVICE, pipeline
from services.notifier.openapi import document as openapi_document
from services.notifier.schemas import MessageLogSchema
from shared.auth import Auth
from shared.consumer import event_consumer
from shared.events import Event
from shared.http import api
from shared.operations import OperationalEndpoints
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

MESSAGE_LOG = MessageLogSchema()
# The dossier events a message may follow (domain.messages.kind_of decides among them).
BINDINGS = [
    f"dossier.{name}.#"
    for name in (
        "received",
        "supplement_requested",
        "payment_requested",
        "apologized",
        "resolved",
        "returned",
        "refused",
        "stopped",
    )
]


class NotifierService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline, relay=False)
    units = Units()
    calendar = Calendar()
    auth = Auth()
    delivery = Delivery()

    @event_consumer(service_layer.CONSUMER, BINDINGS)
    def take_notice(self, event: Event) -> bool:
        """A notice for each event that calls for a message, once; False for a redelivery."""
        return service_layer.enqueue(event, self.uow, self._herald())

    @send_timer
    def send(self) -> dict[str, int] | None:
        """The elected replica sends what is due."""
        return service_layer.send_round(self.uow, self._herald()) if self.delivery.leads() else None

    @api("GET", "/api/v1/notifications/<string:code>")
    def dossier_notifications(self, request, code):
        """A dossier's messages, newest first, with every gateway call (the desk's view)."""
        command = service_layer.ReadLog(self.auth.principal(request), code)
        with self.uow.transaction() as tx:
            found = service_layer.dossier_log(command, tx, self._herald())
        return MESSAGE_LOG.dump({"code": code, "count": len(found["results"]), **found})

    def _herald(self) -> service_layer.Herald:
        delivery = self.delivery
        settings = delivery.settings
        return service_layer.Herald(
            units=self.units,
            calendar=self.calendar,
            dossiers=delivery.dossiers,
            gateways=delivery.gateways,
            templates=delivery.templates,
            quiet=settings.quiet,
            cap=settings.cap,
            policy=settings.policy,
            unicode_sms=settings.values["SMS_UNICODE"],
            recipient_key=settings.recipient_key,
            observe=_observe,
            called=_called,
        )


def _observe(kind: str, channel: str, outcome: str) -> None:
    metrics.MESSAGES.labels(kind, channel, outcome).inc()


def _called(gateway: str, answer: str) -> None:
    metrics.GATEWAY_CALLS.labels(gateway, answer).inc()
