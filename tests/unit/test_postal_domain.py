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
    PostalError,
    Report,
    Shipment,
    ShipmentStatus,
    TrackingOutcome,
)
from services.postal.domain.tracking import map_status

T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
S = ShipmentStatus


def shipment(
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
    assert s.status == S.DELIVERED and len(s.events) == 2


def test_a_failed_attempt_is_retried_and_counted():
    s = shipment()
    for m, name in enumerate(
        ["out_for_delivery", "delivery_failed", "out_for_delivery", "delivered"], start=1
    ):
        assert s.track(report(name, m)) == TrackingOutcome.APPLIED
    assert s.attempts == 2 and s.status == S.DELIVERED


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
    assert s.status == S.CREATED and len(s.events) == 1


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
        decisions={"A": (ItemOutcome.RECEIVED, None), "B": (ItemOutcome.REFUSED, "thiếu tờ khai")},
    )
    assert done and record.signed_at == T0 + timedelta(minutes=3)
    handed = {e.data["consignment"]: e.data for s in (a, b) for e in s.events if e.name == "handed_over"}
    assert handed["A"]["filed_at"] == T0 + timedelta(minutes=3) and handed["A"]["outcome"] == "received"
    assert handed["B"]["filed_at"] is None and handed["B"]["reason"] == "thiếu tờ khai"


def test_a_record_is_signed_once_per_side_and_never_after_completion():
    a = shipment(Direction.PICKUP, 1, "A")
    record = pickup_record((a, 1))
    record.sign(side="operator", signer="op", now=T0)
    with pytest.raises(PostalError, match="already signed"):
        record.sign(side="operator", signer="op2", now=T0)
    record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None)})
    with pytest.raises(PostalError, match="cannot change"):
        record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None)})


def test_discrepancies_are_recorded_and_a_missing_package_cannot_be_received():
    a, b = shipment(Direction.PICKUP, 2, "A"), shipment(Direction.PICKUP, 1, "B")
    record = pickup_record((a, 1), (b, 0))
    assert record.discrepancies == [("A", "count_mismatch"), ("B", "missing")]
    with pytest.raises(PostalError, match="cannot be received"):
        record.sign(
            side="desk",
            signer="d",
            now=T0,
            decisions={"A": (ItemOutcome.RECEIVED, None), "B": (ItemOutcome.RECEIVED, None)},
        )
    assert record.desk_signed_at is None and [i.outcome for i in record.items] == [None, None]


def test_the_desk_decides_every_dossier_and_refusal_needs_a_reason():
    a, b = shipment(Direction.PICKUP, 1, "A"), shipment(Direction.PICKUP, 1, "B")
    record = pickup_record((a, 1), (b, 1))
    with pytest.raises(PostalError, match="undecided: B"):
        record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None)})
    with pytest.raises(PostalError, match="needs a reason"):
        record.sign(
            side="desk",
            signer="d",
            now=T0,
            decisions={"A": (ItemOutcome.RECEIVED, None), "B": (ItemOutcome.REFUSED, " ")},
        )


def test_a_consignment_cannot_be_handed_over_twice_or_to_another_unit():
    a = shipment(Direction.PICKUP, 1, "A")
    record = pickup_record((a, 1))
    record.sign(side="operator", signer="op", now=T0)
    record.sign(side="desk", signer="d", now=T0, decisions={"A": (ItemOutcome.RECEIVED, None)})
    with pytest.raises(PostalError, match="already handed over"):
        pickup_record((a, 1))
    other = shipment(Direction.PICKUP, 1, "C")
    with pytest.raises(PostalError, match="belongs to unit"):
        HandoverRecord.draw_up(
            id="r2", direction=Direction.PICKUP, receiving_unit="26735", counted=[(other, 1)], now=T0
        )


def lost(minutes: int) -> Report:
    return Report(operator_status="lost", status=None, occurred_at=T0 + timedelta(minutes=minutes), lost=True)


def test_a_lost_package_is_recorded_once_and_closes_the_shipment():
    s = shipment()
    s.track(report("in_transit", 1))
    assert s.track(lost(2)) == TrackingOutcome.LOST
    assert s.lost_at == T0 + timedelta(minutes=2) and s.is_closed and not s.is_final
    assert s.track(lost(3)) == TrackingOutcome.REPEATED  # the operator says it again: one incident
    assert [e.name for e in s.events] == ["ordered", "in_transit", "lost"]


def test_a_delivered_package_cannot_be_lost_afterwards():
    s = shipment()
    s.track(report("delivered", 1))
    assert s.track(lost(2)) == TrackingOutcome.LATE
    assert s.lost_at is None


def test_lost_is_an_incident_not_a_status():
    from services.postal.domain.tracking import is_lost

    assert is_lost("LOST") and is_lost("package-lost") and not is_lost("delivered")
    assert map_status("vnpost", "lost") is None
