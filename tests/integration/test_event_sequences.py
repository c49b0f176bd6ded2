"""One rule over every service that publishes events, on both databases: a source numbers its events of
one dossier 1, 2, 3 … in the order they commit, across all its records of that dossier — the dossier
itself, a dossier's pickup and delivery shipments, a refused signing request and the next one
(docs/contracts.md §1: ``sequence``; subscribers order per source and subject).

Each source's events are made through its own code path into its own outbox, in several transactions;
a source added to the event catalogue without a driver here fails ``test_every_source_is_covered``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.dossier import service_layer as dossier_layer
from services.dossier.dependencies import _shipped_catalogue, lifecycle_settings
from services.dossier.domain.model import Action
from services.dossier.models import pipeline as dossier_pipeline
from services.esign.models import pipeline as esign_pipeline
from services.postal import schemas as postal_schemas  # noqa: F401 - registers the postal events
from services.postal import service_layer as postal_layer
from services.postal.models import pipeline as postal_pipeline
from services.postal.operator import Contact, Order
from shared.auth import Principal
from shared.db import create_engine
from shared.events import CATALOGUE
from shared.migrate import upgrade
from shared.uow import UnitOfWorkFactory
from tests.integration.test_esign_registers import Desk
from tests.integration.test_esign_registers import tools as tools  # noqa: F401 - the fixture
from tests.support.fakes import CALENDAR, MONDAY, UNIT, UNITS, FakeOperator, FakeRegistrar

pytestmark = pytest.mark.integration
ORDER = Order("pickup-1", "pickup", UNIT, Contact("Trần Thị Bình", "0912345678", "12 Lê Lợi"), packages=1)


def outbox(uow: UnitOfWorkFactory) -> list[dict]:
    table = uow.tables.outbox
    with uow.engine.connect() as connection:
        return [
            json.loads(b) for b in connection.execute(sa.select(table.c.body).order_by(table.c.id)).scalars()
        ]


def factory(database_url: str, service: str, pipeline) -> UnitOfWorkFactory:
    upgrade(service, database_url)
    return UnitOfWorkFactory(create_engine(database_url), pipeline, None, "")


def dossier_events(database_url: str, tools) -> tuple[str, list[dict]]:
    uow = factory(database_url, "dossier", dossier_pipeline)
    office = dossier_layer.Office(
        units=UNITS,
        calendar=CALENDAR,
        catalogue=_shipped_catalogue(),
        settings=lifecycle_settings({}),
        clock=lambda: MONDAY,
    )
    desk = Principal(sub="desk", roles=frozenset({"desk_officer"}), units=(UNIT,))
    body = {
        "procedure_code": "1.001193",
        "receiving_unit": UNIT,
        "channel": "counter",
        "return_method": "counter",
        "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
    }
    with uow.transaction() as tx:
        code = dossier_layer.receive(dossier_layer.Receive(desk, body, "req-1"), tx, office).code
    with uow.transaction() as tx:
        dossier_layer.act(dossier_layer.Act(desk, code, Action.START_PROCESSING, {}, "req-2"), tx, office)
    return code, outbox(uow)


def postal_events(database_url: str, tools) -> tuple[str, list[dict]]:
    uow = factory(database_url, "postal", postal_pipeline)
    at = datetime(2027, 1, 2, 3, tzinfo=UTC)
    context = postal_layer.PostalContext(
        units=UNITS, calendar=CALENDAR, operator=FakeOperator(), dossiers=FakeRegistrar(), clock=lambda: at
    )
    contact = {"name": "Trần Thị Bình", "phone": "0912345678", "address": "12 Lê Lợi, Quận 1"}
    body = {"receiving_unit": UNIT, "pickup": contact, "return_method": "postal", "return_to": None}
    asked = postal_layer.RequestPickup(
        "pickup-1", Principal(sub="portal", roles=frozenset({"portal"}), units=(UNIT,)), "", body
    )
    code = "26740-270102-0001"
    # the pickup, then (days later) the result's delivery: two shipments of one dossier, each ordered
    # through its use case, in its own transaction
    pickup = postal_layer.PreparedPickup(
        asked, code, context.operator.create_order(ORDER, idempotency_key="p")
    )
    with uow.transaction() as tx:
        postal_layer.store_pickup(pickup, tx, context)
    with uow.transaction() as tx:
        postal_layer.mark_resolved(
            postal_layer.DossierResolved(code, UNIT, at + timedelta(days=5)), tx, context
        )
    assert postal_layer.open_delivery(postal_layer.OpenDelivery(code), uow, context) is not None
    return code, outbox(uow)


def esign_events(database_url: str, tools) -> tuple[str, list[dict]]:
    uow = factory(database_url, "esign", esign_pipeline)
    desk, at = Desk(uow, tools), datetime(2027, 3, 1, 2, tzinfo=UTC)
    first = desk.open("D-1", at)
    desk.refuse(first, at)
    second = desk.open("D-1", at + timedelta(days=1))
    desk.seal(desk.sign(second, at + timedelta(days=1)), at + timedelta(days=2))
    return "D-1", outbox(uow)


DRIVERS: dict[str, Callable[[str, object], tuple[str, list[dict]]]] = {
    "dossier": dossier_events,
    "postal": postal_events,
    "esign": esign_events,
}


def test_every_source_is_covered():
    assert {entry.source for entry in CATALOGUE.values()} == set(DRIVERS)


@pytest.mark.parametrize("source", sorted(DRIVERS))
def test_a_sources_events_of_one_dossier_count_1_2_3_across_its_records(source, database_url, tools):
    code, events = DRIVERS[source](database_url, tools)
    mine = [e for e in events if e["subject"] == code]
    assert len(mine) >= 2 and {e["source"] for e in mine} == {f"/motcua/{source}"}
    assert [int(e["sequence"]) for e in mine] == list(range(1, len(mine) + 1)), [
        (e["type"], int(e["sequence"])) for e in mine
    ]
