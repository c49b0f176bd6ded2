"""The applicant is told, end to end: the dossier service on the real broker and both databases, the
notifier consuming its events, the SMS, Zalo and e-mail gateways' simulators in their own processes,
faults injected (docs/notifications.md).

Expected texts are written out by hand from services/notifier/templates.yaml: an SMS goes unaccented
("Hồ sơ" -> "Ho so", "đ" -> "d"), and an appointment reads "HH:MM dd/mm/yyyy" in Vietnam time, UTC+7 all
year (no daylight saving). The quiet hours are off here (the tests run at any hour); their rule is
tested on a moved clock in tests/unit/test_notifier_domain.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from services.dossier.service import DossierService
from services.notifier.service import NotifierService
from shared.migrate import upgrade
from shared.units import EXAMPLE_3LEVEL_FILE
from tests.conftest import service_settings
from tests.support.broker import Subscriber, publish, wait_for
from tests.support.land_dossier import (
    DESK,
    DESK_OFFICER,
    LAND,
    TO_RESOLVED,
)
from tests.support.messaging import gateway_simulators

pytestmark = pytest.mark.integration

PHONE, NOT_FOLLOWER_PHONE = "0912345678", "0987000111"


def vietnam(instant: str) -> str:
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC) + timedelta(hours=7)
    return moment.strftime("%H:%M %d/%m/%Y")


class Desk:
    def __init__(self, dossier_url: str, notifier_url: str) -> None:
        self.dossier_url, self.notifier_url = dossier_url, notifier_url

    def file(self, channels: list[str], phone: str = PHONE) -> dict:
        applicant = {
            "full_name": "Lê Thị Hồng Nhung",
            "id_number": "089190004567",
            "phone": phone,
            "email": "nhung.le@example.vn",
            "notification_channels": channels,
        }
        body = {"procedure_code": LAND, "receiving_unit": DESK, "applicant": applicant}
        response = requests.post(
            f"{self.dossier_url}/api/v1/dossiers", json=body, headers=DESK_OFFICER, timeout=10
        )
        assert response.status_code == 201, response.text
        return response.json()

    def act(self, code: str, action: str, headers: dict, body: dict) -> dict:
        url = f"{self.dossier_url}/api/v1/dossiers/{code}/actions/{action}"
        response = requests.post(url, json=body, headers=headers, timeout=10)
        assert response.status_code == 200, (action, response.text)
        return response.json()

    def log(self, code: str) -> dict:
        url = f"{self.notifier_url}/api/v1/notifications/{code}"
        response = requests.get(url, headers=DESK_OFFICER, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def noticed(self, code: str, kind: str) -> dict | None:
        """The notice of ``kind`` once nothing of it is pending."""
        found = [n for n in self.log(code)["notices"] if n["kind"] == kind and n["state"] != "pending"]
        return found[0] if found else None


@pytest.fixture
def world(rabbit_config, database_url, container_factory):
    upgrade("dossier", database_url)
    upgrade("notifier", database_url)
    amqp = rabbit_config["AMQP_URI"]
    units = str(EXAMPLE_3LEVEL_FILE)
    dossier_config = service_settings(amqp, database_url, UNITS_FILE=units, MOTCUA_ENV="development")
    container_factory(DossierService, dossier_config).start()
    dossier_url = f"http://{dossier_config['WEB_SERVER_ADDRESS']}"
    with gateway_simulators(hang_seconds=2, not_followers=NOT_FOLLOWER_PHONE) as gateways:
        notifier_config = service_settings(
            amqp,
            database_url,
            UNITS_FILE=units,
            MOTCUA_ENV="development",
            SMS_GATEWAY_URL=gateways["sms"].url,
            ZALO_GATEWAY_URL=gateways["zalo"].url,
            EMAIL_GATEWAY_URL=gateways["email"].url,
            GATEWAY_TIMEOUT_SECONDS=1,
            NOTIFY_QUIET_HOURS="off",
            NOTIFY_RETRY_DELAYS="0.5",
            NOTIFY_MAX_ATTEMPTS=4,
            NOTIFY_SEND_SECONDS=0.2,
            NOTIFY_DAILY_CAP=20,
            NOTIFY_UNITS="89",
            DOSSIER_URL=dossier_url,
        )
        container_factory(NotifierService, notifier_config).start()
        yield Desk(dossier_url, f"http://{notifier_config['WEB_SERVER_ADDRESS']}"), gateways, amqp


def test_the_applicant_is_told_once_by_sms_and_no_more_after_withdrawing(world):
    desk, gateways, amqp = world
    sms = gateways["sms"]
    wire = Subscriber(amqp, "dossier.received.#")
    try:
        dossier = desk.file(["sms"])
        wire.drain(expect=1)
    finally:
        wire.close()
    code, received = dossier["code"], wire.messages[0]
    event_id = wire.envelopes[0]["id"]
    expected = f"Ho so {code} da duoc tiep nhan. Hen tra ket qua: {vietnam(dossier['due_at'])}."

    def texts_for(request_id: str) -> list[str]:
        return [m["text"] for m in sms.messages() if m["request_id"] == request_id]

    assert wait_for(lambda: texts_for(f"{event_id}:sms"), timeout=20) == [expected]
    first = next(m for m in sms.messages() if m["request_id"] == f"{event_id}:sms")
    assert first["phone"] == PHONE and first["brandname"] == "MOTCUA"

    # The same event again (the broker redelivers): the inbox knows it; nothing more is sent. Then the
    # rest of the life: a payment asked (how much), the result ready at the counter.
    publish(amqp, received.body, routing_key=received.delivery_info["routing_key"])
    for action, headers, body in TO_RESOLVED:
        desk.act(code, action, headers, body)
    assert wait_for(lambda: desk.noticed(code, "ready_for_collection"), timeout=20)
    assert texts_for(f"{event_id}:sms") == [expected]
    assert sum(1 for c in sms.calls() if c["body"]["request_id"] == f"{event_id}:sms") == 1
    got = [m["text"] for m in sms.messages() if m["phone"] == PHONE and code in m["text"]]
    assert got == [
        expected,
        f"Ho so {code}: vui long nop 525.000 dong phi, le phi de tiep tuc giai quyet.",
        f"Ho so {code} da co ket qua. Moi ong/ba den Bo phan mot cua nhan ket qua.",
    ]
    log = desk.log(code)
    assert [m["state"] for m in log["results"]] == ["sent", "sent", "sent"]
    assert all(PHONE not in str(m) for m in log["results"])  # the desk's log holds no contact

    # Another dossier: told of its receipt, then the consent withdrawn at the desk: no supplement message.
    other = desk.file(["sms", "email"])["code"]
    assert wait_for(lambda: desk.noticed(other, "received"), timeout=20)
    response = requests.post(
        f"{desk.dossier_url}/api/v1/dossiers/{other}/notification-consent/withdrawal",
        json={"reason": "Công dân không muốn nhận tin nhắn"},
        headers=DESK_OFFICER,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["applicant"]["notification_channels"] == []
    desk.act(
        other, "request_supplement", DESK_OFFICER, {"items": ["Bản sao sổ đỏ"], "reason": "Thiếu giấy tờ"}
    )
    assert wait_for(lambda: desk.noticed(other, "supplement_requested"), timeout=20)
    assert [m for m in sms.messages() if other in m["text"] and "bo sung" in m["text"]] == []
    assert [
        m for m in gateways["email"].messages() if other in m["subject"] and "bổ sung" in m["subject"]
    ] == []
    assert len([m for m in gateways["email"].messages() if other in m["subject"]]) == 1  # the receipt's

    # The applicant withdraws on the public lookup with the receipt's secret: a wrong one changes nothing.
    third = desk.file(["email"])
    code3, secret = third["code"], third["lookup"]["secret"]
    assert wait_for(lambda: desk.noticed(code3, "received"), timeout=20)
    url = f"{desk.dossier_url}/api/v1/lookups/notification-withdrawal"
    assert requests.post(url, json={"code": code3, "secret": "ABCD-EFGH"}, timeout=10).status_code == 404
    answer = requests.post(url, json={"code": code3, "secret": secret}, timeout=10)
    assert answer.status_code == 200 and "nhung.le@example.vn" not in answer.text, answer.text
    desk.act(code3, "request_supplement", DESK_OFFICER, {"items": ["Tờ khai"], "reason": "Thiếu giấy tờ"})
    assert wait_for(lambda: desk.noticed(code3, "supplement_requested"), timeout=20)
    assert [m["subject"] for m in gateways["email"].messages() if code3 in m["subject"]] == [
        f"Hồ sơ {code3} đã được tiếp nhận"
    ]


def test_a_failing_gateway_is_tried_again_and_zalo_falls_back_to_sms(world):
    desk, gateways, _ = world
    sms, zalo = gateways["sms"], gateways["zalo"]
    sms.inject("5xx", "timeout")
    first = desk.file(["sms"])["code"]

    def sent(code: str) -> list[dict]:
        return [m for m in desk.log(code)["results"] if m["state"] == "sent"]

    message = wait_for(lambda: sent(first), timeout=30)
    assert message, desk.log(first)
    # Two tries lost (a 503, then no answer within the timeout), the third accepted: one SMS, not lost.
    assert [c["answer"] for c in message[0]["calls"]] == ["unavailable", "unavailable", "accepted"]
    assert len([m for m in sms.messages() if first in m["text"]]) == 1

    # Zalo to a citizen who does not follow the Official Account: the same message goes by SMS.
    second = desk.file(["zalo"], phone=NOT_FOLLOWER_PHONE)["code"]
    message = wait_for(lambda: sent(second), timeout=20)
    assert message, str(desk.log(second)["results"])
    assert message[0]["channel"] == "zalo" and message[0]["via"] == "sms"
    assert [c["gateway"] + ":" + c["answer"] for c in message[0]["calls"]] == [
        "zalo:not_follower",
        "sms:accepted",
    ]
    texts = [m["text"] for m in sms.messages() if m["phone"] == NOT_FOLLOWER_PHONE]
    assert len(texts) == 1 and texts[0].startswith(f"Ho so {second} da duoc tiep nhan.")
    assert [c["answer"]["error"] for c in zalo.calls()] == [-213]
