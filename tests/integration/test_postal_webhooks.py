"""The webhook receiver of docs/contracts.md §3 on the real broker and both databases.

Each test arranges a shipment in the postal database, sends what the operator would send, and
checks three things: the HTTP answer the contract names, what is stored (the report before the
2xx; a forgery in the forensics table only), and what is published (one event per forward move,
nothing for a duplicate, a late report or an unknown status).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from services.postal import repository
from services.postal.domain.model import Direction, Shipment
from services.postal.models import shipments, webhook_rejections, webhooks
from services.postal.service import PostalService
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from tests.conftest import free_port
from tests.support.broker import Subscriber, wait_for
from tests.support.postal import FOREIGN_SECRET, NEW_SECRET, SECRET, postal_config, signed

pytestmark = pytest.mark.integration
REGISTRY = UnitRegistry.default()
COMMUNE = REGISTRY.children("79")[0].code
PATH = REGISTRY.routing_path(COMMUNE)
CONTACT = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi, phường Bến Thành"}


@pytest.fixture
def postal(rabbit_config, database_url, container_factory):
    upgrade("postal", database_url)
    config = postal_config(
        rabbit_config["AMQP_URI"], database_url, free_port(), POSTAL_WEBHOOK_SECRETS=f"{SECRET} {NEW_SECRET}"
    )
    container = container_factory(PostalService, config)
    container.start()
    engine = create_engine(database_url)
    yield Postal(config, engine)
    engine.dispose()


class Postal:
    def __init__(self, config: dict, engine: sa.Engine) -> None:
        self.url = f"http://{config['WEB_SERVER_ADDRESS']}/api/v1/webhooks/vnpost"
        self.amqp_uri = config["AMQP_URI"]
        self.engine = engine

    def shipment(self, direction: Direction = Direction.DELIVERY, *, handed_over: bool = True) -> Shipment:
        """A shipment ordered two hours ago; a delivery handed over to the postal worker on a record."""
        consignment = f"EE{uuid.uuid4().int % 10**9:09d}VN"
        shipment = Shipment.order(
            id=str(uuid.uuid4()),
            dossier_code=f"000.00.{COMMUNE}-261130-{uuid.uuid4().int % 10**4:04d}",
            direction=direction,
            operator="vnpost",
            consignment=consignment,
            receiving_unit=COMMUNE,
            packages=1,
            fee_vnd=25000,
            created_at=datetime.now(UTC) - timedelta(hours=2),
        )
        shipment.events.clear()
        if handed_over and direction == Direction.DELIVERY:
            shipment.handed_over_at = datetime.now(UTC) - timedelta(hours=1)
        with self.engine.begin() as connection:
            from sqlalchemy.orm import Session

            with Session(bind=connection) as session:
                repository.add_shipment(session, shipment, unit_path=PATH, contact=CONTACT)
        return shipment

    def send(self, body: bytes, headers: dict) -> requests.Response:
        return requests.post(self.url, data=body, headers=headers, timeout=10)

    def report(self, shipment: Shipment, status: str, minutes_ago: float, **signing) -> requests.Response:
        at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        body = {"consignment": shipment.consignment, "status": status, "occurred_at": at.isoformat()}
        return self.send(*signed(body, **signing))

    def status(self, shipment: Shipment) -> str:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(shipments.c.status).where(shipments.c.id == shipment.id)
            ).scalar_one()

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_a_forward_report_is_stored_applied_and_published_without_personal_data(postal):
    shipment = postal.shipment()
    subscriber = Subscriber(postal.amqp_uri, f"postal.*.{PATH}")
    try:
        response = postal.report(shipment, "picked_up", 30)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "applied"
        assert postal.status(shipment) == "picked_up"
        assert postal.count(webhooks) == 1
        subscriber.drain(expect=1)
        [event] = subscriber.envelopes
        assert event["type"] == "vn.motcua.postal.picked_up"
        assert event["subject"] == shipment.dossier_code and event["sequence"] == "0000000001"
        assert event["data"]["previous_status"] == "created"
        text = json.dumps(event, ensure_ascii=False)
        assert CONTACT["phone"] not in text and CONTACT["address"] not in text and CONTACT["name"] not in text
    finally:
        subscriber.close()


def test_a_repeated_webhook_id_answers_2xx_and_changes_nothing(postal):
    shipment = postal.shipment()
    subscriber = Subscriber(postal.amqp_uri, "postal.#")
    try:
        body = {
            "consignment": shipment.consignment,
            "status": "in_transit",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        first = postal.send(*signed(body, webhook_id="msg_1"))
        again = postal.send(*signed(body, webhook_id="msg_1"))
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["outcome"] == "duplicate"
        assert postal.count(webhooks) == 1
        subscriber.drain(expect=1, quiet=1.0)
        assert len(subscriber.envelopes) == 1  # one move, one event
    finally:
        subscriber.close()


def test_forged_and_stale_deliveries_are_refused_but_kept_for_forensics(postal):
    shipment = postal.shipment()
    forged = postal.report(shipment, "delivered", 1, secrets=(FOREIGN_SECRET,))
    stale = postal.report(shipment, "delivered", 1, timestamp=time.time() - 6 * 60)
    early = postal.report(shipment, "delivered", 1, timestamp=time.time() + 6 * 60)
    assert [r.status_code for r in (forged, stale, early)] == [401, 401, 401]
    assert forged.headers["Content-Type"].startswith("application/problem+json")
    assert postal.status(shipment) == "created" and postal.count(webhooks) == 0
    with postal.engine.connect() as connection:
        reasons = (
            connection.execute(sa.select(webhook_rejections.c.reason).order_by(webhook_rejections.c.id))
            .scalars()
            .all()
        )
    assert reasons == ["bad_signature", "stale_timestamp", "stale_timestamp"]


def test_a_body_changed_after_signing_is_refused(postal):
    shipment = postal.shipment()
    report = {
        "consignment": shipment.consignment,
        "status": "delivered",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body, headers = signed(report)
    assert postal.send(body + b" ", headers).status_code == 401
    assert postal.send(body, {**headers, "webhook-signature": "not-a-signature"}).status_code == 401
    assert postal.send(body, {k: v for k, v in headers.items() if k != "webhook-id"}).status_code == 401
    assert postal.status(shipment) == "created"


def test_either_active_secret_verifies_during_a_rotation(postal):
    shipment = postal.shipment()
    assert postal.report(shipment, "picked_up", 30, secrets=(NEW_SECRET,)).status_code == 200
    # the operator signs with a retired key and the new one at once: one match suffices
    assert postal.report(shipment, "in_transit", 20, secrets=(FOREIGN_SECRET, NEW_SECRET)).status_code == 200
    assert postal.status(shipment) == "in_transit"


def test_a_malformed_report_is_a_400_and_changes_nothing(postal):
    shipment = postal.shipment()
    for body in (
        b"{not json",
        b"[]",
        b'{"consignment": "%s", "status": "delivered", "attempt": %s}'
        % (shipment.consignment.encode(), b"9" * 5000),
        json.dumps({"consignment": shipment.consignment}).encode(),
        json.dumps(
            {"consignment": shipment.consignment, "status": "delivered", "occurred_at": "yesterday"}
        ).encode(),
    ):
        response = postal.send(*signed(body))
        assert response.status_code == 400, (body, response.text)
    assert postal.status(shipment) == "created" and postal.count(webhooks) == 0


def test_an_unknown_consignment_is_a_404_and_nothing_is_stored(postal):
    body = {
        "consignment": "EE000000000VN",
        "status": "delivered",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    assert postal.send(*signed(body)).status_code == 404
    assert postal.count(webhooks) == 0
    assert requests.post(postal.url.replace("vnpost", "someone"), data=b"{}", timeout=10).status_code == 404


def test_late_and_out_of_order_reports_are_recorded_but_never_move_backwards(postal):
    shipment = postal.shipment()
    subscriber = Subscriber(postal.amqp_uri, "postal.#")
    try:
        assert postal.report(shipment, "out_for_delivery", 10).json()["outcome"] == "applied"
        assert postal.report(shipment, "in_transit", 20).json()["outcome"] == "late"  # out of order
        assert postal.report(shipment, "delivered", 5).json()["outcome"] == "applied"
        late = postal.report(shipment, "delivery_failed", 1)  # after delivery
        assert late.status_code == 200 and late.json()["outcome"] == "late"
        assert postal.status(shipment) == "delivered"
        assert postal.count(webhooks) == 4  # every report recorded
        subscriber.drain(expect=2, quiet=1.0)
        assert [e["type"].rsplit(".", 1)[-1] for e in subscriber.envelopes] == [
            "out_for_delivery",
            "delivered",
        ]
        assert [int(e["sequence"]) for e in subscriber.envelopes] == [1, 2]
    finally:
        subscriber.close()


def test_an_unknown_status_is_stored_alerted_and_moves_nothing(postal):
    shipment = postal.shipment()
    response = postal.report(shipment, "held_at_customs", 1)
    assert response.status_code == 200 and response.json()["outcome"] == "unknown_status"
    assert postal.status(shipment) == "created"
    metrics = requests.get(postal.url.split("/api/")[0] + "/metrics", timeout=10).text
    # counted (a counter of this test process: other tests may have added to it before)
    counted = re.search(r'^motcua_postal_unknown_statuses_total\{operator="vnpost"\} (\S+)$', metrics, re.M)
    assert counted is not None and float(counted.group(1)) >= 1
    promtool = shutil.which("promtool")
    if promtool is not None:  # docs/contracts.md §4: promtool check metrics reports nothing
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=metrics, capture_output=True, text=True
        )
        assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def test_a_delivery_s_reports_before_its_hand_over_are_stored_alerted_and_move_nothing(postal):
    shipment = postal.shipment(handed_over=False)
    subscriber = Subscriber(postal.amqp_uri, "postal.#")
    try:
        answers = [
            postal.report(shipment, status, minutes)
            for status, minutes in (("picked_up", 3), ("delivered", 1))
        ]
        assert [(a.status_code, a.json()["outcome"]) for a in answers] == [(200, "before_handover")] * 2
        assert postal.status(shipment) == "created" and postal.count(webhooks) == 2  # stored durably
        subscriber.drain(expect=0, quiet=1.0)
        assert subscriber.envelopes == []
        metrics = requests.get(postal.url.split("/api/")[0] + "/metrics", timeout=10).text
        counted = re.search(
            r'^motcua_postal_reports_before_handover_total\{operator="vnpost"\} (\S+)$', metrics, re.M
        )
        assert counted is not None and float(counted.group(1)) >= 2
    finally:
        subscriber.close()


def test_the_watch_counts_shipments_and_flags_the_stuck_ones(rabbit_config, database_url, container_factory):
    upgrade("postal", database_url)
    config = postal_config(rabbit_config["AMQP_URI"], database_url, free_port(), POSTAL_WATCH_SECONDS=0.3)
    engine = create_engine(database_url)
    arrange = Postal(config, engine)
    on_time, stuck = arrange.shipment(), arrange.shipment()
    with engine.begin() as connection:  # the operator promised one of them for an hour ago
        connection.execute(
            shipments.update()
            .where(shipments.c.id == stuck.id)
            .values(promised_at=datetime.now(UTC) - timedelta(hours=1))
        )
        connection.execute(
            shipments.update()
            .where(shipments.c.id == on_time.id)
            .values(promised_at=datetime.now(UTC) + timedelta(hours=1))
        )
    container_factory(PostalService, config).start()
    url = f"http://{config['WEB_SERVER_ADDRESS']}/metrics"

    def gauges() -> str | None:
        text = requests.get(url, timeout=10).text
        return text if 'motcua_postal_shipments_overdue{direction="delivery"} 1.0' in text else None

    text = wait_for(gauges, timeout=10)
    engine.dispose()
    assert text, "the stuck shipment was not flagged"
    assert 'motcua_postal_shipments{direction="delivery",status="created"} 2.0' in text
    assert 'motcua_postal_shipments{direction="delivery",status="delivered"} 0.0' in text
    assert 'motcua_postal_shipments_overdue{direction="pickup"} 0.0' in text


def test_refused_deliveries_are_pruned_after_their_retention(rabbit_config, database_url, container_factory):
    """Refused webhooks are forensics, kept RETENTION_REJECTED_WEBHOOKS_DAYS (here 90) and no longer."""
    from nameko.testing.services import entrypoint_hook

    upgrade("postal", database_url)
    config = postal_config(
        rabbit_config["AMQP_URI"], database_url, free_port(), RETENTION_REJECTED_WEBHOOKS_DAYS="90"
    )
    engine = create_engine(database_url)
    now = datetime.now(UTC)

    def rejection(days_ago: int) -> dict:
        return dict(
            operator="vnpost",
            webhook_id=f"msg_{days_ago}",
            received_at=now - timedelta(days=days_ago),
            reason="bad_signature",
            remote_addr="192.0.2.1",
            headers={},
            body="{}",
        )

    with engine.begin() as connection:
        connection.execute(webhook_rejections.insert(), [rejection(91), rejection(89)])
    container = container_factory(PostalService, config)
    container.start()
    with entrypoint_hook(container, "prune_expired") as prune_expired:
        assert prune_expired()["postal_webhook_rejections"] == 1
    with engine.connect() as connection:
        kept = connection.execute(sa.select(webhook_rejections.c.webhook_id)).scalars().all()
    assert kept == ["msg_89"]
    engine.dispose()
