"""The notifier's send rounds on a moved clock, on both databases, with the SMS gateway's simulator in
its own process: the quiet hours (a message at night goes in the morning), the daily cap per recipient,
and a withdrawal while a message waits. The dossier service's read is a stand-in here (a dict of consents
and contacts); the real read, over HTTP, is exercised in tests/integration/test_notifications.py.

Expected instants are derived by hand: Vietnam is UTC+7 all year, so 23:30 there on 7 December is 16:30
UTC, and the quiet hours' end, 07:00 on the 8th, is 00:00 UTC on the 8th.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from services.notifier import service_layer
from services.notifier.domain.messages import DailyCap, QuietHours, RetryPolicy
from services.notifier.dossier_client import Contact
from services.notifier.gateways import GatewayClient, SmsGateway
from services.notifier.models import pipeline
from services.notifier.templates import load_templates
from shared.db import create_engine
from shared.events import Event
from shared.migrate import upgrade
from shared.uow import UnitOfWorkFactory
from tests.support.fakes import CALENDAR, UNITS
from tests.support.messaging import gateway_simulators

pytestmark = pytest.mark.integration

NIGHT = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)  # 23:30 in Vietnam
MORNING = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)  # 07:00 in Vietnam
PHONE = "0912345678"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Consents:
    """The dossier service's notification-contact read, as a dict: code -> channels."""

    def __init__(self) -> None:
        self.channels: dict[str, tuple[str, ...]] = {}

    def contact(self, code: str) -> Contact:
        return Contact(self.channels[code], PHONE, None, "Chứng thực bản sao", ())


def received(code: str) -> Event:
    data = {"code": code, "receiving_unit": "26740", "due_at": "2026-12-10T09:30:00Z"}
    return Event(source="dossier", name="received", subject=code, data=data, unit_path="79.26740", sequence=1)


@pytest.fixture
def rounds(database_url):
    upgrade("notifier", database_url)
    engine = create_engine(database_url)
    uow = UnitOfWorkFactory(engine, pipeline, None, "amqp://unused")
    with gateway_simulators() as gateways:
        client = GatewayClient("sms", gateways["sms"].url, timeout=2)
        consents, clock = Consents(), Clock(NIGHT)
        herald = service_layer.Herald(
            units=UNITS,
            calendar=CALENDAR,
            clock=clock,
            dossiers=consents,
            gateways={"sms": SmsGateway(client, "MOTCUA")},
            templates=load_templates(),
            quiet=QuietHours(time(22, 0), time(7, 0)),
            cap=DailyCap(2),
            policy=RetryPolicy((1.0,), 3),
            recipient_key=b"k" * 32,
        )
        yield uow, herald, consents, clock, gateways["sms"]
        client.close()
    engine.dispose()


def test_at_night_a_message_waits_for_the_morning_and_a_withdrawal_stops_it(rounds):
    uow, herald, consents, clock, sms = rounds
    consents.channels = {"A-1": ("sms",), "A-2": ("sms",)}
    for code in ("A-1", "A-2"):
        assert service_layer.enqueue(received(code), uow, herald) is True
    assert service_layer.send_round(uow, herald) == {"deferred": 2}
    assert sms.messages() == []
    with uow.transaction() as tx:
        log = service_layer.dossier_log(service_layer.ReadLog(_desk(), "A-1"), tx, herald)["results"]
    assert [(m["state"], m["next_attempt_at"]) for m in log] == [("deferred", MORNING)]

    clock.now = MORNING - timedelta(seconds=1)  # 06:59:59: still quiet, and nothing is due
    assert service_layer.send_round(uow, herald) == {}
    consents.channels["A-2"] = ()  # A-2's applicant withdraws before the morning
    clock.now = MORNING
    assert service_layer.send_round(uow, herald) == {"sent": 1}
    assert [m["text"][:16] for m in sms.messages()] == ["Ho so A-1 da duo"]
    with uow.transaction() as tx:
        log = service_layer.dossier_log(service_layer.ReadLog(_desk(), "A-2"), tx, herald)
    assert [m["state"] for m in log["results"]] == ["withdrawn"] and log["notices"][0]["state"] == "done"


def test_the_daily_cap_counts_one_recipient_per_vietnam_day(rounds):
    uow, herald, consents, clock, sms = rounds
    clock.now = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # 10:00 on the 8th in Vietnam
    consents.channels = {code: ("sms",) for code in ("B-1", "B-2", "B-3", "B-4")}
    for code in ("B-1", "B-2", "B-3"):
        service_layer.enqueue(received(code), uow, herald)
        assert service_layer.send_round(uow, herald)
    # Three dossiers of one phone: the cap (2) lets two through; the third ends capped.
    assert [m["text"][:9] for m in sms.messages()] == ["Ho so B-1", "Ho so B-2"]
    with uow.transaction() as tx:
        log = service_layer.dossier_log(service_layer.ReadLog(_desk(), "B-3"), tx, herald)["results"]
    assert [m["state"] for m in log] == ["capped"]
    # The next Vietnam day starts at 17:00 UTC: a new count.
    clock.now = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)  # 08:00 on the 9th
    service_layer.enqueue(received("B-4"), uow, herald)
    assert service_layer.send_round(uow, herald) == {"sent": 1}
    assert len(sms.messages()) == 3


def _desk():
    from shared.auth import Principal

    return Principal("desk_officer@79", frozenset({"desk_officer"}), ("79",))
