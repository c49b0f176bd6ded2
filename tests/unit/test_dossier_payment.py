"""The dossier's side of the online payment (issue 21), on the in-memory unit of work: who may record a
payment and what the ``paid`` event says about where it was paid; what the payment service may read of
a dossier's dues, with and without the citizen's proof."""

from __future__ import annotations

import pytest

from services.dossier import lookup, service_layer
from services.dossier.dependencies import _shipped_catalogue, lifecycle_settings
from services.dossier.domain.model import Action, TransitionNotAllowed
from shared.domain import Forbidden, NotFound
from shared.vocabulary import Status
from tests.support.fakes import CALENDAR, UNITS, FakeDossiers, FakeLookups, FakeUnitOfWork
from tests.unit.test_dossier_service_layer import (
    AGENCY,
    DESK,
    OTHER_COMMUNE,
    PROVINCE,
    Clock,
    act,
    person,
    receive,
    status,
)

PAYMENT = person("payment_service", PROVINCE, sub="payment")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def office() -> service_layer.Office:
    return service_layer.Office(
        units=UNITS,
        calendar=CALENDAR,
        catalogue=_shipped_catalogue(),
        settings=lifecycle_settings({}),
        clock=Clock(),
        repository=FakeDossiers,
        lookups=FakeLookups,
    )


def awaiting_payment(uow, office, amount: int = 80_000) -> str:
    code = receive(uow, office)
    act(uow, office, code, Action.START_PROCESSING)
    act(uow, office, code, Action.REQUEST_PAYMENT, {"amount_vnd": amount})
    return code


def paid_events(uow) -> list[dict]:
    return [event.data for event in uow.published if event.name == "paid"]


def test_the_payment_service_records_a_payment_online_and_the_desk_at_the_counter(uow, office):
    online, counter = awaiting_payment(uow, office), awaiting_payment(uow, office)
    act(uow, office, online, Action.RECORD_PAYMENT, {"receipt_number": "MC-1"}, principal=PAYMENT)
    act(uow, office, counter, Action.RECORD_PAYMENT, {}, principal=DESK)
    assert status(uow, online) is status(uow, counter) is Status.PROCESSING
    by_code = {data["code"]: data for data in paid_events(uow)}
    assert by_code[online]["paid_online"] is True
    assert by_code[counter]["paid_online"] is False
    # Same event type, same status facts: only the flag tells the two paths apart.
    assert set(by_code[online]) == set(by_code[counter])


def test_a_second_record_of_one_payment_is_refused_and_publishes_nothing(uow, office):
    code = awaiting_payment(uow, office)
    act(uow, office, code, Action.RECORD_PAYMENT, {}, principal=PAYMENT)
    with pytest.raises(TransitionNotAllowed):
        act(uow, office, code, Action.RECORD_PAYMENT, {}, principal=PAYMENT)
    assert len(paid_events(uow)) == 1


def test_the_payment_service_acts_only_within_its_jurisdiction(uow, office):
    code = awaiting_payment(uow, office)
    elsewhere = person("payment_service", OTHER_COMMUNE, sub="payment")
    with pytest.raises(Forbidden):
        act(uow, office, code, Action.RECORD_PAYMENT, {}, principal=elsewhere)
    # It records payments; it does not run the dossier's life.
    with pytest.raises(Forbidden):
        act(uow, office, code, Action.STOP, {"reason": "x"}, principal=PAYMENT)
    assert status(uow, code) is Status.AWAITING_PAYMENT and paid_events(uow) == []


def _secret(uow, office, code: str) -> str:
    with uow.transaction() as tx:
        return service_layer.issue_lookup_secret(code, tx, office)


def test_the_dues_are_the_last_amount_asked_for_with_the_catalogue_fees(uow, office):
    code = awaiting_payment(uow, office, amount=80_000)
    secret = _secret(uow, office, code)
    due = service_layer.payment_due(service_layer.PaymentDue(PAYMENT, code, secret=secret), uow, office)
    assert due["status"] == 6 and due["amount_vnd"] == 80_000
    assert due["receiving_unit"] == "26740" and due["procedure_code"]
    # The printed form (ABCD-EFGH, lower case) proves as well as the raw secret.
    typed = lookup.printed(secret).lower()
    assert service_layer.payment_due(service_layer.PaymentDue(PAYMENT, code, secret=typed), uow, office)
    # The desk's path: no proof, the payment service checks the desk's jurisdiction itself.
    assert (
        service_layer.payment_due(service_layer.PaymentDue(PAYMENT, code), uow, office)["amount_vnd"]
        == 80_000
    )


def test_a_dossier_not_awaiting_payment_owes_nothing(uow, office):
    code = awaiting_payment(uow, office)
    act(uow, office, code, Action.RECORD_PAYMENT, {}, principal=DESK)
    due = service_layer.payment_due(service_layer.PaymentDue(PAYMENT, code), uow, office)
    assert due["status"] == 4 and due["amount_vnd"] is None


def test_a_wrong_proof_and_an_unknown_code_are_one_same_refusal_and_count_as_guesses(uow, office):
    code = awaiting_payment(uow, office)
    _secret(uow, office, code)
    refusals = []
    for asked in (
        service_layer.PaymentDue(PAYMENT, code, secret="ABCD-EFGH"),
        service_layer.PaymentDue(PAYMENT, "26740-260302-9999", secret="ABCD-EFGH"),
    ):
        with pytest.raises(NotFound) as refused:
            service_layer.payment_due(asked, uow, office)
        refusals.append(str(refused.value))
    assert refusals[0] == refusals[1]
    assert uow.state.table("dossier_lookups")[code].failures == 1


def test_only_the_payment_service_reads_dues_and_only_in_its_jurisdiction(uow, office):
    code = awaiting_payment(uow, office)
    with pytest.raises(Forbidden):
        service_layer.payment_due(service_layer.PaymentDue(AGENCY, code), uow, office)
    elsewhere = person("payment_service", OTHER_COMMUNE)
    with pytest.raises(NotFound):
        service_layer.payment_due(service_layer.PaymentDue(elsewhere, code), uow, office)


def test_the_lookup_pages_forms_may_post_to_the_payment_service_only():
    from services.dossier import lookup_page

    policy = lookup_page.load("https://pay.example.gov.vn:8443/thanh-toan").headers["Content-Security-Policy"]
    assert "form-action 'self' https://pay.example.gov.vn:8443;" in policy
    # Behind one ingress host the start page is a path: this origin ('self') already covers it.
    assert "form-action 'self';" in lookup_page.load("/thanh-toan").headers["Content-Security-Policy"]
    assert "form-action 'self';" in lookup_page.load().headers["Content-Security-Policy"]
