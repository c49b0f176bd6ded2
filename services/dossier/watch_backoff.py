"""The overdue watch's backoff for dossiers it cannot process (issue 7).

The watch takes the dossiers whose ``watch_at`` has come, oldest first, a batch at a time. A dossier
that fails (a unit gone from the map, a broken row …) used to keep its ``watch_at``, so enough of
them filled every batch and stopped the watch for everyone. Now a failing dossier is *moved on*:
its ``watch_at`` is put ``delay`` later (the watch interval, doubling with each consecutive failure,
at most :data:`MAX_DELAY`), the failure is counted in ``motcua_overdue_watch_failures_total`` and
logged once, at the first failure. A success forgets the dossier.

The consecutive-failure counts live in the process (they only pace the retries and the log): a
restart starts them again, so a still-broken dossier is logged once more after it.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from prometheus_client import Counter

MAX_DELAY = timedelta(hours=6)
WATCH_FAILURES = Counter(
    "motcua_overdue_watch_failures_total",
    "Dossiers the overdue watch could not process; each is retried later with a backoff.",
    ["service"],
)


class WatchBackoff:
    """Consecutive failures per dossier code, and the delay before the next try."""

    def __init__(self, base: timedelta, max_delay: timedelta = MAX_DELAY) -> None:
        self.base, self.max_delay = base, max_delay
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def failed(self, code: str) -> tuple[timedelta, bool]:
        """Record a failure: the delay before the next try, and whether this is the first (log it)."""
        with self._lock:
            count = self._failures.get(code, 0) + 1
            self._failures[code] = count
        delay = min(self.base * 2 ** min(count - 1, 32), self.max_delay)
        return delay, count == 1

    def succeeded(self, code: str) -> None:
        with self._lock:
            self._failures.pop(code, None)

    def failures(self, code: str) -> int:
        return self._failures.get(code, 0)
