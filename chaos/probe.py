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
