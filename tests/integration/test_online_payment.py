"""Fees paid online, end to end: the dossier service and the payment service on the real broker and
both databases, the payment platform simulator in its own process, each of its faults injected.

What "exactly once" means here, from the rule (a confirmed payment ends status 6 once; docs/payment.md):
for each dossier asked for fees and paid, the broker carries exactly one ``dossier.paid``, with
``paid_online`` true, and the dossier is back in processing (status 4); a failed payment leaves it at 6;
a forged confirmation is refused (401), kept, and changes nothing. The counter payment still works and
publishes the same event with ``paid_online`` false.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import requests
import sqlalchemy as sa

from services.dossier.service import DossierService
from services.payment.domain import protocol
from services.payment.service import PaymentService
from shared.migrate import upgrade
from tests.conftest import bearer, service_settings
from tests.support.broker import Subscriber, wait_for
from tests.support.payment import SECRET, PlatformSimulator, payment_platform
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

COMMUNE, PROCEDURE = "26740", "1.012767"
DESK = bearer("desk_officer", COMMUNE)
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203009876"}
FEES = 150_000
QUERY_AFTER = 3  # seconds: the reconciliation's window opens this long after a payment's start


@pytest.fixture
def world(rabbit_config, database_url, container_factory):
    upgrade("dossier", database_url)
    upgrade("payment", database_url)
    amqp = rabbit_config["AMQP_URI"]
    payment_config = service_settings(
        amqp,
        database_url,
        MOTCUA_ENV="development",
        PAYMENT_PARTNER_SECRET=SECRET,
        PAYMENT_QUERY_AFTER_SECONDS=QUERY_AFTER,
        PAYMENT_QUERY_FOR_SECONDS=3600,
        PAYMENT_RECONCILE_SECONDS=0.5,
        PAYMENT_TIMEOUT_SECONDS=1,
        PAYMENT_ATTEMPTS=3,
    )
    payment_url = f"http://{payment_config['WEB_SERVER_ADDRESS']}"
    dossier_config = service_settings(
        amqp, database_url, MOTCUA_ENV="development", PAYMENT_START_URL=f"{payment_url}/thanh-toan"
    )
    container_factory(DossierService, dossier_config).start()
    dossier_url = f"http://{dossier_config['WEB_SERVER_ADDRESS']}"
    wire = Subscriber(amqp, "dossier.paid.#")
    # The payment service reaches the dossier service through a proxy a test can cut (an outage).
    proxy = TcpProxy("127.0.0.1", int(dossier_config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]))
    with payment_platform(f"{payment_url}/api/v1/platform/confirmations", hang_seconds=2) as platform:
        payment_config.update(PAYMENT_PLATFORM_URL=platform.url, DOSSIER_URL=f"http://127.0.0.1:{proxy.port}")
        container_factory(PaymentService, payment_config).start()
        try:
            yield World(dossier_url, payment_url, platform, wire, database_url, proxy)
        finally:
            wire.close()
            proxy.close()


@dataclass
class World:
    dossier_url: str
    payment_url: str
    platform: PlatformSimulator
    wire: Subscriber
    database_url: str
    proxy: TcpProxy


def awaiting_payment(dossier_url: str) -> tuple[str, str]:
    """A dossier received, in processing, asked for fees (status 6); its code and receipt secret."""
    body = {"procedure_code": PROCEDURE, "receiving_unit": COMMUNE, "applicant": APPLICANT}
    filed = requests.post(f"{dossier_url}/api/v1/dossiers", json=body, headers=DESK, timeout=10)
    assert filed.status_code == 201, filed.text
    code, secret = filed.json()["code"], filed.json()["lookup"]["secret"]
    for action, body in (("start_processing", {}), ("request_payment", {"amount_vnd": FEES})):
        acted = requests.post(
            f"{dossier_url}/api/v1/dossiers/{code}/actions/{action}", json=body, headers=DESK, timeout=10
        )
        assert acted.status_code == 200, acted.text
    return code, secret


def start(payment_url: str, code: str, secret: str) -> dict:
    response = requests.post(
        f"{payment_url}/api/v1/payments", json={"code": code, "secret": secret}, timeout=15
    )
    assert response.status_code == 201, response.text
    return response.json()


def status(dossier_url: str, code: str) -> int:
    return requests.get(f"{dossier_url}/api/v1/dossiers/{code}", headers=DESK, timeout=10).json()["status"]


def payment(payment_url: str, reference: str) -> dict:
    return requests.get(f"{payment_url}/api/v1/payments/{reference}", headers=DESK, timeout=10).json()


def settled(payment_url: str, reference: str) -> dict | None:
    """The payment once the dossier took it and its receipt is kept (nothing left to reconcile)."""
    found = payment(payment_url, reference)
    return found if found.get("recorded_at") and found.get("receipt_kept") else None


def test_a_dossier_is_paid_online_once_through_every_fault(world):
    dossier_url, payment_url, platform, wire, database_url = (
        world.dossier_url,
        world.payment_url,
        world.platform,
        world.wire,
        world.database_url,
    )
    # The lookup offers the payment while the dossier awaits it, with the amount the agency asked for.
    code, secret = awaiting_payment(dossier_url)
    view = requests.post(
        f"{dossier_url}/api/v1/lookups", json={"code": code, "secret": secret}, timeout=10
    ).json()
    assert view["to_do"] == {
        "kind": "payment",
        "items": [],
        "amount_vnd": FEES,
        "payment_url": f"{payment_url}/thanh-toan",
    }
    platform.inject("timeout@init")  # the first INIT hangs past the client's timeout: retried, same reference
    started = start(payment_url, code, secret)
    assert started["amount_vnd"] == FEES and started["payment_url"].startswith(platform.url)

    def init_calls():
        # The hung call is listed when its hang ends, which may be after the retry's answer.
        calls = [c for c in platform.received()["calls"] if c["operation"] == "init"]
        return calls if len(calls) >= 2 else None

    init_calls = wait_for(init_calls, timeout=10)
    assert [c["body"]["MaThamChieu"] for c in init_calls] == [started["reference"]] * 2
    assert sorted(c["fault"] or "" for c in init_calls) == ["", "timeout"]
    assert init_calls[-1]["body"]["ThongTinBienLai"]["MaHoSo"] == code
    # Asking again while the link is fresh gives the same transaction, not a second one.
    again = start(payment_url, code, secret)
    assert again["reference"] == started["reference"] and again["reused"] is True

    # 1. Confirmation twice: recorded once.
    platform.pay(started["reference"], fault="callback_twice")
    cases = {code: started["reference"]}

    # 2. Confirmation lost: the reconciliation's query finds it paid.
    lost, lost_secret = awaiting_payment(dossier_url)
    cases[lost] = start(payment_url, lost, lost_secret)["reference"]
    platform.pay(cases[lost], fault="callback_lost")

    # 3. Confirmation before the query knows it: the query's "pending" moves nothing back.
    early, early_secret = awaiting_payment(dossier_url)
    cases[early] = start(payment_url, early, early_secret)["reference"]
    platform.pay(cases[early], fault="callback_before_query")

    # 4. A forged confirmation (wrong checksum): 401, kept, nothing changes; the real payment is then
    #    found by the reconciliation, as a lost one.
    forged, forged_secret = awaiting_payment(dossier_url)
    cases[forged] = start(payment_url, forged, forged_secret)["reference"]
    platform.pay(cases[forged], fault="wrong_checksum")

    def forged_answer():
        sent = [c for c in platform.received()["confirmations"] if c["body"]["MaThamChieu"] == cases[forged]]
        return sent[0] if sent else None

    assert wait_for(forged_answer, timeout=10)["status"] == 401
    assert status(dossier_url, forged) == 6 and payment(payment_url, cases[forged])["status"] == "pending"
    with sa.create_engine(database_url).connect() as connection:
        kept = connection.execute(sa.text("SELECT reason, reference FROM payment_rejections")).all()
    assert ("checksum", cases[forged]) in [tuple(row) for row in kept]

    # 5. A failed payment: the dossier stays at 6; paying again is a new transaction.
    failing, failing_secret = awaiting_payment(dossier_url)
    first = start(payment_url, failing, failing_secret)["reference"]
    platform.pay(first, outcome="failed")
    assert wait_for(lambda: payment(payment_url, first)["status"] == "failed", timeout=10)
    assert status(dossier_url, failing) == 6
    second = start(payment_url, failing, failing_secret)
    assert second["reference"] != first and second["reused"] is False
    platform.pay(second["reference"])
    cases[failing] = second["reference"]

    # 6. The dossier service is down when the confirmation arrives: the payment is kept, paid and owed,
    #    and recorded once it is back (the reconciliation retries).
    outage, outage_secret = awaiting_payment(dossier_url)
    cases[outage] = start(payment_url, outage, outage_secret)["reference"]
    world.proxy.cut()
    platform.pay(cases[outage])
    assert wait_for(lambda: payment(payment_url, cases[outage])["status"] == "paid", timeout=10)
    assert status(dossier_url, outage) == 6 and payment(payment_url, cases[outage])["recorded_at"] is None
    world.proxy.restore()

    # The counter payment still works: the same event, paid_online false.
    counter, _ = awaiting_payment(dossier_url)
    paid = requests.post(
        f"{dossier_url}/api/v1/dossiers/{counter}/actions/record_payment",
        json={"receipt_number": "BL-0042"},
        headers=DESK,
        timeout=10,
    )
    assert paid.status_code == 200, paid.text

    # Every case ends paid, recorded on its dossier, its receipt kept; the reconciliation has run
    # over each (the window opens after QUERY_AFTER seconds), so a second record would have happened.
    for dossier, reference in cases.items():
        done = wait_for(lambda reference=reference: settled(payment_url, reference), timeout=30)
        assert done, payment(payment_url, reference)
        assert done["status"] == "paid" and done["record_outcome"] == "recorded", done
        assert status(dossier_url, dossier) == 4
    assert payment(payment_url, cases[lost])["settled_via"] == "query"
    assert payment(payment_url, cases[early])["settled_via"] == "confirmation"
    receipt = requests.get(f"{payment_url}/api/v1/payments/{cases[lost]}/receipt", headers=DESK, timeout=10)
    assert receipt.status_code == 200 and json.loads(receipt.content)["SoTien"] == FEES

    wire.drain(expect=len(cases) + 1, timeout=20, quiet=QUERY_AFTER)
    paid_events = [(e["subject"], e["data"]["paid_online"]) for e in wire.envelopes]
    assert sorted(paid_events) == sorted([(dossier, True) for dossier in cases] + [(counter, False)])


def test_a_forged_or_malformed_confirmation_is_refused_kept_and_changes_nothing(world):
    dossier_url, payment_url, database_url = world.dossier_url, world.payment_url, world.database_url
    code, secret = awaiting_payment(dossier_url)
    reference = start(payment_url, code, secret)["reference"]
    confirmation = {
        "LoaiBanTin": protocol.CONFIRMATION,
        "PhienBan": protocol.VERSION,
        "MaDoiTac": "MOTCUA",
        "MaThamChieu": reference,
        "MaGiaoDich": "GD1",
        "SoTien": FEES,
        "MaLoi": "00",
        "ThoiGianGD": "20261207130500",
    }
    url = f"{payment_url}/api/v1/platform/confirmations"
    wrong = protocol.signed(confirmation, protocol.CONFIRMATION_FIELDS, "a guessed secret")
    other_amount = {**protocol.signed(confirmation, protocol.CONFIRMATION_FIELDS, SECRET), "SoTien": 1}
    for body in (wrong, other_amount):
        answer = requests.post(url, json=body, timeout=10)
        assert answer.status_code == 401, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
    assert requests.post(url, data=b"not json", timeout=10).status_code == 401
    assert status(dossier_url, code) == 6 and payment(payment_url, reference)["status"] == "pending"
    with sa.create_engine(database_url).connect() as connection:
        kept = connection.execute(sa.text("SELECT count(*) FROM payment_rejections")).scalar()
    assert kept == 3
    # A wrong proof is the lookup's one refusal; a dossier that does not await payment is a 409.
    refused = requests.post(
        f"{payment_url}/api/v1/payments", json={"code": code, "secret": "ABCD-EFGH"}, timeout=10
    )
    assert refused.status_code == 404
    # The right confirmation, signed, is taken.
    taken = requests.post(
        url, json=protocol.signed(confirmation, protocol.CONFIRMATION_FIELDS, SECRET), timeout=10
    )
    assert taken.status_code == 200 and taken.json()["outcome"] == "paid"
    assert status(dossier_url, code) == 4
    done = requests.post(f"{payment_url}/api/v1/payments", json={"code": code, "secret": secret}, timeout=10)
    assert done.status_code == 409


def test_a_payment_confirmed_after_the_desk_recorded_one_is_flagged_not_recorded_twice(world):
    """Paid at the counter while an online payment was open: the platform's later confirmation is kept,
    the dossier refuses a second record (it no longer awaits payment), and the payment says so for an
    operator (a refund may be owed); the dossier published one paid event, the counter's."""
    dossier_url, payment_url = world.dossier_url, world.payment_url
    code, secret = awaiting_payment(dossier_url)
    reference = start(payment_url, code, secret)["reference"]
    counter = requests.post(
        f"{dossier_url}/api/v1/dossiers/{code}/actions/record_payment", json={}, headers=DESK, timeout=10
    )
    assert counter.status_code == 200, counter.text
    world.platform.pay(reference)
    done = wait_for(
        lambda: payment(payment_url, reference).get("recorded_at") and payment(payment_url, reference)
    )
    assert done["status"] == "paid" and done["record_outcome"] == "dossier_not_awaiting"
    world.wire.drain(expect=1, timeout=10, quiet=1)
    assert [(e["subject"], e["data"]["paid_online"]) for e in world.wire.envelopes] == [(code, False)]
