"""The metrics service on the real broker and both databases: events in, /metrics and reports out.

Dossier events are published to ``egov.events`` the way the outbox relay publishes them (routing
key, CC for the handling unit, publisher confirms); the service under test consumes them from its
own queue and answers over HTTP.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope
from services.metrics.service import QUEUE, MetricsService
from shared.broker import ConfirmingPublisher, Outgoing
from shared.events import Event
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts
from tests.conftest import bearer, metrics_settings
from tests.support.broker import dead_letters

pytestmark = pytest.mark.integration

REGISTRY = UnitRegistry.default()
EVENT_CLASSES = {event.name: event for event in EVENTS}
PROVINCE = "79"
COMMUNE_A, COMMUNE_B = (unit.code for unit in REGISTRY.children(PROVINCE)[:2])
OTHER_PROVINCE_COMMUNE = REGISTRY.children("01")[0].code


class Dossier:
    """Builds the events of one dossier, numbered in order, with the status facts of each."""

    def __init__(self, unit: str, *, received_at: datetime, due_at: datetime, **facts) -> None:
        self.code = f"{unit}-{uuid.uuid4().hex[:10]}"
        self.unit = unit
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
            "received_at": received_at,
            "due_at": due_at,
            "original_due_at": due_at,
            **facts,
        }
        self.sequence = 0

    def event(self, name: str, status: int, at: datetime | None = None, **extra) -> Event:
        """The event as the dossier service builds it (its event classes, its envelope)."""
        self.sequence += 1
        at = at or datetime.now(UTC)
        facts = StatusFacts(**self.facts, status=Status(status), occurred_at=at)
        return envelope(
            EVENT_CLASSES[name](facts=facts, **extra),
            REGISTRY.routing_path(self.unit),
            REGISTRY.routing_path(facts.handling_unit),
            self.sequence,
            time=at,
        )

    def resolved(self, at: datetime, timeliness: str = "early", working_days: float = 2.0) -> Event:
        return self.event(
            "resolved",
            9,
            at,
            decision="approved",
            resolved_at=at,
            timeliness=timeliness,
            working_days=working_days,
        )

    def returned(self, at: datetime, method: str = "counter") -> Event:
        return self.event("returned", 10, at, method=method, returned_at=at)


def publish(amqp_uri: str, *events: Event) -> None:
    """As the outbox relay does: persistent, mandatory, confirmed, with CC for the handling unit."""
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
def metrics_config(rabbit_config, database_url):
    upgrade("metrics", database_url)
    return metrics_settings(rabbit_config["AMQP_URI"], database_url)


@pytest.fixture
def metrics(metrics_config, container_factory):
    container = container_factory(MetricsService, metrics_config)
    container.start()
    return Client(metrics_config)


class Client:
    def __init__(self, config: dict) -> None:
        self.base = f"http://{config['WEB_SERVER_ADDRESS']}"
        self.amqp_uri = config["AMQP_URI"]

    def scrape(self) -> str:
        response = requests.get(f"{self.base}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text

    def value(self, name: str, text: str | None = None, **labels: str) -> float | None:
        """The sample's value, or None when no such series is exposed; summed over other labels."""
        found = None
        for family in text_string_to_metric_families(text if text is not None else self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    found = (found or 0.0) + sample.value
        return found

    def wait_for(self, name: str, expected: float, timeout: float = 20.0, **labels: str) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.value(name, **labels) == expected:
                return expected
            time.sleep(0.1)
        return self.value(name, **labels)

    def report(self, headers: dict, **params) -> requests.Response:
        return requests.get(f"{self.base}/api/v1/reports/sla", params=params, headers=headers, timeout=10)

    def rate(self, headers: dict, code: str, rating: str) -> requests.Response:
        body = {"dossier_code": code, "rating": rating}
        return requests.post(f"{self.base}/api/v1/ratings", json=body, headers=headers, timeout=10)


def test_events_reach_the_metrics_and_the_report(metrics):
    now = datetime.now(UTC)
    one = Dossier(COMMUNE_A, received_at=now - timedelta(hours=3), due_at=now + timedelta(days=3))
    two = Dossier(
        COMMUNE_A,
        received_at=now - timedelta(hours=2),
        due_at=now + timedelta(days=3),
        channel=Channel.ONLINE,
    )
    # Interlinked: handled by the province, so the message also carries a CC routing key.
    three = Dossier(
        COMMUNE_B, received_at=now - timedelta(hours=1), due_at=now + timedelta(days=3), return_method=1
    )
    three.facts["handling_unit"] = PROVINCE
    publish(
        metrics.amqp_uri,
        one.event("received", 2, now - timedelta(hours=3)),
        two.event("received", 2, now - timedelta(hours=2)),
        three.event("received", 2, now - timedelta(hours=1)),
        three.resolved(now - timedelta(minutes=30), timeliness="early", working_days=0.5),
        three.returned(now - timedelta(minutes=10), method="postal"),
    )
    assert metrics.wait_for("motcua_dossiers_returned_total", 1, unit=COMMUNE_B, method="postal") == 1
    text = metrics.scrape()
    assert metrics.value("motcua_dossiers_received_total", text) == 3  # the CC copy is not a second dossier
    assert metrics.value("motcua_dossiers_received_total", text, unit=COMMUNE_A, channel="online") == 1
    assert metrics.value("motcua_dossiers_in_process", text, unit=COMMUNE_A) == 2
    assert metrics.value("motcua_dossiers_in_process", text, unit=COMMUNE_B) == 0
    assert metrics.value("motcua_dossiers_resolved_total", text, unit=COMMUNE_B, timeliness="early") == 1
    # Half a working day: within the first bucket, one working day of 8 office hours (28,800 s).
    resolution = "motcua_dossier_resolution_working_seconds"
    assert metrics.value(f"{resolution}_bucket", text, unit=COMMUNE_B, le="28800.0") == 1
    assert metrics.value(f"{resolution}_sum", text, unit=COMMUNE_B) == 0.5 * 28_800
    assert metrics.value("motcua_events_waiting", text) == 0

    response = metrics.report(bearer("auditor", PROVINCE), unit=PROVINCE)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["total"]["received"] == 3
    assert report["total"]["decided_early"] == 1
    assert report["total"]["in_process_within_deadline"] == 2
    assert report["total"]["postal_share"] == pytest.approx(1 / 3)
    assert report["total"]["progress_score"] == pytest.approx(20.0)
    assert {g["key"]: g["received"] for g in report["groups"]} == {COMMUNE_A: 2, COMMUNE_B: 1}

    csv = metrics.report(
        {**bearer("leader", PROVINCE), "Accept": "text/csv"}, unit=PROVINCE, group_by="field"
    )
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("field,name,received,")
    assert lines[1].startswith("civil_status,civil_status,3,") and lines[-1].startswith("total,")
    same = metrics.report(bearer("leader", PROVINCE), unit=PROVINCE, group_by="field", format="csv")
    assert same.text == csv.text


def test_a_redelivered_event_counts_once(metrics):
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now, due_at=now + timedelta(days=2))
    received = dossier.event("received", 2, now)
    supplement = dossier.event("supplement_requested", 5, now, items=["a copy"], reason="missing")
    publish(metrics.amqp_uri, received, received, supplement, supplement)
    assert metrics.wait_for("motcua_supplement_requests_total", 1, unit=COMMUNE_A) == 1
    time.sleep(1.0)  # room for a wrongly counted duplicate to show up
    text = metrics.scrape()
    assert metrics.value("motcua_dossiers_received_total", text) == 1
    assert metrics.value("motcua_supplement_requests_total", text) == 1
    assert metrics.value("motcua_events_consumed_total", text, service="metrics", outcome="duplicate") >= 2


def test_a_refused_event_is_dead_lettered_alone_and_its_batch_neighbours_count(metrics):
    """A batch holding an event the projection refuses (a second event id claiming a dossier's sequence
    number) fails whole; the consumer then handles its events one by one (shared/consumer.py)."""
    now = datetime.now(UTC)
    one = Dossier(COMMUNE_A, received_at=now, due_at=now + timedelta(days=2))
    two = Dossier(COMMUNE_B, received_at=now, due_at=now + timedelta(days=2))
    received = one.event("received", 2, now)
    impostor = Event(**{**received.__dict__, "id": str(uuid.uuid4())})
    supplement = one.event("supplement_requested", 5, now, items=["a copy"], reason="missing")
    dead_before = metrics.value("motcua_dead_lettered_total", queue=QUEUE) or 0  # a process-wide counter
    publish(metrics.amqp_uri, received, impostor, two.event("received", 2, now), supplement)
    dead = dead_letters(metrics.amqp_uri, QUEUE, expect=1)
    assert [Event.from_json(m.body).id for m in dead] == [impostor.id]
    assert dead[0].headers["x-motcua-reason"].startswith("rejected: dossier")
    assert "is already held by event " + received.id in dead[0].headers["x-motcua-reason"]
    assert metrics.wait_for("motcua_supplement_requests_total", 1, unit=COMMUNE_A) == 1
    text = metrics.scrape()
    assert metrics.value("motcua_dossiers_received_total", text) == 2
    assert metrics.value("motcua_dead_lettered_total", text, queue=QUEUE) == dead_before + 1
    assert dead_letters(metrics.amqp_uri, QUEUE, expect=1, timeout=0.5) == []


def test_an_early_event_waits_for_the_one_before_it(metrics):
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    received = dossier.event("received", 2, now - timedelta(days=1))
    resolved = dossier.resolved(now - timedelta(hours=1), timeliness="early")
    publish(metrics.amqp_uri, resolved)
    assert metrics.wait_for("motcua_events_waiting", 1) == 1
    assert metrics.value("motcua_dossiers_received_total") is None
    assert metrics.value("motcua_dossiers_resolved_total") is None
    publish(metrics.amqp_uri, received)
    assert metrics.wait_for("motcua_dossiers_resolved_total", 1, timeliness="early") == 1
    text = metrics.scrape()
    assert metrics.value("motcua_events_waiting", text) == 0
    assert metrics.value("motcua_dossiers_in_process", text) == 0


def test_overdue_comes_with_time_and_gauges_are_right_at_once_after_a_restart(
    metrics_config, container_factory
):
    first = container_factory(MetricsService, metrics_config)
    first.start()
    client = Client(metrics_config)
    now = datetime.now(UTC)
    # Due an hour ago, and nothing has happened since: overdue by the clock alone.
    late = Dossier(COMMUNE_A, received_at=now - timedelta(days=3), due_at=now - timedelta(hours=1))
    soon = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(hours=2))
    far = Dossier(COMMUNE_B, received_at=now - timedelta(days=1), due_at=now + timedelta(days=5))
    publish(
        client.amqp_uri,
        late.event("received", 2, now - timedelta(days=3)),
        soon.event("received", 2, now - timedelta(days=1)),
        far.event("received", 2, now - timedelta(days=1)),
    )
    assert client.wait_for("motcua_dossiers_in_process", 3) == 3
    before = client.scrape()
    assert (
        client.value("motcua_dossiers_overdue", before, unit=COMMUNE_A, procedure_field="civil_status") == 1
    )
    assert client.value("motcua_dossiers_overdue", before, unit=COMMUNE_B) == 0
    assert client.value("motcua_dossiers_due_soon", before, unit=COMMUNE_A) == 1

    first.stop()
    second = container_factory(MetricsService, metrics_config)
    second.start()
    after = client.scrape()  # the first scrape of a fresh process, before any event
    for name in ("motcua_dossiers_in_process", "motcua_dossiers_overdue", "motcua_dossiers_due_soon"):
        for unit in (COMMUNE_A, COMMUNE_B):
            assert client.value(name, after, unit=unit) == client.value(name, before, unit=unit), (name, unit)
    assert client.value("motcua_dossiers_received_total", after) == 3


def test_ratings_at_the_desk(metrics):
    now = datetime.now(UTC)
    returned = Dossier(COMMUNE_A, received_at=now - timedelta(days=2), due_at=now + timedelta(days=1))
    old = Dossier(COMMUNE_A, received_at=now - timedelta(days=60), due_at=now - timedelta(days=50))
    pending = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=1))
    publish(
        metrics.amqp_uri,
        returned.event("received", 2, now - timedelta(days=2)),
        returned.resolved(now - timedelta(days=1)),
        returned.returned(now - timedelta(hours=2)),
        old.event("received", 2, now - timedelta(days=60)),
        old.resolved(now - timedelta(days=52), timeliness="early"),
        old.returned(now - timedelta(days=31)),
        pending.event("received", 2, now - timedelta(days=1)),
    )
    assert metrics.wait_for("motcua_dossiers_returned_total", 2, unit=COMMUNE_A) == 2
    desk = bearer("desk_officer", COMMUNE_A)

    assert metrics.rate(bearer("auditor", PROVINCE), returned.code, "satisfied").status_code == 403
    assert metrics.rate(bearer("desk_officer", COMMUNE_B), returned.code, "satisfied").status_code == 403
    assert metrics.rate(desk, "no-such-dossier", "satisfied").status_code == 404
    invalid = metrics.rate(desk, returned.code, "delighted")
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["pointer"] == "/rating"
    not_yet = metrics.rate(desk, pending.code, "satisfied")
    assert not_yet.status_code == 409 and "no result returned yet" in not_yet.json()["detail"]
    too_late = metrics.rate(desk, old.code, "satisfied")
    assert too_late.status_code == 409 and "rating window" in too_late.json()["detail"]

    first = metrics.rate(desk, returned.code, "not_satisfied")
    assert first.status_code == 201, first.text
    assert first.json()["rating"] == "not_satisfied" and first.json()["unit"] == COMMUNE_A
    again = metrics.rate(desk, returned.code, "satisfied")
    assert again.status_code == 409 and "already been rated" in again.json()["detail"]

    text = metrics.scrape()
    assert (
        metrics.value("motcua_satisfaction_ratings_total", text, unit=COMMUNE_A, rating="not_satisfied") == 1
    )
    assert metrics.value("motcua_satisfaction_ratings_total", text, rating="satisfied") == 0
    report = metrics.report(bearer("auditor", COMMUNE_A), unit=COMMUNE_A, **{"from": "2000-01-01"}).json()
    assert report["total"]["rated_not_satisfied"] == 1
    assert report["total"]["satisfaction_rate"] == pytest.approx(1 / 2)  # two decided, one not satisfied


def test_the_report_checks_who_asks_and_what(metrics):
    auditor = bearer("auditor", PROVINCE)
    assert metrics.report({}, unit=PROVINCE).status_code == 401
    assert metrics.report(bearer("clerk", PROVINCE), unit=PROVINCE).status_code == 403
    outside = metrics.report(bearer("auditor", COMMUNE_A), unit=PROVINCE)
    assert outside.status_code == 403 and "outside your jurisdiction" in outside.json()["detail"]
    assert metrics.report(bearer("auditor", OTHER_PROVINCE_COMMUNE), unit=COMMUNE_A).status_code == 403
    unknown = metrics.report(auditor, unit="99999")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["pointer"] == "/unit"
    backwards = metrics.report(auditor, unit=PROVINCE, **{"from": "2026-02-01", "to": "2026-01-01"})
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["pointer"] == "/from"
    assert metrics.report(auditor, unit=PROVINCE, group_by="weekday").status_code == 422
    empty = metrics.report(
        auditor, unit=PROVINCE, group_by="month", **{"from": "2020-01-01", "to": "2020-01-31"}
    )
    assert empty.status_code == 200
    assert empty.json()["groups"] == [] and empty.json()["total"]["on_time_rate"] is None
    document = requests.get(f"{metrics.base}/api/v1/openapi.json", timeout=10).json()
    assert {"/api/v1/ratings", "/api/v1/reports/sla", "/metrics"} <= set(document["paths"])


def test_bad_input_is_a_4xx_never_a_500(metrics):
    # a token naming a unit that is not in the map (a unit removed, a token for another deployment)
    ghost = bearer("auditor", "99999")
    report = metrics.report(ghost, unit=PROVINCE)
    assert report.status_code in (403, 404), report.text
    assert metrics.report(ghost, unit="99999").status_code in (403, 404, 422)
    rating = metrics.rate(bearer("desk_officer", "99999"), "26734-261129-0001", "satisfied")
    assert rating.status_code in (403, 404), rating.text
    # a code with a NUL byte (PostgreSQL refuses it in a string) names no dossier: 422 (found by the fuzzer)
    nul = metrics.rate(bearer("desk_officer", COMMUNE_A), "26734\x00-1", "satisfied")
    assert nul.status_code == 422 and nul.json()["errors"][0]["pointer"] == "/dossier_code"
    # a JSON body with a 5,000-digit integer: Python refuses to convert it; a 400, not a crash
    digits = requests.post(
        f"{metrics.base}/api/v1/ratings",
        data='{"dossier_code": "X", "rating": "satisfied", "n": ' + "9" * 5000 + "}",
        headers={**bearer("desk_officer", COMMUNE_A), "Content-Type": "application/json"},
        timeout=10,
    )
    assert digits.status_code == 400 and digits.headers["Content-Type"].startswith("application/problem+json")


def test_a_real_render_passes_promtool(metrics, promtool):
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now - timedelta(hours=1))
    publish(
        metrics.amqp_uri,
        dossier.event("received", 2, now - timedelta(days=1)),
        dossier.resolved(now - timedelta(minutes=30), timeliness="late", working_days=1.2),
        dossier.returned(now - timedelta(minutes=20)),
    )
    assert metrics.wait_for("motcua_dossiers_returned_total", 1, unit=COMMUNE_A, method="counter") == 1
    assert metrics.rate(bearer("desk_officer", COMMUNE_A), dossier.code, "normal").status_code == 201
    render = metrics.scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=render, capture_output=True, text=True, timeout=60, check=False
    )
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not problems, problems
    for family in (
        "motcua_dossiers_received_total counter",
        "motcua_dossier_resolution_working_seconds histogram",
        "motcua_events_consumed_total counter",
    ):
        assert f"# TYPE {family}\n" in render
