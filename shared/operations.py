"""What every service answers besides its API: liveness, readiness, Prometheus metrics, OpenAPI.

A service class inherits :class:`OperationalEndpoints` and sets ``openapi_document`` to a callable
returning its OpenAPI dict; it needs ``uow`` (a :class:`shared.uow.UnitOfWork`).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import amqp
import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from shared import neighbours, retention
from shared.broker import BrokerUnavailable, connect
from shared.config import ConfigurationError
from shared.http import api, json_response
from shared.problems import NotFound, ServiceUnavailable, explanation_page
from shared.tracing import Tracing
from shared.transient import DatabaseUnavailable, is_transient

log = logging.getLogger(__name__)
RETENTION_INTERVAL_SECONDS = 3600


class BrokerCheck:
    """Is the broker answering? One connection kept open and probed with a channel round trip, so a
    readiness probe every few seconds opens no new connection; after a failure, a new connection is
    tried at most every ``retry_seconds``."""

    def __init__(self, amqp_uri: str, *, retry_seconds: float = 5.0, timeout: float = 2.0) -> None:
        self.amqp_uri = amqp_uri
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self._connection: amqp.Connection | None = None
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()

    def up(self) -> bool:
        with self._lock:
            if self._connection is None:
                if time.monotonic() - self._last_attempt < self.retry_seconds:
                    return False
                self._last_attempt = time.monotonic()
                try:
                    self._connection = connect(self.amqp_uri, timeout=self.timeout)
                except BrokerUnavailable as exc:
                    log.warning("readiness: broker unreachable (%s)", exc)
                    return False
            try:
                self._connection.channel().close()
                return True
            except (OSError, amqp.exceptions.AMQPError) as exc:
                log.warning("readiness: broker connection lost (%s)", exc)
                self.close_connection()
                return False

    def close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.collect()

    def close(self) -> None:
        with self._lock:
            self.close_connection()


class Readiness(DependencyProvider):
    """``self.readiness``: the service's :class:`BrokerCheck`."""

    def setup(self) -> None:
        self.check = BrokerCheck(self.container.config["AMQP_URI"])

    def stop(self) -> None:
        self.check.close()

    def kill(self) -> None:
        self.check.close()

    def get_dependency(self, worker_ctx) -> BrokerCheck:
        return self.check


class RetentionDays(DependencyProvider):
    """``self.retention_days``: days kept per ``RETENTION_*`` setting, checked at start."""

    def setup(self) -> None:
        try:
            self.days = retention.retention_days(self.container.config)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc

    def get_dependency(self, worker_ctx) -> dict[str, int]:
        return self.days


class OperationalEndpoints:
    openapi_document = staticmethod(lambda: {})
    readiness = Readiness()
    retention_days = RetentionDays()
    # Every worker in a span of the request's or the event's trace (shared/tracing.py).
    tracing = Tracing()
    # A service's own tables pruned by age besides the pipeline's (shared/retention.py).
    retained: tuple[retention.Prunable, ...] = ()

    @api("GET", "/health/live")
    def health_live(self, request):
        return {"status": "up"}

    @api("GET", "/health/ready")
    def health_ready(self, request):
        # Only up or down: where the database and the broker live is not for whoever probes.
        checks = {}
        try:
            # While the database is known down, say so at once: a probe must not wait on a blackhole.
            self.uow.health.check()
            with self.uow.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            self.uow.health.succeeded()
            checks["database"] = "up"
        except (sa.exc.SQLAlchemyError, DatabaseUnavailable) as exc:
            if not isinstance(exc, DatabaseUnavailable) and is_transient(exc):
                self.uow.health.failed(exc)
            # The kind of failure and since when; never hosts or error text (they may name the server).
            since = self.uow.health.down_since
            log.warning("readiness: database unreachable (%s)", type(exc).__name__)
            checks["database"] = f"down: {type(exc).__name__}" + (
                f" (since {since:%Y-%m-%dT%H:%M:%SZ})" if since else ""
            )
        checks["broker"] = "up" if self.readiness.up() else "down"
        # A neighbour's open circuit fails readiness only when the service is of no use without it;
        # otherwise it is reported, and its callers answer 503 or keep their work (shared/neighbours.py).
        failing = [k for k, v in checks.items() if v != "up"]
        for neighbour in neighbours.of_service(self.name):
            checks[f"neighbour {neighbour.name}"] = neighbour.health()
            if neighbour.required and neighbour.health() != "up":
                failing.append(f"neighbour {neighbour.name}")
        if failing:
            raise ServiceUnavailable(
                "not ready: " + ", ".join(f"{k} {checks[k]}" for k in failing), checks=checks
            )
        degraded = any(value != "up" for value in checks.values())
        return {"status": "degraded" if degraded else "ready", "checks": checks}

    @timer(interval=RETENTION_INTERVAL_SECONDS)
    def prune_expired(self) -> dict[str, int]:
        """Delete idempotency keys, inbox rows, published outbox rows (and ``retained``) past retention."""
        prunables = [*retention.pipeline_prunables(self.uow.tables), *self.retained]
        deleted = retention.prune(self.uow.engine, prunables, self.retention_days, datetime.now(UTC))
        if any(deleted.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n))
        return deleted

    @api("GET", "/metrics")
    def metrics(self, request):
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @api("GET", "/api/v1/openapi.json")
    def openapi(self, request):
        return json_response(type(self).openapi_document())

    @api("GET", "/problems/<slug>")
    def problem_type(self, request, slug):
        """The page a problem's ``type`` URI names (shared/problems.py)."""
        page = explanation_page(slug)
        if page is None:
            raise NotFound(f"no problem type {slug!r}; the types are listed in docs/problems.md")
        return Response(page, content_type="text/html; charset=utf-8")
