"""chaos/probe.py's SteadyClients: the chaos rows' loads (pickups, payments, signatures) call ``one`` from
``workers`` threads so that all together they make ``rate`` calls a second, until ``finish``.

Worked by hand: 2 workers at 20 a second call every 2 / 20 = 0.1 s each; ``finish`` stops them, and no
call starts after it.
"""

from __future__ import annotations

import threading

from chaos.probe import SteadyClients


class Counting(SteadyClients):
    def __init__(self, rate: float, workers: int) -> None:
        super().__init__(rate, workers)
        self.calls = 0
        self.sessions: set[int] = set()
        self.reached = threading.Event()
        self.start()

    def one(self, session) -> None:
        with self.lock:
            self.calls += 1
            self.sessions.add(id(session))
            if self.calls >= 6:
                self.reached.set()


def test_each_worker_calls_on_its_own_schedule_until_finished():
    load = Counting(rate=20.0, workers=2)
    assert load.interval == 0.1 and len(load.threads) == 2
    assert load.reached.wait(10)
    load.finish()
    assert all(not thread.is_alive() for thread in load.threads)
    stopped_at = load.calls
    assert load.stop.wait(0.3) and load.calls == stopped_at
    assert len(load.sessions) == 2  # a session per worker, kept across its calls
