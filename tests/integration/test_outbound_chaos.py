"""The outbound service's chaos rows, short (chaos/outbound.py; `python -m chaos.outbound_rig` runs them with
more dossiers): the national portal unreachable for ten minutes and a subscriber down for an hour, on
the simulated clock, on the real broker and both databases. Nothing is lost; nothing comes twice that
the receiver could not drop by id — the counts are asserted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chaos.outbound import portal_outage, simulated_clock, subscriber_outage
from chaos.outbound_rig import portal_rig, subscriber_rig

pytestmark = pytest.mark.integration


def test_the_portal_down_for_ten_minutes_loses_and_repeats_nothing(rabbit_config, database_url, tmp_path):
    with (
        simulated_clock(tmp_path / "clock") as advance,
        portal_rig(rabbit_config["AMQP_URI"], database_url, advance) as rig,
    ):
        row = portal_outage(rig, minutes=10, dossiers=4, step=timedelta(minutes=2), pause=0.3)
    # 4 dossiers (one before, two during, one after), 2 events each: received, processing started.
    assert (row.published, row.received, row.lost, row.duplicated) == (8, 8, 0, 0), row
    assert "in order per dossier: yes" in row.note


def test_a_subscriber_down_for_an_hour_gets_everything_once_in_order(rabbit_config, database_url, tmp_path):
    with (
        simulated_clock(tmp_path / "clock") as advance,
        subscriber_rig(rabbit_config["AMQP_URI"], database_url, advance) as rig,
    ):
        row = subscriber_outage(
            rig,
            minutes=60,
            dossiers=2,
            step=timedelta(minutes=10),
            pause=0.3,
            settle_step=timedelta(minutes=30),
        )
    # 2 dossiers, 3 events each; the healthy subscriber had all six while the other was down.
    assert (row.published, row.received, row.lost, row.duplicated) == (6, 6, 0, 0), row
    assert "in order per dossier: yes" in row.note and "had 6 of 6" in row.note
