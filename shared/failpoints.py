"""Crash points for the chaos suite: the moments where a crash must lose nothing and count nothing twice.

With ``MOTCUA_CRASH_AT=relay.after_confirm`` in its environment a process kills itself with SIGKILL the
first time it reaches that point, exactly as ``kill -9`` would there. Unset (always, outside
``make chaos``) a crash point costs one comparison.

- ``uow.after_commit``: a change and its events are committed; the relay has not published them.
- ``relay.after_confirm``: the broker confirmed a batch; the outbox rows are not marked sent.
- ``consumer.after_commit``: a consumer's handler committed; the messages are not acked.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = ("uow.after_commit", "relay.after_confirm", "consumer.after_commit")
_ARMED = os.environ.get("MOTCUA_CRASH_AT", "")


def crash_point(name: str) -> None:
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
