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
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from nameko.testing.services import entrypoint_hook
from sqlalchemy.orm import Session

from services.postal import repository
from services.postal.domain.model import Direction, Shipment, ShipmentStatus
from services.postal.models import operator_calls, shipments, webhooks
from services.postal.operator import Contact, HttpOperator, Order
from services.postal.service import PostalService
from shared.db import create_engine
from shared.events import Event
from shared.migrate import upgrade
from shared.neighbours import Policy
from shared.units import UnitRegistry
from tests.conftest import bearer, free_port
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
        yield config, url, engine, container
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        engine.dispose()


def _live(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/live", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _order(url: str, engine: sa.Engine, scenario: str, *, handed_over: bool = True) -> Shipment:
    """Place a delivery order with the simulator and record it as the postal service would; then, as a
    co-signed hand-over record does, mark it handed over and tell the operator."""
    assert (
        requests.post(f"{url}/_control/scenarios", json={"scenarios": [scenario]}, timeout=5).status_code
        == 200
    )
    shipment_id = str(uuid.uuid4())
    operator = HttpOperator("vnpost", url, Policy(read_timeout=5, attempts=2))
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
    if handed_over:
        shipment.handed_over_at = datetime.now(UTC)
    with engine.begin() as connection, Session(bind=connection) as session:
        repository.add_shipment(
            session, shipment, unit_path=REGISTRY.routing_path(COMMUNE), contact=CONTACT.__dict__
        )
    if handed_over:
        operator.confirm_handover(shipment.consignment, handed_over_at=shipment.handed_over_at)
    return shipment


def test_every_injected_fault_ends_with_nothing_lost_duplicated_or_moved_backwards(world):
    config, url, engine, _container = world
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
            lost = connection.execute(sa.select(shipments).where(shipments.c.id == orders["lost"].id)).one()
            # the compensation the operator reported with the loss (the simulator pays 500,000 VND)
            assert (lost.compensation_vnd, lost.loss_cause) == (500000, "lost_in_transit")
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
    _config, url, _engine, _container = world
    requests.post(f"{url}/_control/outage", json={"orders": 2}, timeout=5)
    operator = HttpOperator("vnpost", url, Policy(read_timeout=5, attempts=3, backoff=0.05))
    order = Order(reference="r1", direction="pickup", unit=COMMUNE, contact=CONTACT, packages=2)
    first = operator.create_order(order, idempotency_key="k-1")  # two 503s, then the order
    second = operator.create_order(order, idempotency_key="k-1")
    assert first == second and first.fee_vnd == 27000  # 22,000 VND + 5,000 for the second package
    requests.post(f"{url}/_control/outage", json={"orders": 5}, timeout=5)
    from services.postal.operator import OperatorUnavailable

    with pytest.raises(OperatorUnavailable):
        HttpOperator("vnpost", url, Policy(read_timeout=5, attempts=2, backoff=0.05)).create_order(
            order, idempotency_key="k-2"
        )


def test_a_delivery_starts_only_on_its_hand_over_and_a_dossier_that_ends_cancels_it(world):
    """Decision 45/2016: the sealed result leaves the desk on a co-signed record, so the operator delivers
    nothing before it; a dossier withdrawn meanwhile cancels the order at the operator, once."""
    config, url, engine, container = world
    subscriber = Subscriber(config["AMQP_URI"], "postal.#")
    try:
        waiting = _order(url, engine, "happy", handed_over=False)
        time.sleep(2)  # five steps of the simulator: a delivery that started would have reported by now
        log = requests.get(f"{url}/_control/log", timeout=5).json()["attempts"]
        assert [a for a in log if a["consignment"] == waiting.consignment] == []

        def withdrawn() -> Event:
            return Event(
                source="dossier",
                name="withdrawn",
                subject=waiting.dossier_code,
                data={},
                unit_path=REGISTRY.routing_path(COMMUNE),
                sequence=9,
            )

        first = withdrawn()
        with entrypoint_hook(container, "on_dossier_ended") as ended:
            ended(first)
            ended(first)  # the same event again: nothing twice
            ended(withdrawn())  # another final event: the order is already being cancelled
        assert _calls(engine, waiting.id) == [("cancel", "done", 1)]
        status = lambda: _status(engine, waiting.id)  # noqa: E731
        assert wait_for(lambda: status() == "cancelled", timeout=15), status()
        subscriber.drain(expect=1, timeout=10)
        [cancelled] = subscriber.envelopes
        assert cancelled["type"] == "vn.motcua.postal.cancelled"
        assert (cancelled["data"]["direction"], cancelled["data"]["reason_code"]) == (
            "delivery",
            "dossier_withdrawn",
        )
    finally:
        subscriber.close()


def _status(engine: sa.Engine, shipment_id: str) -> str:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(shipments.c.status).where(shipments.c.id == shipment_id)
        ).scalar_one()


def _ended(shipment: Shipment, name: str) -> Event:
    """A final event of the shipment's dossier, as the dossier service publishes it (data unused here)."""
    return Event(
        source="dossier",
        name=name,
        subject=shipment.dossier_code,
        data={},
        unit_path=REGISTRY.routing_path(COMMUNE),
        sequence=9,
    )


def _calls(engine: sa.Engine, shipment_id: str) -> list[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(operator_calls).where(operator_calls.c.shipment_id == shipment_id)
        ).all()
    return [(c.call, c.outcome, c.attempts) for c in rows]


def test_a_cancel_the_operator_cannot_take_now_stays_owed_and_the_watch_makes_it(world):
    _config, url, engine, container = world
    waiting = _order(url, engine, "happy", handed_over=False)
    # the operator answers 503 to both attempts the adapter makes (POSTAL_OPERATOR_ATTEMPTS=2)
    assert requests.post(f"{url}/_control/outage", json={"cancels": 2}, timeout=5).status_code == 200
    with entrypoint_hook(container, "on_dossier_ended") as ended:
        ended(_ended(waiting, "refused"))
    assert _calls(engine, waiting.id) == [("cancel", None, 1)]  # owed, not dropped
    assert _status(engine, waiting.id) == "created"
    with entrypoint_hook(container, "watch") as watch:
        watch()
    assert _calls(engine, waiting.id) == [("cancel", "done", 2)]
    assert wait_for(lambda: _status(engine, waiting.id) == "cancelled", timeout=15)
    with engine.connect() as connection:
        reason = connection.execute(
            sa.select(shipments.c.cancel_reason).where(shipments.c.id == waiting.id)
        ).scalar_one()
    assert reason == "dossier_refused"


def test_a_redelivery_goes_to_a_corrected_address_and_is_paid_by_whoever_caused_it(world):
    """After returned_to_sender the address can be corrected, and a second delivery records its cause,
    which names the payer (Decision 45/2016: whoever caused the repeat)."""
    config, _url, engine, _container = world
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    code = f"000.00.{COMMUNE}-261207-{uuid.uuid4().int % 10**4:04d}"
    now = datetime.now(UTC)
    first = Shipment.order(
        id=str(uuid.uuid4()),
        dossier_code=code,
        direction=Direction.DELIVERY,
        operator="vnpost",
        consignment=f"ED{uuid.uuid4().int % 10**9:09d}VN",
        receiving_unit=COMMUNE,
        packages=1,
        fee_vnd=22000,
        created_at=now - timedelta(days=2),
    )
    first.events.clear()
    first.handed_over_at, first.status = now - timedelta(days=2), ShipmentStatus.RETURNED_TO_SENDER
    with engine.begin() as connection, Session(bind=connection) as session:
        repository.put_return(
            session,
            code,
            {
                "receiving_unit": COMMUNE,
                "recipient_name": CONTACT.name,
                "recipient_phone": CONTACT.phone,
                "recipient_address": CONTACT.address,
                "resolved_at": now - timedelta(days=3),
                "updated_at": now - timedelta(days=3),
            },
        )
        repository.add_shipment(
            session, first, unit_path=REGISTRY.routing_path(COMMUNE), contact=CONTACT.__dict__
        )
    desk = bearer("desk_officer", COMMUNE)
    deliveries = f"{base}/api/v1/postal-returns/{code}/deliveries"

    def post(body: dict) -> requests.Response:
        return requests.post(deliveries, json=body, headers=desk, timeout=30)

    # the payer follows the cause; a cause outside the list and an invalid address are refused
    assert post({"cause": "address_wrong", "charged_to": "operator"}).status_code == 422
    assert post({"cause": "whim"}).status_code == 422
    bad = {"name": "Nguyễn Văn An", "phone": "12", "address": "14 Lê Lợi"}
    assert post({"cause": "address_wrong", "recipient": bad}).status_code == 422
    # the desk corrects the address now that the result came back
    corrected = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "14 Lê Lợi, phường Bến Thành"}
    put = requests.put(
        f"{base}/api/v1/postal-returns/{code}",
        json={"receiving_unit": COMMUNE, "recipient": corrected},
        headers=desk,
        timeout=30,
    )
    assert put.status_code == 200, put.text
    proxy = {"name": "Trần Thị Bình", "phone": "0907654321", "address": "16 Lê Lợi, phường Bến Thành"}
    answer = post({"cause": "agency_error", "recipient": proxy})
    assert answer.status_code == 201, answer.text
    again = answer.json()
    assert (again["charged_to"], again["redelivery_cause"], again["status"]) == (
        "agency",
        "agency_error",
        "created",
    )
    assert repository_contact(engine, again["id"]) == proxy
    # the new delivery is under way: no third one and no new address now
    assert post({"cause": "recipient_absent"}).status_code == 409
    assert (
        requests.put(
            f"{base}/api/v1/postal-returns/{code}",
            json={"receiving_unit": COMMUNE, "recipient": corrected},
            headers=desk,
            timeout=30,
        ).status_code
        == 409
    )


def repository_contact(engine: sa.Engine, shipment_id: str) -> dict[str, str]:
    with engine.connect() as connection, Session(bind=connection) as session:
        return repository.contact_of(session, shipment_id)
