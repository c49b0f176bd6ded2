"""A reader that polls one URL from a thread of its own during a chaos row: what it was answered, and the
slowest answer (``/health/live`` of a service, or a read route)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests


class Probe:
    """GETs ``url`` every half second from a thread of its own: the answers by status and the slowest."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        from collections import Counter

        self.url, self.headers = url, headers or {}
        self.answers: Counter[str] = Counter()
        self.slowest = 0.0
        self.last_ok = 0.0  # time.monotonic() of the last 2xx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                outcome = str(session.get(self.url, headers=self.headers, timeout=60).status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.answers[outcome] += 1
            if outcome.startswith("2"):
                self.last_ok = time.monotonic()
            self._stop.wait(0.5)

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=70)
        return " ".join(f"{k}:{v}" for k, v in sorted(self.answers.items()))


class SteadyClients:
    """``workers`` client threads, each calling ``one(session)`` on a steady schedule so that together they
    make ``rate`` a second (a call that takes longer delays only its own thread), until :meth:`finish`.
    A subclass sets its own state, then calls :meth:`start`."""

    join_seconds = 300.0  # how long finish() waits for a thread's call under way

    def __init__(self, rate: float, workers: int) -> None:
        self.interval, self.workers = workers / rate, workers
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def one(self, session: requests.Session) -> None:  # pragma: no cover - every load overrides it
        raise NotImplementedError

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def _worker(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while not self.stop.is_set():
            self.one(session)
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=self.join_seconds)
