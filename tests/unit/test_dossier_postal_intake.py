"""The dossier's side of the postal flows (services/dossier/postal_intake.py and the desk's actions), on
the in-memory unit of work. The rules (Decision 45/2016, issue 17):

* a dossier that came by post is filed by its pickup's hand-over record only — never by a click;
* a result goes back by post only when the operator reports it delivered; the desk's ``return`` is
  a counter return, always recorded as one, and it wins over a delivery still running;
* every way a shipment ends reaches the dossier: a lost or cancelled pickup closes it (status 3 with
  its reason code), a delivery lost, cancelled or sent back leaves the desk a task.
"""

from __future__ import annotations

import itertools
import logging

import pytest
from marshmallow import ValidationError

from services.dossier import postal_intake, service_layer
from services.dossier.actions import REGISTRY
from services.dossier.domain.model import Action, TransitionNotAllowed
from services.dossier.schemas import DossierSchema, ReceiptRequestSchema
from services.metrics.projection import StreamEvent, contribution, fold
from shared.domain import InvalidArgument
from shared.events import Event
from shared.vocabulary import Status
from tests.unit.test_dossier_service_layer import (  # noqa: F401 - fixtures
    COMMUNE,
    DESK,
    PORTAL,
    act,
    office,
    uow,
)

POSTAL_PROCEDURE = "1.004859"  # postal channel and postal return (tests/e2e/test_postal_flows.py)
_ids = itertools.count(1)
# What each ending carries besides the shipment (services/postal/schemas.py).
EXTRA = {
    "lost": {"reason_code": "lost_in_transit", "compensation_vnd": 500_000},
    "cancelled": {"reason_code": "operator_cancelled", "previous_status": "in_transit"},
}


def by_post(uow, office, return_method: str = "postal") -> str:  # noqa: F811
    """A dossier registered by the postal service's pickup: status 1, channel postal."""
    body = {
        "procedure_code": POSTAL_PROCEDURE,
        "receiving_unit": COMMUNE,
        "channel": "postal",
        "return_method": return_method,
        "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
    }
    with uow.transaction() as tx:
        return service_layer.register(service_layer.Register(PORTAL, body, "req-1"), tx, office).code


def postal(name: str, code: str, office, direction: str, **extra) -> Event:  # noqa: F811
    """A ``postal.*`` event as the postal service publishes it (its schemas in docs/asyncapi.yaml)."""
    at = office.clock()  # after every step so far
    data = {
        "code": code,
        "shipment_id": extra.pop("shipment_id", f"{direction}-1"),
        "direction": direction,
        "operator": "vnpost",
        "consignment": "EL000000001VN",
        "status": extra.pop("status", name),
        "receiving_unit": COMMUNE,
        "packages": 1,
        "attempts": 0,
        "promised_at": None,
        "occurred_at": at.isoformat(),
        **EXTRA.get(name, {}),
        **extra,
    }
    return Event(
        id=f"00000000-0000-4000-8000-{next(_ids):012d}",
        source="postal",
        name=name,
        subject=code,
        data=data,
        unit_path="79.26740",
        sequence=1,
    )


def handed_over(code: str, office, outcome: str = "received", **extra) -> Event:  # noqa: F811
    at = office.clock()
    return postal(
        "handed_over",
        code,
        office,
        "pickup",
        status="delivered",
        record_id="rec-1",
        handed_over_at=at.isoformat(),
        packages_counted=1,
        discrepancy=None,
        outcome=outcome,
        reason_code=extra.pop("reason_code", None),
        has_reason_text=outcome == "refused",
        filed_at=at.isoformat() if outcome == "received" else None,
        **extra,
    )


def resolved(uow, office, return_method: str = "postal") -> str:  # noqa: F811
    code = by_post(uow, office, return_method)
    postal_intake.apply(handed_over(code, office), uow, office)
    for action, body in (
        (Action.START_PROCESSING, {}),
        (Action.APPRAISE, {}),
        (Action.DECIDE, {"decision": "approved"}),
        (Action.SIGN, {}),
        (Action.STAMP, {}),
        (Action.RESOLVE, {}),
    ):
        act(uow, office, code, action, body, principal=DESK if action is Action.START_PROCESSING else None)
    assert uow.state.dossiers[code].status is Status.RESOLVED
    return code


def events_of(uow, code: str) -> list[Event]:  # noqa: F811
    return [e for e in uow.published if e.subject == code and e.source == "dossier"]


def desk_return(uow, office, code: str, body: dict | None = None):  # noqa: F811
    """The desk's ``return`` as the HTTP entrypoint runs it: the body through the action's schema."""
    return act(uow, office, code, Action.RETURN, REGISTRY[Action.RETURN].body().load(body or {}))


# --- 2. a pickup dossier is filed by its hand-over record, never by a click -----------------------------


@pytest.mark.parametrize("action", [Action.RECEIVE, Action.REFUSE])
def test_the_desk_cannot_receive_or_refuse_a_dossier_that_came_by_post(uow, office, action):  # noqa: F811
    code = by_post(uow, office)
    before = len(uow.published)
    with pytest.raises(TransitionNotAllowed) as raised:
        act(uow, office, code, action, {"reason": "Hồ sơ giả mạo"} if action is Action.REFUSE else {})
    assert "hand-over record" in raised.value.reason
    assert raised.value.allowed == ["withdraw"]  # the applicant may still withdraw it
    assert uow.state.dossiers[code].status is Status.REGISTERED and len(uow.published) == before


def test_the_record_files_it_at_the_records_time_and_a_later_click_changes_nothing(uow, office):  # noqa: F811
    code = by_post(uow, office)
    record = handed_over(code, office)
    assert postal_intake.apply(record, uow, office) is None
    dossier = uow.state.dossiers[code]
    assert dossier.status is Status.RECEIVED
    assert dossier.received_at.isoformat() == record.data["handed_over_at"]
    assert uow.state.audit[code][-1].action == "receive"
    assert postal_intake.apply(record, uow, office) is False  # a redelivery changes nothing


def test_the_record_refuses_it_with_its_reason_code(uow, office):  # noqa: F811
    code = by_post(uow, office)
    refusal = handed_over(code, office, "refused", reason_code="incomplete_dossier")
    assert postal_intake.apply(refusal, uow, office) is None
    assert uow.state.dossiers[code].status is Status.REFUSED
    assert uow.state.dossiers[code].notices[-1].reason == postal_intake.REFUSED_ON_RECORD  # Form 03
    refused = events_of(uow, code)[-1]
    assert (refused.name, refused.data["reason_code"]) == ("refused", "incomplete_dossier")


def test_a_receipt_at_the_desk_cannot_claim_the_postal_channel(uow, office):  # noqa: F811
    body = {
        "procedure_code": POSTAL_PROCEDURE,
        "receiving_unit": COMMUNE,
        "channel": "postal",
        "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
    }
    with pytest.raises(ValidationError) as raised:
        ReceiptRequestSchema().load(body)
    assert "registered by the postal service" in str(raised.value.messages["channel"])
    with pytest.raises(InvalidArgument) as refused, uow.transaction() as tx:
        service_layer.receive(
            service_layer.Receive(DESK, {**body, "return_method": "counter"}, "r"), tx, office
        )
    assert refused.value.field == "channel" and uow.state.dossiers == {}


# --- 3. a lost or cancelled pickup closes the dossier with its reason code ----------------------------


@pytest.mark.parametrize(("name", "cause"), [("lost", "pickup_lost"), ("cancelled", "pickup_cancelled")])
def test_a_lost_or_cancelled_pickup_leaves_status_1_with_its_reason_code(uow, office, name, cause):  # noqa: F811
    code = by_post(uow, office)
    assert postal_intake.apply(postal(name, code, office, "pickup"), uow, office) is None
    dossier = uow.state.dossiers[code]
    assert dossier.status is Status.REFUSED and dossier.received_at is None
    refused = events_of(uow, code)[-1]
    assert refused.name == "refused"
    assert (refused.data["reason_code"], refused.data["has_reason_text"]) == (cause, True)
    assert uow.state.audit[code][-1].action == cause  # the desk reads why in the audit trail
    assert dossier.notices[-1].action is Action.REFUSE  # and Form 03 tells the applicant


def test_a_cancelled_pickup_after_a_withdrawal_changes_nothing(uow, office, caplog):  # noqa: F811
    code = by_post(uow, office)
    act(uow, office, code, Action.WITHDRAW, {"reason": "Công dân xin rút"})
    before = len(uow.published)
    with caplog.at_level(logging.INFO, logger=postal_intake.__name__):
        ended = postal("cancelled", code, office, "pickup", reason_code="dossier_withdrawn")
        assert postal_intake.apply(ended, uow, office) is None
    assert uow.state.dossiers[code].status is Status.WITHDRAWN and len(uow.published) == before
    assert [r.levelno for r in caplog.records] == [logging.INFO]  # the expected end of the order


# --- 1. only the operator's delivery returns a result by post --------------------------------------------


def test_the_desk_return_refuses_the_postal_method(uow, office):  # noqa: F811
    code = resolved(uow, office)
    with pytest.raises(ValidationError) as raised:
        desk_return(uow, office, code, {"method": "postal"})
    assert "only when the postal operator reports it delivered" in str(raised.value.messages["method"])
    assert uow.state.dossiers[code].status is Status.RESOLVED


def test_a_counter_hand_over_after_returned_to_sender_is_a_counter_return(uow, office):  # noqa: F811
    code = resolved(uow, office)
    postal_intake.apply(postal("returned_to_sender", code, office, "delivery"), uow, office)
    assert uow.state.dossiers[code].status is Status.RESOLVED  # waits at the desk
    returned = desk_return(uow, office, code)  # no method given: still the counter
    assert returned.status is Status.RETURNED and returned.return_method.label == "counter"
    event = events_of(uow, code)[-1]
    assert (event.name, event.data["method"]) == ("returned", "counter")
    # The postal share follows: the metrics projection counts it at the counter.
    chain = [StreamEvent(e.name, e.sequence, e.time, e.data) for e in events_of(uow, code)]
    counts = contribution(fold(None, chain, office.calendar.timezone))
    assert (counts["returned_counter"], counts["returned_postal"]) == (1, 0)


def test_a_counter_return_wins_over_a_delivery_in_flight(uow, office, caplog):  # noqa: F811
    code = resolved(uow, office)
    returned = desk_return(uow, office, code)
    assert returned.status is Status.RETURNED
    published = len(uow.published)
    # The postal service cancels the running delivery on that event; either answer changes nothing.
    with caplog.at_level(logging.INFO, logger=postal_intake.__name__):
        ended = postal("cancelled", code, office, "delivery", reason_code="dossier_returned_at_counter")
        postal_intake.apply(ended, uow, office)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    postal_intake.apply(
        postal("delivered", code, office, "delivery", recipient_kind="applicant"), uow, office
    )
    dossier = uow.state.dossiers[code]
    assert (dossier.status, dossier.return_method.label, dossier.returned_at) == (
        Status.RETURNED,
        "counter",
        returned.returned_at,
    )
    assert len(uow.published) == published and dossier.tasks == []


def test_the_operators_delivery_returns_it_by_post_at_the_delivery_time(uow, office):  # noqa: F811
    code = resolved(uow, office)
    delivered = postal("delivered", code, office, "delivery", recipient_kind="proxy")
    assert postal_intake.apply(delivered, uow, office) is None
    dossier = uow.state.dossiers[code]
    assert dossier.status is Status.RETURNED and dossier.return_method.label == "postal"
    assert dossier.returned_at.isoformat() == delivered.data["occurred_at"]
    assert events_of(uow, code)[-1].data["method"] == "postal"


# --- 3. a delivery that failed leaves the desk a task -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("lost", "delivery_lost"),
        ("cancelled", "delivery_cancelled"),
        ("returned_to_sender", "returned_to_sender"),
    ],
)
def test_a_failed_delivery_leaves_the_desk_a_task_until_the_result_is_returned(uow, office, name, cause):  # noqa: F811
    code = resolved(uow, office)
    published = len(uow.published)
    failed = postal(name, code, office, "delivery")
    assert postal_intake.apply(failed, uow, office) is None
    dossier = uow.state.dossiers[code]
    assert dossier.status is Status.RESOLVED and len(uow.published) == published  # no status change
    read = DossierSchema().dump(dossier)
    assert read["open_tasks"] == [
        {
            "kind": "return_result",
            "cause": cause,
            "since": failed.data["occurred_at"],
            "shipment_id": "delivery-1",
        }
    ]
    assert uow.state.audit[code][-1].status_after == int(Status.RESOLVED)
    desk_return(uow, office, code)
    assert DossierSchema().dump(uow.state.dossiers[code])["open_tasks"] == []


def test_a_new_delivery_answers_the_task_and_its_delivery_returns_the_result(uow, office):  # noqa: F811
    code = resolved(uow, office)
    postal_intake.apply(postal("lost", code, office, "delivery"), uow, office)
    assert [t.cause for t in uow.state.dossiers[code].tasks] == ["delivery_lost"]
    again = postal("ordered", code, office, "delivery", shipment_id="delivery-2", status="created")
    assert postal_intake.apply(again, uow, office) is None
    assert uow.state.dossiers[code].tasks == []
    assert uow.state.audit[code][-1].action == "postal_delivery_ordered"
    postal_intake.apply(postal("delivered", code, office, "delivery", shipment_id="delivery-2"), uow, office)
    assert uow.state.dossiers[code].status is Status.RETURNED


def test_the_first_delivery_order_is_not_an_event_for_the_dossier(uow, office):  # noqa: F811
    code = resolved(uow, office)
    trail, published = len(uow.state.audit[code]), len(uow.published)
    postal_intake.apply(postal("ordered", code, office, "delivery", status="created"), uow, office)
    assert len(uow.published) == published and uow.state.dossiers[code].tasks == []
    # Only an audit line, whose consignment is the tracking number the citizen's lookup shows.
    assert len(uow.state.audit[code]) == trail + 1
    assert uow.state.audit[code][-1].details["consignment"] == "EL000000001VN"
    assert uow.state.dossiers[code].status is Status.RESOLVED


def test_the_intake_listens_for_every_end_of_a_shipment():
    names = {binding.split(".")[1] for binding in postal_intake.BINDINGS}
    assert {"handed_over", "delivered", "returned_to_sender", "lost", "cancelled", "ordered"} <= names


def test_a_late_failure_report_on_a_dossier_still_in_process_is_a_warning(uow, office, caplog):  # noqa: F811
    code = by_post(uow, office)
    postal_intake.apply(handed_over(code, office), uow, office)
    with caplog.at_level(logging.INFO, logger=postal_intake.__name__):
        postal_intake.apply(postal("lost", code, office, "pickup"), uow, office)
    assert uow.state.dossiers[code].status is Status.RECEIVED  # the record filed it: the report is late
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_citizens_lookup_shows_the_latest_deliverys_tracking_number(uow, office):  # noqa: F811
    """Tra cứu shows the consignment number of the result's delivery (the operator's, no address), and
    after a failed delivery and a new one, the new one's; a pickup's consignment is not the result's."""

    def view(code: str) -> dict:
        with uow.transaction() as tx:
            return service_layer._citizen_view(uow.state.dossiers[code], tx, office)

    code = resolved(uow, office)
    assert view(code)["postal_tracking_number"] is None  # by post, but nothing ordered yet
    first = postal("ordered", code, office, "delivery", status="created", consignment="EL000000011VN")
    postal_intake.apply(first, uow, office)
    assert view(code)["postal_tracking_number"] == "EL000000011VN"
    lost = postal("lost", code, office, "delivery", consignment="EL000000011VN")
    postal_intake.apply(lost, uow, office)
    again = postal(
        "ordered",
        code,
        office,
        "delivery",
        shipment_id="delivery-2",
        status="created",
        consignment="EL000000022VN",
    )
    postal_intake.apply(again, uow, office)
    assert view(code)["postal_tracking_number"] == "EL000000022VN"
    assert "EL000000001VN" not in str(view(code))  # the pickup's consignment (by_post) is not shown
