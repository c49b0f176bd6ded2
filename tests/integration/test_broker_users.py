"""A broker that trusts no one (issue 11 §2): each service's RabbitMQ user may publish only its own
routing keys and read only its own queues. Users are created through the management API in the test's
own virtual host, as ``make run`` does; the real dossier and metrics services then run with them.
"""

from __future__ import annotations

import uuid

import amqp
import pytest
import requests

from services.dossier.service import DossierService
from services.metrics.service import QUEUE as METRICS_QUEUE
from services.metrics.service import MetricsService
from shared.broker import connect, declare_exchanges
from shared.broker_users import delete, provision_all
from shared.events import EXCHANGE
from shared.migrate import upgrade
from tests.conftest import bearer, free_port
from tests.integration.test_http_and_outage import APPLICANT, COMMUNE_PROCEDURE, UNIT
from tests.integration.test_metrics_service import Client

pytestmark = pytest.mark.integration

API = "http://guest:guest@127.0.0.1:15672"


@pytest.fixture
def users(rabbit_config):
    namespace = uuid.uuid4().hex[:8]
    uris = provision_all(API, rabbit_config["AMQP_URI"], ["dossier", "metrics", "esign"], namespace=namespace)
    yield uris
    for service in uris:
        delete(API, f"motcua-{namespace}-{service}")


def publish_as(amqp_uri: str, routing_key: str) -> None:
    """Publish one event-shaped message with confirms; raises AccessRefused when the broker says no."""
    connection = connect(amqp_uri)
    try:
        channel = connection.channel()
        declare_exchanges(channel)
        channel.confirm_select()
        channel.basic_publish_confirm(
            amqp.Message(b"{}", delivery_mode=2), exchange=EXCHANGE, routing_key=routing_key
        )
    finally:
        connection.collect()


def test_a_service_publishes_only_its_own_routing_keys(users):
    publish_as(users["dossier"], "dossier.received.79.26740")  # its own: accepted
    publish_as(users["esign"], "esign.signed.79.26740")
    # The review's forgery: the esign credential may not speak for the dossier service, nor metrics.
    for service, key in (("esign", "dossier.resolved.79.26740"), ("metrics", "dossier.received.79.26740")):
        with pytest.raises(amqp.exceptions.AccessRefused):
            publish_as(users[service], key)


def test_a_service_reads_only_its_own_queues(users, rabbit_config):
    admin = connect(rabbit_config["AMQP_URI"])
    channel = admin.channel()
    declare_exchanges(channel)
    channel.queue_declare(METRICS_QUEUE, durable=True, auto_delete=False)
    admin.close()
    for service in ("dossier", "esign"):
        connection = connect(users[service])
        try:
            with pytest.raises(amqp.exceptions.AccessRefused):
                connection.channel().basic_get(METRICS_QUEUE)
        finally:
            connection.collect()
    connection = connect(users["metrics"])
    assert connection.channel().basic_get(METRICS_QUEUE) is None  # its own: allowed (and empty)
    connection.close()


def test_the_services_work_with_their_own_users(
    users, rabbit_config, dossier_database, database_url, container_factory
):
    """The grants are enough: a receipt goes from the dossier service to the metrics service."""
    upgrade("metrics", database_url)
    common = {"MOTCUA_ENV": "development", "UNITS_FILE": "", "OUTBOX_POLL_SECONDS": 0.2}
    common.update({"OUTBOX_BATCH_SIZE": 200, "EVENT_MAX_ATTEMPTS": 3, "max_workers": 10})
    metrics_config = {
        **common,
        "AMQP_URI": users["metrics"],
        "DATABASE_URL": database_url,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "METRICS_UNIT_DEPTH": 2,
        "SATISFACTION_WINDOW_DAYS": 30,
        "METRICS_DUE_SOON_HOURS": 24,
    }
    dossier_address = f"127.0.0.1:{free_port()}"
    dossier_config = {
        **common,
        "AMQP_URI": users["dossier"],
        "DATABASE_URL": dossier_database,
        "WEB_SERVER_ADDRESS": dossier_address,
    }
    container_factory(MetricsService, metrics_config).start()
    container_factory(DossierService, dossier_config).start()
    body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": UNIT, "applicant": APPLICANT}
    response = requests.post(
        f"http://{dossier_address}/api/v1/dossiers",
        json=body,
        headers=bearer("desk_officer", UNIT),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert Client(metrics_config).wait_for("motcua_dossiers_received_total", 1, unit=UNIT) == 1
