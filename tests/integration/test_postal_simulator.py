"""Every fault the operator simulator injects, through the real webhook path: nothing is lost,
duplicated or moved backwards.

The simulator runs as its own process and calls the postal service (real broker, each database).
For each scenario the expected outcome is derived by hand from docs/contracts.md §3 and the shipment's
forward order (created → picked_up → in_transit → out_for_delivery → delivered, with failed attempts
leading to another attempt or back to the desk):

==================== ============================================== ==========================
scenario             reports sent (in arrival order)                published moves
==================== ============================================== ==========================
happy                picked_up, in_transit, out_for_delivery,       all four
                     delivered
duplicate            each of the above twice, same webhook-id       four (stored once each)
out_of_order         picked_up, out_for_delivery, in_transit (late) picked_up, out_for_delivery,
                     delivered                                      delivered
failed_delivery      … out_for_delivery, delivery_failed,           all six; attempts 2
                     out_for_delivery, delivered
returned_to_sender   … two failed attempts, returned_to_sender      all seven; final
late_after_delivery  happy, then delivery_failed after delivery     four; final delivered
unknown_status       picked_up, in_transit, held_at_hub, …          four; held_at_hub stored
proxy                happy; a proxy signs                           four; proxy name kept here
lost                 picked_up, in_transit, lost                    two, then postal.lost; stays
                                                                    in_transit, lost_at set
==================== ============================================== ==========================
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.postal import repository
from services.postal.domain.model import Direction, Shipment
from services.postal.models import shipments, webhooks
from services.postal.operator import Contact, HttpOperator, Order
from services.postal.service import PostalService
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from tests.conftest import free_port
from tests.support.broker import Subscriber, wait_for
from tests.support.postal import postal_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REGISTRY = UnitRegistry.default()
COMMUNE = REGISTRY.children("79")[0].code
CONTACT = Contact("Nguyễn Văn An", "0901234567", "12 Lê Lợi, phường Bến Thành")
HAPPY = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
EXPECTED = {
    # scenario: (published moves, final status, webhooks stored, attempts)
    "happy": (HAPPY, "delivered", 4, 1),
    "duplicate": (HAPPY, "delivered", 4, 1),
    "out_of_order": (["picked_up", "out_for_delivery", "delivered"], "delivered", 4, 1),
    "failed_delivery": (
        ["picked_up", "in_transit", "out_for_delivery", "delivery_failed", "out_for_delivery", "delivered"],
        "delivered",
        6,
        2,
    ),
    "returned_to_sender": (
        [
            "picked_up",
            "in_transit",
            "out_for_delivery",
            "delivery_failed",
            "out_for_delivery",
            "delivery_failed",
            "returned_to_sender",
        ],
        "returned_to_sender",
        7,
        2,
    ),
    "late_after_delivery": (HAPPY, "delivered", 5, 1),
    "unknown_status": (HAPPY, "delivered", 5, 1),
    "proxy": (HAPPY, "delivered", 4, 1),
    # lost in transit: recorded as an incident (postal.lost), the status stays where it was
    "lost": (["picked_up", "in_transit", "lost"], "in_transit", 3, 0),
}


@pytest.fixture
def world(rabbit_config, database_url, container_factory):
    upgrade("postal", database_url)
    simulator_port = free_port()
    config = postal_config(
        rabbit_config["AMQP_URI"],
        database_url,
        free_port(),
        POSTAL_OPERATOR_URL=f"http://127.0.0.1:{simulator_port}",
    )
    container = container_factory(PostalService, config)
    container.start()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.postal_operator",
            "--address",
            f"127.0.0.1:{simulator_port}",
            "--webhook-url",
            f"http://{config['WEB_SERVER_ADDRESS']}/api/v1/webhooks/vnpost",
            "--step-seconds",
            "0.4",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    engine = create_engine(database_url)
    url = f"http://127.0.0.1:{simulator_port}"
    try:
        assert wait_for(lambda: _live(url), timeout=20), "the simulator did not start"
        yield config, url, engine
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        engine.dispose()


def _live(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/live", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _order(url: str, engine: sa.Engine, scenario: str) -> Shipment:
    """Place a delivery order with the simulator and record it as the postal service would."""
    assert (
        requests.post(f"{url}/_control/scenarios", json={"scenarios": [scenario]}, timeout=5).status_code
        == 200
    )
    shipment_id = str(uuid.uuid4())
    operator = HttpOperator("vnpost", url, timeout=5, attempts=2)
    confirmation = operator.create_order(
        Order(reference=shipment_id, direction="delivery", unit=COMMUNE, contact=CONTACT, packages=1),
        idempotency_key=shipment_id,
    )
    shipment = Shipment.order(
        id=shipment_id,
        dossier_code=f"D-{scenario}-{uuid.uuid4().hex[:6]}",
        direction=Direction.DELIVERY,
        operator="vnpost",
        consignment=confirmation.consignment,
        receiving_unit=COMMUNE,
        packages=1,
        fee_vnd=confirmation.fee_vnd,
        created_at=datetime.now(UTC),
        promised_at=confirmation.promised_at,
    )
    shipment.events.clear()
    with engine.begin() as connection, Session(bind=connection) as session:
        repository.add_shipment(
            session, shipment, unit_path=REGISTRY.routing_path(COMMUNE), contact=CONTACT.__dict__
        )
    return shipment


def test_every_injected_fault_ends_with_nothing_lost_duplicated_or_moved_backwards(world):
    config, url, engine = world
    subscriber = Subscriber(config["AMQP_URI"], "postal.#")
    try:
        orders = {scenario: _order(url, engine, scenario) for scenario in EXPECTED}
        # a retried create (the same idempotency key) gives the same consignment, not a second order
        again = HttpOperator("vnpost", url).create_order(
            Order(reference="x", direction="delivery", unit=COMMUNE, contact=CONTACT, packages=1),
            idempotency_key=orders["happy"].id,
        )
        assert again.consignment == orders["happy"].consignment
        assert wait_for(
            lambda: requests.get(f"{url}/_control/log", timeout=5).json()["pending"] == 0, timeout=60
        )
        subscriber.drain(expect=sum(len(e[0]) for e in EXPECTED.values()), timeout=20)
        published: dict[str, list[str]] = {}
        for envelope in subscriber.envelopes:
            published.setdefault(envelope["subject"], []).append(envelope["type"].rsplit(".", 1)[-1])
        with engine.connect() as connection:
            for scenario, (moves, final, stored, attempts) in EXPECTED.items():
                shipment = orders[scenario]
                row = connection.execute(sa.select(shipments).where(shipments.c.id == shipment.id)).one()
                count = connection.execute(
                    sa.select(sa.func.count())
                    .select_from(webhooks)
                    .where(webhooks.c.shipment_id == shipment.id)
                ).scalar_one()
                assert published.get(shipment.dossier_code) == moves, scenario
                assert (row.status, count, row.attempts) == (final, stored, attempts), scenario
            proxy = connection.execute(sa.select(shipments).where(shipments.c.id == orders["proxy"].id)).one()
            assert (proxy.recipient_kind, proxy.recipient_name) == ("proxy", "Trần Thị Bình")
            unknown = (
                connection.execute(
                    sa.select(webhooks.c.operator_status).where(
                        webhooks.c.shipment_id == orders["unknown_status"].id,
                        webhooks.c.outcome == "unknown_status",
                    )
                )
                .scalars()
                .all()
            )
            assert unknown == ["held_at_hub"]
        log = requests.get(f"{url}/_control/log", timeout=5).json()["attempts"]
        duplicates = [
            a for a in log if a["consignment"] == orders["duplicate"].consignment and a["answer"] == 200
        ]
        assert (
            len(duplicates) == 8 and len({a["webhook_id"] for a in duplicates}) == 4
        )  # each sent twice, acked twice
    finally:
        subscriber.close()


def test_an_operator_outage_is_retried_with_the_same_key_and_makes_one_order(world):
    _config, url, _engine = world
    requests.post(f"{url}/_control/outage", json={"orders": 2}, timeout=5)
    operator = HttpOperator("vnpost", url, timeout=5, attempts=3, backoff=0.05)
    order = Order(reference="r1", direction="pickup", unit=COMMUNE, contact=CONTACT, packages=2)
    first = operator.create_order(order, idempotency_key="k-1")  # two 503s, then the order
    second = operator.create_order(order, idempotency_key="k-1")
    assert first == second and first.fee_vnd == 27000  # 22,000 VND + 5,000 for the second package
    requests.post(f"{url}/_control/outage", json={"orders": 5}, timeout=5)
    from services.postal.operator import OperatorUnavailable

    with pytest.raises(OperatorUnavailable):
        HttpOperator("vnpost", url, timeout=5, attempts=2, backoff=0.05).create_order(
            order, idempotency_key="k-2"
        )
