"""HTTP subscriptions end to end: the outbound service on the real broker and both databases, events
published as the outbox relay publishes them, subscribers as local HTTP servers (allowed explicitly:
127.0.0.1 is loopback, which the guard refuses otherwise)."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope
from services.outbound import ops as outbound_ops
from services.outbound.service import OutboundService
from shared.broker import ConfirmingPublisher, Outgoing
from shared.events import Event
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts
from tests.conftest import bearer, free_port, service_settings
from tests.support.broker import wait_for
from tests.support.receiver import Receiver
from tests.support.token_endpoint import TokenEndpoint

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
def start_outbound(rabbit_config, database_url, container_factory):
    """The outbound service (``overrides`` on the tests' settings); its URL, the broker's, and a maker of
    receivers."""
    receivers: list[Receiver] = []

    def start(**overrides):
        upgrade("outbound", database_url)
        settings = {
            "MOTCUA_ENV": "development",
            "PORTAL_URL": "http://127.0.0.1:9",
            "DOSSIER_URL": "http://127.0.0.1:9",
            "PORTAL_SYNC_SECONDS": 3600,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "WEBHOOK_TIMEOUT_SECONDS": 2,
            "WEBHOOK_RETRY_BASE_SECONDS": 0.05,
            "WEBHOOK_MAX_ATTEMPTS": 7,
            "WEBHOOK_POLL_SECONDS": 0.1,
        }
        config = service_settings(rabbit_config["AMQP_URI"], database_url, **(settings | overrides))
        container_factory(OutboundService, config).start()

        def receiver() -> Receiver:
            receivers.append(Receiver())
            return receivers[-1]

        return f"http://{config['WEB_SERVER_ADDRESS']}", rabbit_config["AMQP_URI"], receiver

    yield start
    for r in receivers:
        r.close()


@pytest.fixture
def outbound(start_outbound):
    return start_outbound()


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


@pytest.fixture
def token_endpoint():
    endpoint = TokenEndpoint(free_port(), "commune-26734", "s3cret-of-the-commune")
    yield endpoint
    endpoint.stop()


def test_oauth2_client_credentials_a_token_cached_and_renewed_once_on_401(outbound, token_endpoint):
    base, amqp, receiver = outbound
    desk = bearer("subscriber", COMMUNE_A)
    hook = receiver()
    hook.authorize = token_endpoint.accepts  # the subscriber takes only a live token of its endpoint
    credentials = {"token_url": token_endpoint.url, "client_id": "commune-26734"}
    wrong = subscribe(
        base, desk, callback_url=hook.url, unit=COMMUNE_A, oauth2=credentials | {"client_secret": "guess"}
    )
    assert wrong.status_code == 422 and "invalid_client" in wrong.text
    assert token_endpoint.issued() == 0 and hook.received == []  # no token, so nothing was sent
    created = subscribe(
        base,
        desk,
        callback_url=hook.url,
        unit=COMMUNE_A,
        secret=SECRET,
        oauth2=credentials | {"client_secret": "s3cret-of-the-commune"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["oauth2"] == credentials | {"scope": None}  # the secret is never shown
    assert token_endpoint.issued() == 1 and len(hook.delivered()) == 1  # the test delivery, with it

    dossier = Dossier(COMMUNE_A)
    publish(amqp, dossier.event("received", 2), dossier.event("processing_started", 4, step="appraise"))
    assert wait_for(lambda: len(hook.delivered()) == 3, timeout=20)
    assert token_endpoint.issued() == 1  # cached: one token for all three deliveries

    token_endpoint.revoke()  # the subscriber no longer takes it: a 401, a new token, the same delivery
    publish(amqp, dossier.event("stopped", 8, reason="other"))
    assert wait_for(lambda: len(hook.delivered()) == 4, timeout=20)
    assert [r["status"] for r in hook.received] == [204, 204, 204, 401, 204]
    assert token_endpoint.issued() == 2
    assert [int(verified(d, SECRET)["sequence"]) for d in hook.delivered()[1:]] == [1, 2, 3]
    # The 401 and its renewal were one try: the delivery log shows one, answered 204.
    subscription = created.json()["id"]
    log = requests.get(f"{base}/api/v1/subscriptions/{subscription}/deliveries", headers=desk, timeout=10)
    assert [[a["status"] for a in d["attempts"]] for d in log.json()["results"]] == [[204]] * 3


def test_a_dead_delivery_is_listed_noticed_once_a_day_and_redelivered(start_outbound, database_url):
    base, amqp, receiver = start_outbound(WEBHOOK_MAX_ATTEMPTS=3)  # three tries: 0.05 s, then 0.2 s apart
    desk = bearer("subscriber", COMMUNE_A)
    hook, contact = receiver(), receiver()
    made = subscribe(
        base, desk, callback_url=hook.url, unit=COMMUNE_A, secret=SECRET, contact=contact.url
    ).json()
    mailed = subscribe(
        base, desk, callback_url=hook.url, unit=COMMUNE_A, secret=SECRET, contact="mot-cua@phuong.gov.vn"
    ).json()
    url = f"{base}/api/v1/subscriptions/{made['id']}"
    hook.always = (500, {})
    dossier = Dossier(COMMUNE_A)
    events = [dossier.event("received", 2), dossier.event("processing_started", 4, step="appraise")]
    publish(amqp, *events)

    def dead(subscription_url: str) -> list[dict]:
        return requests.get(f"{subscription_url}/dead-letters", headers=desk, timeout=10).json()["results"]

    mailed_url = f"{base}/api/v1/subscriptions/{mailed['id']}"
    assert wait_for(lambda: len(dead(url)) == 2 and len(dead(mailed_url)) == 2, timeout=30)
    letters = dead(url)
    # Newest first; each died after its three tries, in the dossier's order (the second waited).
    assert [d["event_id"] for d in letters] == [e.id for e in reversed(events)]
    assert all([a["status"] for a in d["attempts"]] == [500, 500, 500] for d in letters)
    assert all(d["state"] == "dead" and d["last_error"] is None for d in letters)
    # Two dead deliveries in a day: one notice, POSTed to the URL contact, signed as deliveries are.
    assert wait_for(lambda: len(contact.delivered()) == 1, timeout=10)
    time.sleep(0.5)
    notices = contact.delivered()
    assert len(notices) == 1
    notice = verified(notices[0], SECRET)
    assert notice["type"] == "vn.motcua.outbound.delivery_dead" and notice["event_id"] == events[0].id
    # The e-mail contact's notice waits for the operator's mailer, which takes it once.

    def take_mail() -> list[dict]:
        lines = io.StringIO()
        outbound_ops.mail_notices(database_url, None, lines)
        return [json.loads(line) for line in lines.getvalue().splitlines()]

    taken = take_mail()
    assert [(t["to"], t["notice"]["event_id"]) for t in taken] == [("mot-cua@phuong.gov.vn", events[0].id)]
    assert take_mail() == []

    hook.always = None  # the subscriber is back: one delivery by id, then the rest by time range
    first = letters[1]["id"]
    again = requests.post(f"{url}/redeliveries", json={"delivery_id": first}, headers=desk, timeout=10)
    assert again.status_code == 202 and again.json() == {"redelivered": 1}
    assert wait_for(lambda: [d["event"]["id"] for d in hook.delivered()][-1:] == [events[0].id], timeout=10)
    assert [d["event_id"] for d in dead(url)] == [events[1].id]
    window = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    ranged = requests.post(f"{url}/redeliveries", json=window, headers=desk, timeout=10)
    assert ranged.json() == {"redelivered": 2}  # both: the delivered one again (the receiver drops it by id)
    ids = {e.id for e in events}

    def delivered() -> list[str]:
        return [d["event"]["id"] for d in hook.delivered() if d["event"]["id"] in ids]

    # The first event twice (by id, then in the range), the second once (in the range).
    assert wait_for(lambda: sorted(delivered()) == sorted([events[0].id] * 2 + [events[1].id]), timeout=10)
    assert dead(url) == [] and len(dead(mailed_url)) == 2  # the other subscription's stay dead


def test_a_held_subscriber_does_not_delay_another_and_gets_one_event_per_dossier_at_a_time(start_outbound):
    """Isolation and order (docs/portal-and-subscriptions.md): while one subscriber holds every request
    it is sent, another of the same events gets all of them; the held one meanwhile has only the first
    event of each dossier on the way (several dossiers at once, never a later event of one whose
    earlier event is unanswered), and once released gets the rest, in order per dossier."""
    base, amqp, receiver = start_outbound(WEBHOOK_TIMEOUT_SECONDS=30, WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION=4)
    held, fast = receiver(), receiver()
    desk = bearer("subscriber", COMMUNE_A)
    for hook in (held, fast):
        assert subscribe(base, desk, callback_url=hook.url, unit=COMMUNE_A, secret=SECRET).status_code == 201
    held.hold = threading.Event()
    dossiers = [Dossier(COMMUNE_A) for _ in range(3)]
    lives = [d.life() for d in dossiers]
    events = [e for triple in zip(*lives, strict=True) for e in triple]
    try:
        publish(amqp, *events)
        ids = {e.id for e in events}
        assert wait_for(lambda: {d["event"]["id"] for d in fast.delivered()} >= ids, timeout=20)
        # The fast subscriber has all nine while the held one has answered none of them...
        assert [d for d in held.delivered() if d["event"]["id"] in ids] == []
        # ...and has on the way the first event of each dossier, all three at once, and nothing later.
        assert wait_for(lambda: len(held.arrived) >= 1 + 3, timeout=10)
        on_the_way = [a for a in held.arrived if a["id"] in ids]
        assert sorted(a["id"] for a in on_the_way) == sorted(life[0].id for life in lives)
    finally:
        held.hold.set()
    assert wait_for(lambda: {d["event"]["id"] for d in held.delivered()} >= ids, timeout=20)
    for hook in (held, fast):
        got = [d["event"] for d in hook.delivered() if d["event"]["id"] in ids]
        assert len(got) == len(events)  # each once
        per_dossier = defaultdict(list)
        for event in got:
            per_dossier[event["subject"]].append(int(event["sequence"]))
        assert dict(per_dossier) == {d.code: [1, 2, 3] for d in dossiers}


def test_new_deliveries_go_out_without_waiting_for_the_timer(start_outbound):
    """The consumer wakes the dispatcher when it stores deliveries: with the timer an hour away, they
    still go out, in order per dossier (a retry's time is what the timer is for)."""
    base, amqp, receiver = start_outbound(WEBHOOK_POLL_SECONDS=3600)
    hook = receiver()
    desk = bearer("subscriber", COMMUNE_A)
    assert subscribe(base, desk, callback_url=hook.url, unit=COMMUNE_A, secret=SECRET).status_code == 201
    dossier = Dossier(COMMUNE_A)
    events = dossier.life()
    publish(amqp, *events[:2])
    publish(amqp, events[2])
    ids = [e.id for e in events]
    assert wait_for(lambda: [d["event"]["id"] for d in hook.delivered()][1:] == ids, timeout=20)
