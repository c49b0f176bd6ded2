"""HTTP subscriptions end to end: the outbound service on the real broker and both databases, events
published as the outbox relay publishes them, subscribers as local HTTP servers (allowed explicitly:
127.0.0.1 is loopback, which the guard refuses otherwise)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope
from services.outbound.service import OutboundService
from shared.broker import ConfirmingPublisher, Outgoing
from shared.events import Event
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts
from tests.conftest import bearer, service_settings
from tests.support.broker import wait_for
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

REGISTRY = UnitRegistry.default()
EVENT_CLASSES = {event.name: event for event in EVENTS}
PROVINCE = "79"
COMMUNE_A, COMMUNE_B = (unit.code for unit in REGISTRY.children(PROVINCE)[:2])
SECRET = "whsec_" + "c3Vic2NyaWJlci1zZWNyZXQtb2YtdGhlLWNvbW11bmU="
NEW_SECRET = "whsec_" + "cm90YXRlZC1zdWJzY3JpYmVyLXNlY3JldC0yMDI2LTEy"


class Dossier:
    def __init__(self, unit: str) -> None:
        self.code, self.unit, self.sequence = f"{unit}-{uuid.uuid4().hex[:10]}", unit, 0
        now = datetime.now(UTC)
        self.facts = {
            "code": self.code,
            "procedure_code": "1.001193",
            "procedure_version": 1,
            "procedure_field": "civil_status",
            "receiving_unit": unit,
            "handling_unit": unit,
            "channel": Channel.COUNTER,
            "return_method": ReturnMethod.COUNTER,
            "online_level": None,
            "received_at": now,
            "due_at": now + timedelta(days=3),
            "original_due_at": now + timedelta(days=3),
        }

    def event(self, name: str, status: int, **extra) -> Event:
        self.sequence += 1
        facts = StatusFacts(**self.facts, status=Status(status), occurred_at=datetime.now(UTC))
        path = REGISTRY.routing_path(self.unit)
        return envelope(EVENT_CLASSES[name](facts=facts, **extra), path, path, self.sequence)

    def life(self) -> list[Event]:
        return [
            self.event("received", 2),
            self.event("processing_started", 4, step="appraise"),
            self.event("stopped", 8, reason="other"),
        ]


def publish(amqp_uri: str, *events: Event) -> None:
    publisher = ConfirmingPublisher(amqp_uri)
    try:
        outcomes = publisher.publish(
            [
                Outgoing(
                    message_id=e.id,
                    event_type=e.type,
                    routing_key=e.routing_key,
                    body=e.to_json().encode(),
                    cc=e.cc,
                )
                for e in events
            ]
        )
    finally:
        publisher.close()
    assert all(o.confirmed and not o.unroutable for o in outcomes)


@pytest.fixture
def outbound(rabbit_config, database_url, container_factory):
    upgrade("outbound", database_url)
    config = service_settings(
        rabbit_config["AMQP_URI"],
        database_url,
        MOTCUA_ENV="development",
        PORTAL_URL="http://127.0.0.1:9",
        DOSSIER_URL="http://127.0.0.1:9",
        PORTAL_SYNC_SECONDS=3600,
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        WEBHOOK_TIMEOUT_SECONDS=2,
        WEBHOOK_RETRY_BASE_SECONDS=0.05,
        WEBHOOK_MAX_ATTEMPTS=7,
        WEBHOOK_POLL_SECONDS=0.1,
    )
    container_factory(OutboundService, config).start()
    receivers: list[Receiver] = []

    def receiver() -> Receiver:
        receivers.append(Receiver())
        return receivers[-1]

    yield f"http://{config['WEB_SERVER_ADDRESS']}", rabbit_config["AMQP_URI"], receiver
    for r in receivers:
        r.close()


def subscribe(base: str, headers: dict, **body) -> requests.Response:
    return requests.post(f"{base}/api/v1/subscriptions", json=body, headers=headers, timeout=15)


def verified(delivery: dict, *secrets: str) -> dict:
    """Standard Webhooks verification, as a subscriber does it, with any one of its secrets."""
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    for secret in secrets:
        try:
            return Webhook(secret).verify(delivery["body"], headers)
        except Exception:  # noqa: BLE001 - the next secret may be the one
            continue
    raise AssertionError(f"no valid signature: {headers.get('webhook-signature')}")


def test_a_commune_subscriber_gets_exactly_its_events_signed_in_order_through_its_outage(outbound):
    base, amqp, receiver = outbound
    commune, slow = receiver(), receiver()
    desk = bearer("subscriber", COMMUNE_A)
    created = subscribe(
        base, desk, callback_url=commune.url, unit=COMMUNE_A, secret=SECRET, auth_header="Bearer abc"
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert (
        subscription["secrets"] == 1 and subscription["has_auth_header"] and created.json()["secret"] is None
    )
    test = commune.delivered()[0]
    assert test["event"]["type"] == "vn.motcua.outbound.subscription_test" and verified(test, SECRET)
    assert test["headers"]["Authorization"] == "Bearer abc"
    # Another subscriber of the province answers slowly: it must not hold the commune's deliveries.
    assert (
        subscribe(base, bearer("subscriber", PROVINCE), callback_url=slow.url, unit=PROVINCE).status_code
        == 201
    )
    slow.delay = 1.5

    commune.fail(3, 503, **{"Retry-After": "1"})  # an outage of its own: three refused tries
    mine, theirs = [Dossier(COMMUNE_A), Dossier(COMMUNE_A)], Dossier(COMMUNE_B)
    events = [e for pair in zip(mine[0].life(), mine[1].life(), theirs.life(), strict=True) for e in pair]
    publish(amqp, *events)

    expected = {e.id for e in events if e.subject in {d.code for d in mine}}
    started = time.monotonic()
    assert wait_for(lambda: {d["event"]["id"] for d in commune.delivered()[1:]} >= expected, timeout=30)
    took = time.monotonic() - started
    got = commune.delivered()[1:]
    assert [d["event"]["id"] for d in got if d["event"]["id"] in expected] == [d["event"]["id"] for d in got]
    assert len(got) == len(expected)  # exactly that commune's events, each delivered once
    per_dossier = defaultdict(list)
    for delivery in got:
        event = verified(delivery, SECRET)
        assert delivery["headers"]["Webhook-Id"] == event["id"]
        per_dossier[event["subject"]].append(int(event["sequence"]))
    assert dict(per_dossier) == {d.code: [1, 2, 3] for d in mine}  # in order per dossier
    # The body is the CloudEvent as published.
    published = {e.id: e.envelope() for e in events}
    assert all(d["event"] == published[d["event"]["id"]] for d in got)
    # Retry-After (1 s) was honoured after each refusal, and the slow province subscriber (1.5 s a
    # request, 9 events) did not hold the commune's deliveries up.
    refused = [r for r in commune.received if r["status"] == 503]
    assert len(refused) == 3 and took < 1.5 * 9
    log = requests.get(
        f"{base}/api/v1/subscriptions/{subscription['id']}/deliveries", headers=desk, timeout=10
    )
    attempts = [a["status"] for d in log.json()["results"] for a in d["attempts"]]
    assert sorted(attempts) == [204] * len(expected) + [503] * 3


def test_subscriptions_are_refused_with_their_reason(outbound):
    base, _amqp, receiver = outbound
    desk = bearer("subscriber", COMMUNE_A)
    failing = receiver()
    failing.always = (500, {})
    refused = subscribe(base, desk, callback_url=failing.url, unit=COMMUNE_A)
    assert refused.status_code == 422 and "HTTP 500" in refused.text
    private = subscribe(base, desk, callback_url="http://10.1.2.3/hook", unit=COMMUNE_A)
    assert private.status_code == 422 and "private" in private.text
    metadata = subscribe(base, desk, callback_url="http://169.254.169.254/latest", unit=COMMUNE_A)
    assert metadata.status_code == 422 and "link-local" in metadata.text
    outside = subscribe(base, desk, callback_url=receiver().url, unit=COMMUNE_B)
    assert outside.status_code == 403
    assert (
        subscribe(
            base, bearer("desk_officer", COMMUNE_A), callback_url=receiver().url, unit=COMMUNE_A
        ).status_code
        == 403
    )
    assert requests.get(f"{base}/api/v1/subscriptions", headers=desk, timeout=10).json()["count"] == 0


def test_a_410_disables_and_a_rotation_signs_with_both_secrets(outbound):
    base, amqp, receiver = outbound
    desk = bearer("subscriber", COMMUNE_A)
    hook = receiver()
    subscription = subscribe(base, desk, callback_url=hook.url, unit=COMMUNE_A, secret=SECRET).json()
    url = f"{base}/api/v1/subscriptions/{subscription['id']}"
    rotated = requests.patch(url, json={"add_secret": NEW_SECRET}, headers=desk, timeout=10)
    assert rotated.status_code == 200 and rotated.json()["secrets"] == 2
    dossier = Dossier(COMMUNE_A)
    publish(amqp, dossier.event("received", 2))
    assert wait_for(lambda: len(hook.delivered()) == 2, timeout=20)
    delivery = hook.delivered()[1]
    assert verified(delivery, SECRET) and verified(delivery, NEW_SECRET)  # either key verifies
    hook.always = (410, {})
    publish(amqp, dossier.event("processing_started", 4, step="appraise"))
    assert wait_for(lambda: requests.get(url, headers=desk, timeout=10).json()["active"] is False, timeout=20)
    assert "410" in requests.get(url, headers=desk, timeout=10).json()["disabled_reason"]
    disabled = "motcua_webhook_subscriptions_disabled 1.0"
    assert wait_for(lambda: disabled in requests.get(f"{base}/metrics", timeout=10).text, timeout=10)
    page = requests.get(f"{base}/metrics", timeout=10).text
    assert 'motcua_webhook_deliveries_total{outcome="gone"}' in page
    assert (
        requests.delete(
            url, headers=bearer("subscriber", COMMUNE_A, sub="someone-else"), timeout=10
        ).status_code
        == 404
    )
    assert requests.delete(url, headers=desk, timeout=10).status_code == 204
