"""The timers whose interval is a setting, and a leadership question that a database error answers 'no'."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa

from shared.leadership import Leadership
from shared.providers import setting_timer


def test_a_setting_timer_takes_its_interval_from_the_settings_at_start_not_at_import():
    decorator = setting_timer(lambda config: config["EVERY"], default=30.0)
    timer_class = decorator.__self__  # the Timer subclass behind the decorator
    timer = timer_class()
    assert timer.interval == 30.0
    timer.container = SimpleNamespace(config={"EVERY": 0.25})
    timer.setup()
    assert timer.interval == 0.25


def test_leads_answers_no_and_stands_down_when_the_database_cannot_be_asked(monkeypatch):
    leadership = Leadership(sa.create_engine("sqlite://"), key=1, job="test job")
    released = []

    def unreachable():
        raise sa.exc.OperationalError("SELECT pg_try_advisory_lock", {}, Exception("connection refused"))

    monkeypatch.setattr(leadership, "hold", unreachable)
    monkeypatch.setattr(leadership, "release", lambda: released.append(True))
    assert leadership.leads() is False
    assert released == [True]
