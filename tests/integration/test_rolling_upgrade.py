"""Rolling upgrades (issue 22): an old consumer reads a newer producer's events tolerantly.

During a rolling deploy a new producer and an old consumer run side by side. The producer's additive
change (a new field in ``data``, a new envelope extension attribute) must be applied by the consumer of
the previous version, not dead-lettered (docs/contracts.md §6). The "old consumer" is the metrics
projection as it is; the "new producer" is the dossier service's envelope with the additions, on the
real broker and both databases.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.service import QUEUE
from shared.events import Event
from tests.integration.test_event_verification import publish_raw
from tests.integration.test_metrics_service import (  # noqa: F401 - fixtures
    COMMUNE_A,
    Dossier,
    metrics,
    metrics_config,
)
from tests.support.broker import dead_letters

pytestmark = pytest.mark.integration


def newer(event: Event) -> dict:
    """The envelope a later version of the producer sends: one more data field, one more attribute."""
    document = event.envelope()
    document["data"] = {**document["data"], "assignee_hint": "Nguyễn Văn A", "channel_detail": {"kiosk": 3}}
    document["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    return document


def test_an_old_consumer_applies_a_new_producers_events(metrics):  # noqa: F811
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    received = dossier.event("received", 2, now - timedelta(days=1))
    resolved = dossier.resolved(now - timedelta(hours=1), timeliness="early")
    # A process-wide counter: other tests in this process may have dead-lettered before.
    dead_before = metrics.value("motcua_dead_lettered_total", service="metrics") or 0
    for event in (received, resolved):
        publish_raw(metrics.amqp_uri, newer(event), event.routing_key)

    assert metrics.wait_for("motcua_dossiers_resolved_total", 1, timeliness="early") == 1
    text = metrics.scrape()
    assert metrics.value("motcua_dossiers_received_total", text) == 1
    assert (metrics.value("motcua_dead_lettered_total", text, service="metrics") or 0) == dead_before
    assert dead_letters(metrics.amqp_uri, QUEUE, expect=1, timeout=2) == []


def test_a_consumer_reads_sequence_in_the_3x_integer_and_the_4x_string_form(metrics):  # noqa: F811
    """Contract 4.0 sends ``sequence`` as a string (the CloudEvents sequence extension); what 3.x producers,
    and outbox rows written before the upgrade, send is an integer. One dossier's two events, one in each
    form, must fold in order: received (#1, integer) then resolved (#2, string)."""
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    received = replace(dossier.event("received", 2, now - timedelta(days=1)), integer_sequence=True)
    resolved = dossier.resolved(now - timedelta(hours=1), timeliness="early")
    assert received.envelope()["sequence"] == 1 and resolved.envelope()["sequence"] == "0000000002"
    dead_before = metrics.value("motcua_dead_lettered_total", service="metrics") or 0
    # The later one first: it is held until #1 arrives, so the two forms are compared as numbers.
    for event in (resolved, received):
        publish_raw(metrics.amqp_uri, event.envelope(), event.routing_key)

    assert metrics.wait_for("motcua_dossiers_resolved_total", 1, timeliness="early") == 1
    text = metrics.scrape()
    assert metrics.value("motcua_dossiers_received_total", text) == 1
    assert (metrics.value("motcua_dead_lettered_total", text, service="metrics") or 0) == dead_before


def test_a_new_producers_event_missing_a_required_field_is_still_dead_lettered(metrics):  # noqa: F811
    now = datetime.now(UTC)
    dossier = Dossier(COMMUNE_A, received_at=now, due_at=now + timedelta(days=2))
    received = dossier.event("received", 2, now)
    document = newer(received)
    del document["data"]["status"]
    publish_raw(metrics.amqp_uri, document, received.routing_key)

    (message,) = dead_letters(metrics.amqp_uri, QUEUE, expect=1)
    reason = str(message.headers["x-motcua-reason"])
    assert reason.startswith("rejected: data does not match the schema of vn.motcua.dossier.received"), reason
    assert "status" in reason and "assignee_hint" not in reason, reason
    assert not metrics.value("motcua_dossiers_received_total")
