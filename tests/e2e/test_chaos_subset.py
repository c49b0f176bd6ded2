"""The fast subset of ``make chaos`` (chaos/run.py): one kill -9, a short database outage and a short
broker outage, under load, on private PostgreSQL servers and a throw-away vhost; and a short blackhole of
each database (packets dropped, no reset).

How we know nothing was lost or counted twice: after each fault the figures of the independent subscriber
and of the metrics projection are compared with the dossier service's own database (the oracle).
"""

from __future__ import annotations

import io

import pytest

from chaos.run import Settings, run
from shared.db import NETWORK_MARGIN_SECONDS

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_one_kill_and_short_outages_lose_nothing_and_count_nothing_twice():
    settings = Settings(
        only=["kill-9", "db-outage-metrics", "broker-outage"],
        kills=1,
        db_outage=5.0,
        broker_outage=5.0,
        rate=3.0,
        settle_timeout=120.0,
    )
    out = io.StringIO()
    rows = run(settings, out=out)
    assert [r.scenario for r in rows] == settings.only, out.getvalue()
    for row in rows:
        assert row.receipts > 0, out.getvalue()
        assert (row.lost_subscriber, row.lost_projection, row.double_counted) == (0, 0, 0), out.getvalue()
        assert row.dead_letters == 0 and "HTTP 500" not in row.note, out.getvalue()


@pytest.mark.timeout(600)
def test_a_blackholed_database_answers_503_in_bounded_time_and_recovers_by_itself():
    """Dossier's, then metrics's PostgreSQL drops every packet (no reset) for 8 s under load.

    How we know the bound holds: no answer to the load or to a reader waited longer than
    DATABASE_TIMEOUT_SECONDS + the network margin (2 + 5 s; 2 s of slack for a loaded machine), and
    the blackhole was felt (503s, never 500); the hub was not blocked: /health/live, which touches no
    database, answered every probe in well under the bound (half of it) throughout; and the service
    recovered by itself: a reader's 2xx and the whole backlog published and projected soon after the
    packets flowed again. Every process is still running at the end: a wait that ran out once ended the
    outbox relay's thread with an error, and nameko then stopped the whole dossier process (issue 22; the
    reader and half the load then met a closed port).
    """
    settings = Settings(
        only=["blackhole-dossier", "blackhole-metrics"],
        blackhole=8.0,
        db_timeout=2.0,
        rate=3.0,
        settle_timeout=120.0,
        broker="shared",
    )
    bound = settings.db_timeout + NETWORK_MARGIN_SECONDS
    out = io.StringIO()
    rows = run(settings, out=out)
    assert [r.scenario for r in rows] == settings.only, out.getvalue()
    for row in rows:
        assert (row.lost_subscriber, row.lost_projection, row.double_counted) == (0, 0, 0), out.getvalue()
        assert row.dead_letters == 0 and "HTTP 500" not in row.note, out.getvalue()
        assert " 500:" not in row.http and "ReadTimeout" not in row.http, out.getvalue()
        assert "503:" in row.http.split("|")[-1], out.getvalue()  # the readers felt the blackhole
        assert row.slowest <= bound + 2.0, out.getvalue()
        # A blocked hub stalls /health/live for a whole wait (the bound) or for ever; a loaded machine's
        # scheduling, for a second or two.
        assert row.live_slowest < bound / 2, out.getvalue()
        assert row.recovery is not None and row.recovery < 30.0, out.getvalue()
    dossier = rows[0]
    assert "503:" in dossier.http.split("|")[0], out.getvalue()  # the filings felt it too, and were retried
    for row in rows:  # no process stopped: a closed port would show as ConnectionError, and in the note
        assert "ConnectionError" not in row.http and "exited" not in row.note, out.getvalue()
