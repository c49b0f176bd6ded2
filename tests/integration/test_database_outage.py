"""A database outage loses nothing: the metrics service's PostgreSQL stops while events keep coming.

The server is a private one (tests/support/private_postgres.py), stopped and started by this test
alone. How we know nothing was lost or counted twice: every event published is a ``received`` of a
different dossier, so once the database is back the projection's received count must equal the number
published, exactly; and the dead-letter queue must be empty, because an outage is the infrastructure's
failure, not the events'. Meanwhile the HTTP side must answer 503 with Retry-After, never 500.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from services.metrics.service import QUEUE, MetricsService
from shared.broker import ConfirmingPublisher, Outgoing, connect
from shared.migrate import upgrade
from tests.conftest import bearer, metrics_settings
from tests.integration.test_metrics_service import COMMUNE_A, Client, Dossier
from tests.support.broker import wait_for as wait_until
from tests.support.private_postgres import PrivatePostgres

pytestmark = pytest.mark.integration

# 30 s is fifteen of the consumer's outage backoffs (capped at 2 s here) and a dozen HTTP probes; the
# chaos suite holds the database down for minutes (MOTCUA_DB_OUTAGE_SECONDS=120 for a longer one here).
OUTAGE_SECONDS = float(os.environ.get("MOTCUA_DB_OUTAGE_SECONDS", "30"))
EVENTS_PER_SECOND = 10


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    yield server
    server.destroy()


def dead_letter_count(amqp_uri: str) -> int:
    connection = connect(amqp_uri)
    _name, count, _consumers = connection.channel().queue_declare(f"{QUEUE}.dead-letter", passive=True)
    connection.close()
    return count


class SteadyReceipts:
    """Publishes one ``received`` event of a new dossier every 1/rate seconds until stopped."""

    def __init__(self, amqp_uri: str, rate: float) -> None:
        self.amqp_uri, self.interval = amqp_uri, 1.0 / rate
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        now = datetime.now(UTC)
        publisher = ConfirmingPublisher(self.amqp_uri)
        try:
            while not self._stop.is_set():
                dossier = Dossier(
                    COMMUNE_A, received_at=now - timedelta(hours=1), due_at=now + timedelta(days=3)
                )
                event = dossier.event("received", 2)
                outgoing = Outgoing(
                    event.id, event.type, event.routing_key, event.to_json().encode(), event.cc
                )
                [outcome] = publisher.publish([outgoing])
                assert outcome.confirmed and not outcome.unroutable
                self.published += 1
                self._stop.wait(self.interval)
        finally:
            publisher.close()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.published


@pytest.mark.timeout(OUTAGE_SECONDS + 180)
def test_a_database_outage_dead_letters_nothing_and_http_answers_503(
    private_postgres, rabbit_config, container_factory
):
    url = private_postgres.create_database("metrics")
    upgrade("metrics", url)
    config = {
        **metrics_settings(rabbit_config["AMQP_URI"], url),
        "EVENT_RETRY_DELAYS": "0.1",
        "EVENT_OUTAGE_BACKOFF_MAX_SECONDS": 2,
    }
    container = container_factory(MetricsService, config)
    container.start()
    metrics = Client(config)
    report = {"unit": "79"}
    headers = bearer("leader", "79")
    load = SteadyReceipts(rabbit_config["AMQP_URI"], EVENTS_PER_SECOND)
    try:
        assert wait_until(lambda: (metrics.value("motcua_dossiers_received_total") or 0) >= 5)
        private_postgres.stop()
        before = load.published
        answers: list[requests.Response] = []
        deadline = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < deadline:
            for path in ("/metrics", "/health/ready"):
                answers.append(requests.get(f"{metrics.base}{path}", timeout=10))
            answers.append(metrics.report(headers, **report))
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        during = load.published - before
    finally:
        published = load.stop()
        if not private_postgres.running():
            private_postgres.start()
    # Events kept coming throughout (10 a second asked; at least one a second on a busy machine).
    assert during >= OUTAGE_SECONDS
    assert [a.status_code for a in answers] == [503] * len(answers)
    assert all(a.headers["Retry-After"].isdigit() for a in answers)
    assert all(a.headers["Content-Type"] == "application/problem+json" for a in answers)
    ready = [a.json() for a in answers if a.url.endswith("/health/ready")]
    assert all(r["checks"]["database"].startswith("down: OperationalError") for r in ready)
    # Back without a restart: the projection catches up exactly, and nothing was dead-lettered.
    caught_up = metrics.wait_for("motcua_dossiers_received_total", float(published), timeout=60)
    assert caught_up == published
    assert dead_letter_count(rabbit_config["AMQP_URI"]) == 0
    assert requests.get(f"{metrics.base}/health/ready", timeout=10).status_code == 200
    assert metrics.report(headers, **report).status_code == 200
