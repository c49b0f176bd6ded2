"""The metrics service's entrypoints: the dossier-event consumer, /metrics, ratings, the SLA report.

Where a dossier's SLA facts are decided: :mod:`services.metrics.projection`.
Where they are stored and counted: :mod:`services.metrics.repository`.
Where a new metric goes: :mod:`services.metrics.exposition` (a ``Family``, and its values in ``snapshot``).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Response

from services.metrics import service_layer
from services.metrics.dependencies import Projector, Settings, SlaMetrics
from services.metrics.models import SERVICE, event_log, pipeline
from services.metrics.openapi import document as openapi_document
from services.metrics.schemas import RatingRequestSchema, RatingSchema, ReportQuerySchema
from shared import retention
from shared.auth import Auth
from shared.consumer import event_batch_consumer
from shared.events import Event
from shared.http import api, idempotent, read_json, read_query
from shared.operations import OperationalEndpoints
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

QUEUE = "metrics.dossier-events"
# Events per projection transaction, and how long a batch waits to fill (seconds).
BATCH_SIZE, BATCH_WAIT = 500, 0.05
REPORT_ROLES = ("auditor", "desk_officer", "handling_officer", "leader")
RATING_REQUEST, RATING, REPORT_QUERY = RatingRequestSchema(), RatingSchema(), ReportQuerySchema()


class MetricsService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline, relay=False)
    retained = (
        # The event log, for RETENTION_EVENT_LOG_DAYS; an event still waiting for an earlier one stays.
        retention.Prunable(
            event_log, "logged_at", "RETENTION_EVENT_LOG_DAYS", event_log.c.waiting.is_(False)
        ),
    )
    auth = Auth()
    units = Units()
    calendar = Calendar()
    settings = Settings()
    sla_metrics = SlaMetrics()
    projector = Projector(QUEUE)

    @event_batch_consumer(QUEUE, ["dossier.#"], batch_size=BATCH_SIZE, batch_wait=BATCH_WAIT)
    def project(self, events: list[Event]) -> list[bool]:
        """Fold dossier events into the projection in one transaction, each once (inbox), in sequence
        order (event log). One answer per event: False for a redelivery, which changes nothing."""
        return self.projector.write(events)

    @api("GET", "/metrics")
    def metrics(self, request):
        page = self.sla_metrics.render(self.uow.engine, self.calendar.day_length, self.calendar.timezone)
        return Response(page, content_type=CONTENT_TYPE_LATEST)

    @api("POST", "/api/v1/ratings")
    def rate(self, request):
        """The desk tablet: one satisfaction rating per returned dossier, within the window."""
        principal = self.auth.principal(request)
        principal.require_role("desk_officer")
        body = read_json(request, RATING_REQUEST)
        command = service_layer.Rate(principal, body["dossier_code"], body["rating"])

        def change(tx):
            return 201, RATING.dump(service_layer.rate(command, tx, self._desk()))

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/reports/sla")
    def sla_report(self, request):
        """SLA figures of a unit's subtree for a period, grouped; JSON or CSV."""
        principal = self.auth.principal(request)
        principal.require_role(*REPORT_ROLES)
        query = read_query(request, REPORT_QUERY)
        command = service_layer.MakeReport(
            principal, query["unit"], query.get("period_from"), query.get("period_to"), query["group_by"]
        )
        with self.uow.transaction() as tx:
            report = service_layer.sla_report(command, tx, self._desk())
        wanted = query.get("format") or (
            "csv"
            if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
            else "json"
        )
        if wanted == "csv":
            return Response(
                report.to_csv(),
                content_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{report.filename}"'},
            )
        return report.as_dict()

    def _desk(self) -> service_layer.Desk:
        return service_layer.Desk(
            units=self.units, calendar=self.calendar, window=self.settings.satisfaction_window
        )
