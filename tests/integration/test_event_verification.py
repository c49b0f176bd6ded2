"""Consumers verify what they consume (issue 11 §2): forged or malformed events are dead-lettered with
the reason, never counted and never acked as duplicates. Driven through the metrics service on the real
broker and both databases; the forgeries are the ones the security review made.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.service import QUEUE
from shared.broker import ConfirmingPublisher, Outgoing
from shared.events import Event
from tests.integration.test_metrics_service import (  # noqa: F401 - fixtures
    COMMUNE_A,
    PROVINCE,
    Dossier,
    metrics,
    metrics_config,
    publish,
)
from tests.support.broker import dead_letters

pytestmark = pytest.mark.integration


def publish_raw(amqp_uri: str, body: dict, routing_key: str) -> None:
    """What anyone with write access to egov.events could send."""
    publisher = ConfirmingPublisher(amqp_uri)
    try:
        (outcome,) = publisher.publish(
            [Outgoing(str(uuid.uuid4()), body.get("type", ""), routing_key, json.dumps(body).encode())]
        )
    finally:
        publisher.close()
    assert outcome.confirmed and not outcome.unroutable


def reasons(amqp_uri: str, expect: int) -> list[str]:
    found = dead_letters(amqp_uri, QUEUE, expect=expect)
    return [str(message.headers["x-motcua-reason"]) for message in found]


def test_forged_and_malformed_events_are_dead_lettered_with_the_reason(metrics):  # noqa: F811
    now = datetime.now(UTC)
    genuine = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    received = genuine.event("received", 2, now - timedelta(days=1))
    publish(metrics.amqp_uri, received)
    assert metrics.wait_for("motcua_dossiers_in_process", 1) == 1

    # 1. The review's forgery: "vn.motcua.esign.resolved" under a dossier routing key, next sequence number.
    forged = genuine.event(
        "resolved", 9, now, decision="approved", resolved_at=now, timeliness="late", working_days=99.0
    ).envelope()
    genuine.sequence -= 1  # the genuine event that follows takes the same number
    forged.update(source="/motcua/esign", type="vn.motcua.esign.resolved")
    publish_raw(metrics.amqp_uri, forged, f"dossier.resolved.{received.unit_path}")
    # 2. The routing key names another unit than the envelope.
    moved = genuine.event("supplement_requested", 5, now, items=["a copy"], reason="missing").envelope()
    genuine.sequence -= 1
    publish_raw(metrics.amqp_uri, moved, f"dossier.supplement_requested.{PROVINCE}")
    # 3. data that the producer's schema refuses.
    hollow = {**received.envelope(), "id": str(uuid.uuid4()), "subject": "X-1", "data": {"status": 2}}
    publish_raw(metrics.amqp_uri, hollow, received.routing_key)
    # 4. Invented units: no /metrics series may appear for them.
    for n in range(3):
        invented = Dossier(COMMUNE_A, received_at=now, due_at=now + timedelta(days=1))
        envelope = invented.event("received", 2, now).envelope()
        envelope["unitpath"] = envelope["handlingunitpath"] = f"79.9999{n}"
        envelope["data"]["receiving_unit"] = envelope["data"]["handling_unit"] = f"9999{n}"
        publish_raw(metrics.amqp_uri, envelope, f"dossier.received.79.9999{n}")

    found = reasons(metrics.amqp_uri, expect=6)
    assert len(found) == 6, found
    assert any("esign.resolved is not in the event catalogue" in r for r in found), found
    assert any("routing key 'dossier.supplement_requested.79' does not match" in r for r in found), found
    assert any("does not match the schema of vn.motcua.dossier.received" in r for r in found), found
    assert sum("unknown unit '9999" in r for r in found) == 3, found
    assert all(r.startswith("rejected: ") for r in found), found

    text = metrics.scrape()
    assert not metrics.value("motcua_dossiers_resolved_total", text)  # no series, or 0
    assert metrics.value("motcua_dossiers_received_total", text) == 1
    assert 'unit="9999' not in text
    # The genuine next event was not taken for a duplicate of the forgery: it is counted.
    publish(
        metrics.amqp_uri,
        genuine.event("supplement_requested", 5, now, items=["a copy"], reason="missing"),
    )
    assert metrics.wait_for("motcua_supplement_requests_total", 1, unit=COMMUNE_A) == 1


def test_an_event_whose_sequence_another_id_holds_is_dead_lettered_not_acked(metrics):  # noqa: F811
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    received = dossier.event("received", 2, now - timedelta(days=1))
    first = dossier.resolved(now - timedelta(hours=2), timeliness="early")
    # Same dossier, same sequence number (2), another id: whoever came second is not applied silently.
    second = Event(
        source="dossier",
        name="resolved",
        subject=first.subject,
        data={**first.data, "timeliness": "late"},
        unit_path=first.unit_path,
        handling_unit_path=first.handling_unit_path,
        sequence=first.sequence,
        time=first.time,
    )
    publish(metrics.amqp_uri, received, first)
    assert metrics.wait_for("motcua_dossiers_resolved_total", 1, timeliness="early") == 1
    dead_before = metrics.value("motcua_dead_lettered_total", service="metrics") or 0
    publish(metrics.amqp_uri, second)
    (reason,) = reasons(metrics.amqp_uri, expect=1)
    assert f"dossier {first.subject} sequence 2 is already held by event {first.id}" in reason
    time.sleep(0.5)
    text = metrics.scrape()
    assert not metrics.value("motcua_dossiers_resolved_total", text, timeliness="late")
    assert metrics.value("motcua_dead_lettered_total", text, service="metrics") == dead_before + 1
