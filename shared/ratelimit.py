"""Rate limits of the public endpoints (the signature verifier, the citizen's status lookup), per process.

Each replica counts what it saw: behind n replicas a client gets up to n times the limit, which is still
a small number a minute; what must hold across replicas (the lookup's lock-out) is kept in the database.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class SlidingWindow:
    """At most ``limit`` calls per key (a client address, a dossier code) in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float | None:
        """None when allowed, else the seconds until the next call would be."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(client, deque())
            while calls and now - calls[0] >= self.window:
                calls.popleft()
            if len(calls) >= self.limit:
                return self.window - (now - calls[0])
            calls.append(now)
            if len(self._calls) > 10_000:  # forget idle clients
                for key in [k for k, v in self._calls.items() if not v]:
                    del self._calls[key]
            return None
