"""What every service answers besides its API: liveness, readiness, Prometheus metrics, OpenAPI.

A service class inherits :class:`OperationalEndpoints` and sets ``openapi_document`` to a callable
returning its OpenAPI dict; it needs ``uow`` (a :class:`shared.uow.UnitOfWork`).
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from shared.broker import BrokerUnavailable, connect
from shared.http import api, json_response
from shared.problems import ServiceUnavailable
from shared.transient import describe


class OperationalEndpoints:
    openapi_document = staticmethod(lambda: {})

    @api("GET", "/health/live")
    def health_live(self, request):
        return {"status": "up"}

    @api("GET", "/health/ready")
    def health_ready(self, request):
        checks = {}
        try:
            with self.uow.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            checks["database"] = "up"
        except sa.exc.SQLAlchemyError as exc:
            since = self.uow.health.down_since
            checks["database"] = f"down: {describe(exc)}" + (
                f" (since {since:%Y-%m-%dT%H:%M:%SZ})" if since else ""
            )
        try:
            connect(self.uow.amqp_uri, timeout=2.0).close()
            checks["broker"] = "up"
        except BrokerUnavailable as exc:
            checks["broker"] = f"down: {exc}"
        if any(value != "up" for value in checks.values()):
            raise ServiceUnavailable(
                "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()), checks=checks
            )
        return {"status": "ready", "checks": checks}

    @api("GET", "/metrics")
    def metrics(self, request):
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @api("GET", "/api/v1/openapi.json")
    def openapi(self, request):
        return json_response(type(self).openapi_document())
