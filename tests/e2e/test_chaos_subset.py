"""The fast subset of ``make chaos`` (chaos/run.py): one kill -9, a short database outage and a short
broker outage, under load, on private PostgreSQL servers and a throw-away vhost.

How we know nothing was lost or counted twice: after each fault the figures of the independent subscriber
and of the metrics projection are compared with the dossier service's own database (the oracle).
"""

from __future__ import annotations

import io

import pytest

from chaos.run import Settings, run

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
