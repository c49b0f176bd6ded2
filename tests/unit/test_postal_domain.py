"""The shipment state machine, the status mapping and the hand-over record, without I/O.

Expected outcomes follow docs/contracts.md §3 ("a late or out-of-order report never moves a shipment
backwards") and docs/domain.md §8 Postal flows ("the dossier's filing time is the moment that record
is signed").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.postal.domain.model import (
    Direction,
    HandoverRecord,
    ItemOutcome,
    Report,
    Shipment,
    ShipmentStatus,
    TrackingOutcome,
)
from services.postal.domain.tracking import map_status
from shared.domain import Conflict, Invalid

T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
S = ShipmentStatus


def ordered(
    direction: Direction = Direction.DELIVERY, packages: int = 1, consignment: str = "EE1VN"
) -> Shipment:
    return Shipment.order(
        id=f"s-{consignment}",
        dossier_code="000.00.26734-261130-0001",
        direction=direction,
        operator="vnpost",
        consignment=consignment,
        receiving_unit="26734",
        packages=packages,
        fee_vnd=30000,
        created_at=T0,
    )


def hand_over(s: Shipment, at: datetime = T0) -> Shipment:
    """The desk and the postal worker co-sign the delivery record: the sealed result leaves the desk."""
    record = HandoverRecord.draw_up(
        id=f"r-{s.consignment}",
        direction=Direction.DELIVERY,
        receiving_unit="26734",
        counted=[(s, 1)],
        now=at,
    )
    record.sign(side="operator", signer="op", now=at)
    record.sign(side="desk", signer="desk", now=at)
    return s


def shipment(
    direction: Direction = Direction.DELIVERY, packages: int = 1, consignment: str = "EE1VN"
) -> Shipment:
    """A pickup as ordered; a delivery as ordered and handed over to the postal worker."""
    s = ordered(direction, packages, consignment)
    return hand_over(s) if direction == Direction.DELIVERY else s


def report(status: str, minutes: int, **kw) -> Report:
    return Report(
        operator_status=status,
        status=map_status("vnpost", status),
        occurred_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def test_a_delivery_moves_forward_and_records_one_event_per_step():
    s = shipment()
    outcomes = [
        s.track(report(name, m))
        for m, name in enumerate(["picked_up", "in_transit", "out_for_delivery", "delivered"], start=1)
    ]
    assert outcomes == [TrackingOutcome.APPLIED] * 4
    assert s.status == S.DELIVERED and s.delivered_at == T0 + timedelta(minutes=4)
    assert [e.name for e in s.events] == [
        "ordered",
        "handed_over",
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert s.events[-1].data["recipient_kind"] == "applicant"


def test_an_out_of_order_report_is_late_and_changes_nothing():
    s = shipment()
    assert s.track(report("out_for_delivery", 10)) == TrackingOutcome.APPLIED
    # in_transit happened before out_for_delivery but arrived after it
    assert s.track(report("in_transit", 5)) == TrackingOutcome.LATE
    assert s.status == S.OUT_FOR_DELIVERY and s.status_at == T0 + timedelta(minutes=10)


def test_a_forward_status_with_an_older_timestamp_is_late():
    s = shipment()
    s.track(report("in_transit", 10))
    assert s.track(report("out_for_delivery", 9)) == TrackingOutcome.LATE
    assert s.status == S.IN_TRANSIT


def test_nothing_moves_a_delivered_shipment():
    s = shipment()
    s.track(report("delivered", 10))
    for name in ("delivery_failed", "returned_to_sender", "in_transit", "cancelled"):
        assert s.track(report(name, 60)) == TrackingOutcome.LATE
    assert s.status == S.DELIVERED and len(s.events) == 3


def test_a_failed_attempt_is_retried_and_counted():
    s = shipment()
    for m, name in enumerate(
        ["out_for_delivery", "delivery_failed", "out_for_delivery", "delivered"], start=1
    ):
        assert s.track(report(name, m)) == TrackingOutcome.APPLIED
    assert s.attempts == 2 and s.status == S.DELIVERED


def test_attempts_are_counted_from_the_attempt_reports_whatever_their_arrival_order():
    # Two attempts happened: failed at minute 2, delivered at minute 4. The second out_for_delivery
    # (minute 3) arrives after the delivery: late, it moves nothing, and the count is still 2.
    s = shipment()
    for m, name in (
        (1, "out_for_delivery"),
        (2, "delivery_failed"),
        (4, "delivered"),
        (3, "out_for_delivery"),
    ):
        s.track(report(name, m))
    assert s.status == S.DELIVERED and s.attempts == 2
    # the failed attempt itself arriving after the delivery still counts: two attempts, not one
    late = shipment(consignment="EE2VN")
    for m, name in ((1, "out_for_delivery"), (4, "delivered"), (2, "delivery_failed")):
        late.track(report(name, m))
    assert late.attempts == 2
    # the same attempt reported twice (two webhook ids, one attempt) counts once; an attempt dated
    # after the delivery did not happen (nothing follows a delivery)
    late.track(report("delivery_failed", 2))
    late.track(report("delivery_failed", 9))
    assert late.attempts == 2 and late.status == S.DELIVERED


def test_the_first_reports_of_an_operator_whose_clock_runs_behind_are_applied():
    # The order is placed at T0 by this service's clock; the operator's clock runs 10 minutes behind, so
    # it stamps its first report 5 minutes "before" the order. Only its own times order its reports.
    s = shipment(Direction.PICKUP)
    assert s.track(report("picked_up", -5)) == TrackingOutcome.APPLIED
    assert s.track(report("in_transit", -3)) == TrackingOutcome.APPLIED
    assert s.track(report("delivered", -4)) == TrackingOutcome.LATE  # older than its own last report
    assert s.status == S.IN_TRANSIT and s.status_at == T0 - timedelta(minutes=3)


def test_a_delivery_moves_only_after_its_hand_over_record_is_co_signed():
    s = ordered()
    for m, name in enumerate(["picked_up", "in_transit", "delivered"], start=1):
        assert s.track(report(name, m)) == TrackingOutcome.BEFORE_HANDOVER
    assert s.track(lost(4)) == TrackingOutcome.BEFORE_HANDOVER
    assert s.status == S.CREATED and s.attempts == 0 and s.lost_at is None
    assert [e.name for e in s.events] == ["ordered"]
    hand_over(s, T0 + timedelta(minutes=5))
    # after the record the operator's reports apply, whatever its clock says about the record's time
    assert s.track(report("picked_up", 4)) == TrackingOutcome.APPLIED
    assert s.track(report("delivered", 6)) == TrackingOutcome.APPLIED
    assert s.status == S.DELIVERED and s.attempts == 1


def test_an_order_not_yet_handed_over_can_be_cancelled_with_the_dossier_s_reason():
    s = ordered()
    assert s.request_cancel("dossier_withdrawn") is True
    assert s.request_cancel("dossier_withdrawn") is False  # asked once
    assert s.track(report("cancelled", 1)) == TrackingOutcome.APPLIED
    event = s.events[-1]
    assert (event.name, event.data["reason_code"], event.data["direction"]) == (
        "cancelled",
        "dossier_withdrawn",
        "delivery",
    )
    assert s.request_cancel("dossier_refused") is False  # nothing left to cancel
    on_its_own = shipment(Direction.PICKUP, consignment="EE3VN")
    on_its_own.track(report("cancelled", 1))
    assert on_its_own.events[-1].data["reason_code"] == "operator_cancelled"


def test_returned_to_sender_is_final():
    s = shipment()
    s.track(report("delivery_failed", 1))
    assert s.track(report("returned_to_sender", 2)) == TrackingOutcome.APPLIED
    assert s.track(report("delivered", 3)) == TrackingOutcome.LATE
    assert s.is_final


def test_an_unknown_status_maps_to_no_movement():
    assert map_status("vnpost", "teleported") is None
    s = shipment()
    assert s.track(report("teleported", 1)) == TrackingOutcome.UNKNOWN_STATUS
    assert s.status == S.CREATED and len(s.events) == 2


def test_status_names_are_normalised():
    assert map_status("vnpost", "Out-For-Delivery") == S.OUT_FOR_DELIVERY
    assert map_status("vnpost", " RETURNED ") == S.RETURNED_TO_SENDER
    assert map_status("other-operator", "delivered") == S.DELIVERED


def test_a_repeated_status_is_recorded_without_change():
    s = shipment()
    s.track(report("in_transit", 1))
    assert s.track(report("in_transit", 2)) == TrackingOutcome.REPEATED
    assert s.status_at == T0 + timedelta(minutes=1)


def test_a_proxy_recipient_is_kept_on_the_shipment_but_not_on_the_event():
    s = shipment()
    s.track(report("delivered", 1, recipient_kind="proxy", recipient_name="Trần Văn B"))
    assert s.recipient_name == "Trần Văn B"
    assert s.events[-1].data["recipient_kind"] == "proxy"
    assert "Trần Văn B" not in repr(s.events[-1].data)


def pickup_record(*counts: tuple[Shipment, int]) -> HandoverRecord:
    return HandoverRecord.draw_up(
        id="r1", direction=Direction.PICKUP, receiving_unit="26734", counted=list(counts), now=T0
    )


def test_the_record_time_is_the_later_signature_and_the_filing_time():
    a, b = shipment(Direction.PICKUP, 2, "A"), shipment(Direction.PICKUP, 1, "B")
    record = pickup_record((a, 2), (b, 1))
    assert record.sign(side="operator", signer="op", now=T0 + timedelta(minutes=1)) is False
    done = record.sign(
        side="desk",
        signer="desk",
        now=T0 + timedelta(minutes=3),
        decisions={
            "A": (ItemOutcome.RECEIVED, None, None),
            "B": (ItemOutcome.REFUSED, "thiếu tờ khai", "incomplete_dossier"),
        },
    )
    assert done and record.signed_at == T0 + timedelta(minutes=3)
    handed = {e.data["consignment"]: e.data for s in (a, b) for e in s.events if e.name == "handed_over"}
    assert handed["A"]["filed_at"] == T0 + timedelta(minutes=3) and handed["A"]["outcome"] == "received"
    assert handed["B"]["filed_at"] is None and handed["B"]["reason_code"] == "incomplete_dossier"
    assert handed["B"]["has_reason_text"] is True and handed["A"]["reason_code"] is None
    # the desk's text stays on the record (Form 03, behind the API), never on the event
    assert "thiếu tờ khai" not in repr(handed["B"]) and record.items[1].reason == "thiếu tờ khai"


def test_a_record_is_signed_once_per_side_and_never_after_completion():
    a = shipment(Direction.PICKUP, 1, "A")
    record = pickup_record((a, 1))
    record.sign(side="operator", signer="op", now=T0)
    with pytest.raises(Conflict, match="already signed"):
        record.sign(side="operator", signer="op2", now=T0)
    record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None, None)})
    with pytest.raises(Conflict, match="cannot change"):
        record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None, None)})


def test_discrepancies_are_recorded_and_a_missing_package_cannot_be_received():
    a, b = shipment(Direction.PICKUP, 2, "A"), shipment(Direction.PICKUP, 1, "B")
    record = pickup_record((a, 1), (b, 0))
    assert record.discrepancies == [("A", "count_mismatch"), ("B", "missing")]
    with pytest.raises(Conflict, match="cannot be received"):
        record.sign(
            side="desk",
            signer="d",
            now=T0,
            decisions={"A": (ItemOutcome.RECEIVED, None, None), "B": (ItemOutcome.RECEIVED, None, None)},
        )
    assert record.desk_signed_at is None and [i.outcome for i in record.items] == [None, None]


def test_the_desk_decides_every_dossier_and_refusal_needs_a_reason():
    a, b = shipment(Direction.PICKUP, 1, "A"), shipment(Direction.PICKUP, 1, "B")
    record = pickup_record((a, 1), (b, 1))
    with pytest.raises(Conflict, match="undecided: B"):
        record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None, None)})
    with pytest.raises(Conflict, match="needs a reason"):
        record.sign(
            side="desk",
            signer="d",
            now=T0,
            decisions={"A": (ItemOutcome.RECEIVED, None, None), "B": (ItemOutcome.REFUSED, " ", "other")},
        )


def test_a_consignment_cannot_be_handed_over_twice_or_to_another_unit():
    a = shipment(Direction.PICKUP, 1, "A")
    record = pickup_record((a, 1))
    record.sign(side="operator", signer="op", now=T0)
    record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None, None)})
    with pytest.raises(Conflict, match="already handed over"):
        pickup_record((a, 1))
    other = shipment(Direction.PICKUP, 1, "C")
    with pytest.raises(Conflict, match="belongs to unit"):
        HandoverRecord.draw_up(
            id="r2", direction=Direction.PICKUP, receiving_unit="26735", counted=[(other, 1)], now=T0
        )


def lost(minutes: int, **kw) -> Report:
    return Report(
        operator_status="lost", status=None, occurred_at=T0 + timedelta(minutes=minutes), lost=True, **kw
    )


def test_a_lost_package_is_recorded_once_and_closes_the_shipment():
    s = shipment()
    s.track(report("in_transit", 1))
    assert s.track(lost(2)) == TrackingOutcome.LOST
    assert s.lost_at == T0 + timedelta(minutes=2) and s.is_closed and not s.is_final
    assert s.track(lost(3)) == TrackingOutcome.REPEATED  # the operator says it again: one incident
    assert [e.name for e in s.events] == ["ordered", "handed_over", "in_transit", "lost"]


def test_a_delivered_package_cannot_be_lost_afterwards():
    s = shipment()
    s.track(report("delivered", 1))
    assert s.track(lost(2)) == TrackingOutcome.LATE
    assert s.lost_at is None


def test_lost_is_an_incident_not_a_status():
    from services.postal.domain.tracking import is_lost

    assert is_lost("LOST") and is_lost("package-lost") and not is_lost("delivered")
    assert map_status("vnpost", "lost") is None


def test_a_loss_records_the_operator_s_compensation_and_cause_on_the_shipment_and_the_event():
    s = shipment()
    s.track(report("in_transit", 1))
    assert s.track(lost(2, compensation_vnd=250000, loss_cause="damaged")) == TrackingOutcome.LOST
    assert (s.compensation_vnd, s.loss_cause) == (250000, "damaged")
    event = s.events[-1]
    assert (event.name, event.data["reason_code"], event.data["compensation_vnd"]) == (
        "lost",
        "damaged",
        250000,
    )
    other = shipment(consignment="EE4VN")
    other.track(lost(1, loss_cause="eaten by goats"))  # a cause outside the vocabulary: "other", no text
    assert other.events[-1].data["reason_code"] == "other" and other.compensation_vnd is None
    other.track(lost(3, compensation_vnd=50000))  # the amount comes with a later report
    assert other.compensation_vnd == 50000


def test_a_redelivery_is_paid_by_whoever_caused_it_and_only_after_the_last_came_back():
    from services.postal.domain.model import check_redelivery, may_change_address

    s = shipment()
    with pytest.raises(Conflict, match="came back"):
        check_redelivery(s, "recipient_absent")  # still under way
    assert not may_change_address([s])
    s.track(report("delivery_failed", 1))
    s.track(report("returned_to_sender", 2))
    assert may_change_address([s])
    assert check_redelivery(s, "address_wrong") == "applicant"
    assert check_redelivery(s, "operator_fault") == "operator"
    assert check_redelivery(s, "agency_error") == "agency"
    with pytest.raises(Invalid, match="unknown redelivery cause"):
        check_redelivery(s, "because")
    gone = shipment(consignment="EE5VN")
    gone.track(lost(1))
    with pytest.raises(Conflict, match="lost_by_operator"):
        check_redelivery(gone, "recipient_absent")
    assert check_redelivery(gone, "lost_by_operator") == "operator"
    again = Shipment.order(
        id="s2",
        dossier_code=s.dossier_code,
        direction=Direction.DELIVERY,
        operator="vnpost",
        consignment="EE6VN",
        receiving_unit="26734",
        packages=1,
        fee_vnd=30000,
        created_at=T0,
        redelivery_cause="agency_error",
    )
    ordered_event = again.events[0].data
    assert (ordered_event["charged_to"], ordered_event["redelivery_cause"]) == ("agency", "agency_error")
