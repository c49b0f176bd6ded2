"""A payment's life (services/payment/domain/model.py) in plain Python: paid or failed once, never
backwards, the amount the dossier owes only, the reconciliation's window, the record owed to the dossier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.payment.domain.model import AmountMismatch, Payment, PaymentStatus, Window
from shared.domain import Conflict

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
WINDOW = Window(after=timedelta(minutes=30), until=timedelta(days=3))


def pending() -> Payment:
    return Payment(
        reference="MC1",
        dossier_code="26740-261207-0001",
        receiving_unit="26740",
        amount_vnd=150_000,
        started_at=START,
        started_by="citizen",
        payment_url="http://platform/pay/MC1",
    )


def test_a_confirmation_pays_once_and_a_repeat_or_a_later_pending_query_changes_nothing():
    payment = pending()
    assert payment.paid(amount_vnd=150_000, transaction="GD1", at=START, via="confirmation") is True
    assert payment.status is PaymentStatus.PAID and payment.owes_record
    assert payment.paid(amount_vnd=150_000, transaction="GD1", at=START, via="query") is False
    assert payment.settled_via == "confirmation"
    # A query that does not know yet, or a late failure of an earlier attempt: no movement.
    payment.still_pending(at=START + timedelta(hours=1))
    assert payment.failed(error_code="24", at=START, via="query") is False
    assert payment.status is PaymentStatus.PAID


def test_another_amount_than_the_one_due_is_refused_and_nothing_changes():
    payment = pending()
    with pytest.raises(AmountMismatch):
        payment.paid(amount_vnd=1, transaction="GD1", at=START, via="confirmation")
    assert payment.status is PaymentStatus.PENDING


def test_a_failed_payment_stays_failed():
    payment = pending()
    assert payment.failed(error_code="24", at=START, via="confirmation") is True
    assert payment.status is PaymentStatus.FAILED and not payment.owes_record
    with pytest.raises(Conflict):
        payment.paid(amount_vnd=150_000, transaction="GD1", at=START, via="query")


def test_the_window_asks_after_30_minutes_and_expires_after_3_days():
    payment = pending()
    assert not payment.due_for_query(START + timedelta(minutes=29), WINDOW)
    assert payment.due_for_query(START + timedelta(minutes=30), WINDOW)
    assert payment.expire(START + timedelta(days=3), WINDOW) is False
    assert payment.expire(START + timedelta(days=3, seconds=1), WINDOW) is True
    assert payment.status is PaymentStatus.EXPIRED and not payment.due_for_query(
        START + timedelta(days=4), WINDOW
    )


def test_a_fresh_pending_link_of_the_same_amount_is_given_again():
    payment = pending()
    assert payment.reusable(150_000, START + timedelta(minutes=10), WINDOW)
    assert not payment.reusable(200_000, START + timedelta(minutes=10), WINDOW)  # the agency asked again
    assert not payment.reusable(150_000, START + timedelta(minutes=30), WINDOW)  # about to be reconciled


def test_the_record_is_owed_until_the_dossier_took_it_once():
    payment = pending()
    with pytest.raises(Conflict):
        payment.record(at=START, outcome="recorded")
    payment.paid(amount_vnd=150_000, transaction="GD1", at=START, via="confirmation")
    payment.record(at=START + timedelta(minutes=1), outcome="recorded")
    payment.record(at=START + timedelta(minutes=2), outcome="dossier_not_awaiting")
    assert not payment.owes_record
    assert (payment.recorded_at, payment.record_outcome) == (START + timedelta(minutes=1), "recorded")
    assert payment.owes_receipt
    payment.keep_receipt(url="http://platform/receipts/MC1", content=b"{}", content_type="application/json")
    assert not payment.owes_receipt
