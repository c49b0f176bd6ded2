"""The postal service layer (services/postal/service_layer.py) on the in-memory unit of work: each rule of
the pickup, the hand-over record, the delivery and the return by post, who may act, and which events
leave — no broker, no database, no operator, a few milliseconds a test. The HTTP tests
(tests/integration/test_postal_webhooks.py, test_postal_simulator.py) keep to what only HTTP shows.

Expected values come from the rules (docs/domain.md §8 Postal flows, docs/contracts.md §3): the record's
later signature is the filing time; a delivery moves only after its co-signed record; a report before
it, late, or backwards is stored and moves nothing; the cause of a second delivery decides who pays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.postal import service_layer as postal
from services.postal.domain.model import Shipment
from services.postal.operator import OperatorUnavailable
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, Invalid, NotFound
from tests.support.fakes import (
    CALENDAR,
    UNITS,
    FakeOperator,
    FakeRegistrar,
    FakeUnitOfWork,
    fake_postal_repositories,
)

COMMUNE, OTHER_COMMUNE = "26740", UNITS.children("79")[1].code
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # Monday 08:30 in Vietnam
CONTACT = {"name": "Trần Thị Bình", "phone": "0912345678", "address": "12 Lê Lợi, Quận 1"}
NEW_ADDRESS = {"name": "Trần Thị Bình", "phone": "0912345678", "address": "34 Hai Bà Trưng, Quận 3"}


def person(role: str, unit: str, sub: str | None = None) -> Principal:
    return Principal(sub or f"{role}@{unit}", frozenset({role}), (unit,))


DESK, POSTMAN, PORTAL = (
    person("desk_officer", COMMUNE),
    person("postal_operator", COMMUNE),
    person("portal", "79"),
)
FAR_DESK = person("desk_officer", OTHER_COMMUNE)


class Clock:
    """This service's clock: ten minutes pass between two reads."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


class Desk:
    """One desk's postal service in memory: the use cases, with the fakes as their adapters."""

    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        self.operator = FakeOperator()
        self.clock = Clock()
        self.context = postal.PostalContext(
            units=UNITS,
            calendar=CALENDAR,
            clock=self.clock,
            operator=self.operator,
            dossiers=FakeRegistrar(),
            repositories=fake_postal_repositories,
        )
        self.webhooks = 0

    def run(self, use_case, command):
        """A use case on one transaction of its own, committed (as the entrypoints do)."""
        with self.uow.transaction() as tx:
            return use_case(command, tx, self.context)

    def pickup(self, *, return_method: str = "counter", unit: str = COMMUNE, key: str = "1") -> Shipment:
        body = {
            "procedure_code": "1.001193",
            "receiving_unit": unit,
            "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
            "pickup": CONTACT,
            "documents": [{"name": "Tờ khai", "copies": 1}],
            "packages": 1,
            "return_method": return_method,
            "return_to": None,
        }
        asked = postal.RequestPickup(f"pickup-{key}", PORTAL, "Bearer portal", body)
        prepared = postal.order_pickup(asked, self.context)
        return self.run(postal.store_pickup, prepared)

    def delivery(self, code: str) -> Shipment | None:
        """The dossier's result is ready, the desk gives the address: the delivery opens."""
        self.run(postal.mark_resolved, postal.DossierResolved(code, COMMUNE, self.clock()))
        address = {"receiving_unit": COMMUNE, "recipient": CONTACT}
        self.run(postal.give_return_address, postal.GiveReturnAddress(code, DESK, address))
        return postal.open_delivery(postal.OpenDelivery(code), self.uow, self.context)

    def record(self, direction: str, *consignments: str, counted: int = 1) -> str:
        items = [{"consignment": c, "packages_counted": counted} for c in consignments]
        body = {"receiving_unit": COMMUNE, "direction": direction, "items": items}
        return self.run(postal.draw_up_record, postal.DrawUpRecord(DESK, body)).id

    def sign(self, record_id: str, who: Principal, decisions: list[dict] | None = None):
        return self.run(postal.sign_record, postal.SignRecord(who, record_id, {"decisions": decisions or []}))

    def hand_over(self, direction: str, *consignments: str, decisions: list[dict] | None = None):
        record_id = self.record(direction, *consignments)
        self.sign(record_id, POSTMAN)
        record = self.sign(record_id, DESK, decisions)
        postal.call_operator(postal.CallOperator(), self.uow, self.context)
        return record

    def report(self, consignment: str, status: str, at: datetime, **extra) -> postal.WebhookReceipt:
        self.webhooks += 1
        body = {"consignment": consignment, "status": status, "occurred_at": at, "recipient": None}
        body.update({"compensation": None, "note": None, **extra})
        asked = postal.ApplyReport("vnpost", f"wh-{self.webhooks}", body, "{}")
        return postal.apply_report(asked, self.uow, self.context)

    def shipment(self, shipment_id: str) -> Shipment:
        return self.uow.state.table("postal_shipments")[shipment_id]

    def published(self) -> list[tuple[str, dict]]:
        return [(event.name, dict(event.data)) for event in self.uow.published]


@pytest.fixture
def desk() -> Desk:
    return Desk()


def received(consignment: str) -> dict:
    return {"consignment": consignment, "outcome": "received", "reason": None, "reason_code": None}


# --- pickups -----------------------------------------------------------------------------------------


def test_a_pickup_registers_the_dossier_orders_once_and_announces_the_order(desk):
    shipment = desk.pickup()
    again = desk.pickup()  # the same request retried: the same dossier, order and shipment
    assert again.id == shipment.id and len(desk.operator.orders) == 1
    assert shipment.dossier_code == "000.00.26740-260302-0001" and shipment.status == "created"
    assert desk.published() == [("ordered", desk.published()[0][1])]
    ordered = desk.uow.published[0]
    assert ordered.subject == shipment.dossier_code and ordered.sequence == 1
    assert ordered.data["direction"] == "pickup" and ordered.data["charged_to"] == "applicant"
    assert "Trần Thị Bình" not in repr(ordered.data)  # no personal data on an event
    assert desk.uow.state.table("postal_contacts")[shipment.id] == CONTACT


def test_a_pickup_returned_by_post_remembers_where_the_result_goes(desk):
    shipment = desk.pickup(return_method="postal")
    kept = desk.uow.state.table("postal_returns")[shipment.dossier_code]
    assert kept.recipient == CONTACT and kept.given_by == PORTAL.sub and kept.resolved_at is None


def test_a_pickup_for_an_unknown_unit_is_invalid_and_orders_nothing(desk):
    with pytest.raises(Invalid) as refused:
        desk.pickup(unit="99999")
    assert refused.value.field == "receiving_unit"
    assert desk.operator.orders == {} and desk.uow.published == []


def test_an_operator_that_does_not_answer_leaves_no_shipment(desk):
    desk.operator.unavailable = True
    with pytest.raises(OperatorUnavailable):
        desk.pickup()
    assert desk.uow.state.table("postal_shipments") == {} and desk.uow.published == []


# --- the hand-over record and the filing ---------------------------------------------------------------


def test_the_co_signed_record_files_the_dossier_at_its_later_signature(desk):
    shipment = desk.pickup()
    record_id = desk.record("pickup", shipment.consignment)
    desk.sign(record_id, POSTMAN)
    assert desk.published()[-1][0] == "ordered"  # one signature hands nothing over
    record = desk.sign(record_id, DESK, [received(shipment.consignment)])
    name, data = desk.published()[-1]
    assert name == "handed_over" and record.signed_at == record.desk_signed_at
    assert data["filed_at"] == record.desk_signed_at.isoformat() == data["handed_over_at"]
    assert data["outcome"] == "received" and data["reason_code"] is None and data["has_reason_text"] is False
    assert desk.uow.published[-1].sequence == 2  # the dossier's postal events count 1, 2


def test_a_refused_pickup_carries_its_reason_code_and_is_not_filed(desk):
    shipment = desk.pickup()
    refusal = {
        "consignment": shipment.consignment,
        "outcome": "refused",
        "reason": "Thiếu tờ khai",
        "reason_code": "incomplete_dossier",
    }
    desk.hand_over("pickup", shipment.consignment, decisions=[refusal])
    name, data = desk.published()[-1]
    assert (name, data["outcome"], data["reason_code"], data["filed_at"]) == (
        "handed_over",
        "refused",
        "incomplete_dossier",
        None,
    )
    assert data["has_reason_text"] is True and "Thiếu tờ khai" not in repr(data)


def test_one_person_cannot_sign_both_sides_and_the_operator_decides_nothing(desk):
    shipment = desk.pickup()
    record_id = desk.record("pickup", shipment.consignment)
    both = Principal("both", frozenset({"postal_operator"}), (COMMUNE,))
    desk.sign(record_id, both)
    with pytest.raises(Conflict, match="two people"):
        desk.sign(record_id, Principal("both", frozenset({"desk_officer"}), (COMMUNE,)))
    other = desk.record("pickup", desk.pickup(key="2").consignment)
    with pytest.raises(Invalid) as refused:
        desk.sign(other, POSTMAN, [received(shipment.consignment)])
    assert refused.value.field == "decisions"
    with pytest.raises(Forbidden):
        desk.sign(other, person("clerk", COMMUNE))


def test_a_record_lists_only_known_consignments_of_the_callers_unit(desk):
    with pytest.raises(Invalid) as unknown:
        desk.record("pickup", "EP000000999VN")
    assert unknown.value.field == "items/0/consignment"
    body = {"receiving_unit": COMMUNE, "direction": "pickup", "items": []}
    with pytest.raises(Forbidden):
        desk.run(postal.draw_up_record, postal.DrawUpRecord(FAR_DESK, {**body, "receiving_unit": COMMUNE}))
    record_id = desk.record("pickup", desk.pickup().consignment)
    with pytest.raises(NotFound):
        desk.run(postal.read_record, postal.ReadRecord(FAR_DESK, record_id))


# --- the delivery, released by its co-signed record ----------------------------------------------------


def test_a_delivery_report_before_the_co_signed_record_is_stored_and_moves_nothing(desk):
    delivery = desk.delivery("D-1")
    before = len(desk.uow.published)
    receipt = desk.report(delivery.consignment, "delivered", T0 + timedelta(hours=1))
    assert receipt.outcome == "before_handover" and receipt.shipment_status == "created"
    assert len(desk.uow.published) == before and desk.shipment(delivery.id).delivered_at is None
    assert len(desk.uow.state.table("postal_webhooks")) == 1  # stored all the same


def test_the_co_signed_delivery_record_releases_the_result_and_tells_the_operator(desk):
    delivery = desk.delivery("D-1")
    desk.hand_over("delivery", delivery.consignment)
    assert ("handover", delivery.consignment) in desk.operator.calls
    handed = desk.published()[-1][1]
    assert "filed_at" not in handed and "outcome" not in handed  # a delivery's record decides nothing
    at = desk.clock.now + timedelta(hours=2)
    assert desk.report(
        delivery.consignment, "delivered", at, recipient={"kind": "proxy", "name": "B"}
    ).outcome == ("applied")
    name, data = desk.published()[-1]
    assert (name, data["recipient_kind"], data["previous_status"], data["attempts"]) == (
        "delivered",
        "proxy",
        "created",
        1,
    )


def test_out_of_order_and_late_reports_never_move_a_shipment_backwards(desk):
    delivery = desk.delivery("D-1")
    desk.hand_over("delivery", delivery.consignment)
    at = desk.clock.now
    assert desk.report(delivery.consignment, "out_for_delivery", at + timedelta(hours=3)).outcome == "applied"
    # older by the operator's own clock, and behind on the lattice: recorded, no change
    assert desk.report(delivery.consignment, "in_transit", at + timedelta(hours=1)).outcome == "late"
    assert (
        desk.report(delivery.consignment, "out_for_delivery", at + timedelta(hours=4)).outcome == "repeated"
    )
    assert (
        desk.report(delivery.consignment, "warehouse_fire", at + timedelta(hours=5)).outcome
        == "unknown_status"
    )
    assert desk.shipment(delivery.id).status == "out_for_delivery"
    assert [name for name, _ in desk.published()][-2:] == ["handed_over", "out_for_delivery"]


def test_attempts_count_each_distinct_reported_attempt_in_any_order(desk):
    delivery = desk.delivery("D-1")
    desk.hand_over("delivery", delivery.consignment)
    at = desk.clock.now
    desk.report(delivery.consignment, "delivery_failed", at + timedelta(hours=1))
    desk.report(delivery.consignment, "delivered", at + timedelta(hours=5))
    # the second failed attempt arrives last, and the first again: counted once each
    desk.report(delivery.consignment, "delivery_failed", at + timedelta(hours=3))
    desk.report(delivery.consignment, "delivery_failed", at + timedelta(hours=1))
    assert desk.shipment(delivery.id).attempts == 3 and desk.shipment(delivery.id).status == "delivered"


def test_a_repeated_webhook_changes_nothing(desk):
    delivery = desk.delivery("D-1")
    desk.hand_over("delivery", delivery.consignment)
    body = {
        "consignment": delivery.consignment,
        "status": "in_transit",
        "occurred_at": desk.clock.now,
        "recipient": None,
        "compensation": None,
        "note": None,
    }
    first = postal.apply_report(postal.ApplyReport("vnpost", "wh-x", body, "{}"), desk.uow, desk.context)
    count = len(desk.uow.published)
    second = postal.apply_report(postal.ApplyReport("vnpost", "wh-x", body, "{}"), desk.uow, desk.context)
    assert (first.outcome, second.outcome) == ("applied", "duplicate") and len(desk.uow.published) == count


def test_a_report_of_a_consignment_never_ordered_is_not_found(desk):
    with pytest.raises(NotFound):
        desk.report("EP000000999VN", "delivered", T0)


# --- lost and cancelled, with reason codes -----------------------------------------------------------


def test_a_lost_package_carries_the_operators_cause_and_compensation(desk):
    delivery = desk.delivery("D-1")
    desk.hand_over("delivery", delivery.consignment)
    compensation = {"amount_vnd": 400_000, "cause": "damaged"}
    assert (
        desk.report(delivery.consignment, "lost", desk.clock.now, compensation=compensation).outcome == "lost"
    )
    name, data = desk.published()[-1]
    assert (name, data["reason_code"], data["compensation_vnd"]) == ("lost", "damaged", 400_000)


def test_a_dossier_that_ends_cancels_what_runs_once_and_the_cancel_carries_its_reason(desk):
    shipment = desk.pickup(return_method="postal")
    ended = postal.DossierEnded(shipment.dossier_code, "dossier_withdrawn", desk.clock())
    assert desk.run(postal.dossier_ended, ended) == 1
    assert desk.run(postal.dossier_ended, ended) == 0  # asked once, ever
    assert postal.call_operator(postal.CallOperator(shipment.dossier_code), desk.uow, desk.context) == 0
    assert desk.operator.calls == [("cancel", shipment.consignment)]
    assert desk.report(shipment.consignment, "cancelled", desk.clock.now).outcome == "applied"
    name, data = desk.published()[-1]
    assert (name, data["reason_code"]) == ("cancelled", "dossier_withdrawn")
    # the dossier ended: its result opens no delivery any more
    assert desk.delivery(shipment.dossier_code) is None


def test_a_cancel_the_operator_does_not_take_stays_owed_until_the_watch_makes_it(desk):
    shipment = desk.pickup()
    desk.operator.unavailable = True
    desk.run(
        postal.dossier_ended, postal.DossierEnded(shipment.dossier_code, "dossier_refused", desk.clock())
    )
    assert postal.call_operator(postal.CallOperator(), desk.uow, desk.context) == 1
    desk.operator.unavailable = False
    postal.watch(postal.Watch(), desk.uow, desk.context)
    assert desk.operator.calls == [("cancel", shipment.consignment)]
    assert postal.call_operator(postal.CallOperator(), desk.uow, desk.context) == 0


def test_an_operator_cancelling_on_its_own_says_so(desk):
    shipment = desk.pickup()
    desk.report(shipment.consignment, "cancelled", T0 + timedelta(hours=1))
    assert desk.published()[-1][1]["reason_code"] == "operator_cancelled"


# --- the return by post: redelivery, its cause and payer, the address ----------------------------------


def returned(desk: Desk, code: str = "D-1") -> Shipment:
    delivery = desk.delivery(code)
    desk.hand_over("delivery", delivery.consignment)
    desk.report(delivery.consignment, "returned_to_sender", desk.clock.now + timedelta(hours=1))
    return delivery


def test_a_result_goes_again_only_after_it_came_back_paid_by_whoever_caused_it(desk):
    first = desk.delivery("D-1")
    again = postal.DeliverAgain(DESK, "D-1", "address_wrong", NEW_ADDRESS)
    with pytest.raises(Conflict, match="came back"):
        postal.deliver_again(again, desk.uow, desk.context)
    desk.hand_over("delivery", first.consignment)
    desk.report(first.consignment, "returned_to_sender", desk.clock.now + timedelta(hours=1))
    second = postal.deliver_again(again, desk.uow, desk.context)
    assert second.id != first.id and (second.charged_to, second.redelivery_cause) == (
        "applicant",
        "address_wrong",
    )
    name, data = desk.published()[-1]
    assert (name, data["charged_to"], data["redelivery_cause"]) == ("ordered", "applicant", "address_wrong")
    assert desk.operator.orders[second.id][0].contact.address == NEW_ADDRESS["address"]
    assert desk.uow.state.table("postal_returns")["D-1"].recipient == NEW_ADDRESS


def test_the_agency_pays_for_its_own_error_and_a_lost_result_goes_again_at_the_operators_cost(desk):
    returned(desk)
    agency = postal.deliver_again(postal.DeliverAgain(DESK, "D-1", "agency_error"), desk.uow, desk.context)
    assert agency.charged_to == "agency"
    desk.hand_over("delivery", agency.consignment)
    desk.report(agency.consignment, "lost", desk.clock.now + timedelta(hours=1))
    with pytest.raises(Conflict, match="lost_by_operator"):
        postal.deliver_again(postal.DeliverAgain(DESK, "D-1", "recipient_absent"), desk.uow, desk.context)
    third = postal.deliver_again(postal.DeliverAgain(DESK, "D-1", "lost_by_operator"), desk.uow, desk.context)
    assert third.charged_to == "operator"


def test_the_address_changes_until_a_delivery_is_under_way_and_again_once_it_came_back(desk):
    desk.delivery("D-1")
    change = postal.GiveReturnAddress("D-1", DESK, {"receiving_unit": COMMUNE, "recipient": NEW_ADDRESS})
    with pytest.raises(Conflict, match="on its way"):
        desk.run(postal.give_return_address, change)
    desk.hand_over("delivery", desk.uow.published[0].data["consignment"])
    first = next(iter(desk.uow.state.table("postal_shipments").values()))
    desk.report(first.consignment, "returned_to_sender", desk.clock.now + timedelta(hours=1))
    assert desk.run(postal.give_return_address, change).recipient == NEW_ADDRESS


def test_a_delivery_opens_once_whichever_path_comes_first(desk):
    first = desk.delivery("D-1")
    again = postal.open_delivery(postal.OpenDelivery("D-1"), desk.uow, desk.context)
    postal.watch(postal.Watch(), desk.uow, desk.context)
    assert again.id == first.id and len(desk.operator.orders) == 1
    assert [name for name, _ in desk.published()] == ["ordered"]


def test_a_result_without_an_address_waits_and_the_watch_opens_it_after_an_outage(desk):
    desk.run(postal.mark_resolved, postal.DossierResolved("D-1", COMMUNE, desk.clock()))
    assert postal.open_delivery(postal.OpenDelivery("D-1"), desk.uow, desk.context) is None
    desk.operator.unavailable = True
    address = {"receiving_unit": COMMUNE, "recipient": CONTACT}
    desk.run(postal.give_return_address, postal.GiveReturnAddress("D-1", DESK, address))
    with pytest.raises(OperatorUnavailable):
        postal.open_delivery(postal.OpenDelivery("D-1"), desk.uow, desk.context)
    desk.operator.unavailable = False
    postal.watch(postal.Watch(), desk.uow, desk.context)
    assert [name for name, _ in desk.published()] == ["ordered"]


# --- jurisdiction ---------------------------------------------------------------------------------------


def test_the_return_address_is_given_within_the_callers_jurisdiction_only(desk):
    outside = postal.GiveReturnAddress("D-1", FAR_DESK, {"receiving_unit": COMMUNE, "recipient": CONTACT})
    with pytest.raises(Forbidden, match="outside your jurisdiction"):
        desk.run(postal.give_return_address, outside)
    unknown = postal.GiveReturnAddress("D-1", DESK, {"receiving_unit": "99999", "recipient": CONTACT})
    with pytest.raises(Invalid) as refused:
        desk.run(postal.give_return_address, unknown)
    assert refused.value.field == "receiving_unit"
    assert desk.uow.state.table("postal_returns") == {}


def test_outside_the_jurisdiction_a_return_and_its_shipments_are_not_found(desk):
    returned(desk)
    with pytest.raises(NotFound):
        postal.deliver_again(postal.DeliverAgain(FAR_DESK, "D-1", "agency_error"), desk.uow, desk.context)
    with pytest.raises(NotFound):
        desk.run(postal.read_return, postal.ReadReturn(FAR_DESK, "D-1"))
    with pytest.raises(NotFound):
        desk.run(postal.dossier_shipments, postal.ReadShipments(FAR_DESK, "D-1"))
    state = desk.run(postal.read_return, postal.ReadReturn(DESK, "D-1"))
    assert state.delivery.status == "returned_to_sender"
