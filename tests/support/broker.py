"""Test subscribers on the real broker: bind a queue the way a commune, district or province would."""

from __future__ import annotations

import contextlib
import json
import time

import amqp

from shared.broker import connect, declare_exchanges
from shared.events import EXCHANGE


class Subscriber:
    """An exclusive queue on ``egov.events`` with the given bindings; collects what arrives."""

    def __init__(self, amqp_uri: str, *bindings: str) -> None:
        self.connection = connect(amqp_uri)
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)
        self.queue, _, _ = self.channel.queue_declare("", exclusive=True, auto_delete=True)
        for key in bindings:
            self.channel.queue_bind(self.queue, EXCHANGE, key)
        self.messages: list[amqp.Message] = []
        self.channel.basic_consume(self.queue, callback=self.messages.append, no_ack=True)

    def drain(self, *, expect: int | None = None, timeout: float = 10.0, quiet: float = 0.5):
        """Collect until ``expect`` messages arrived (then ``quiet`` more seconds) or timeout."""
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            if expect is not None and len(self.messages) >= expect and settle_until is None:
                settle_until = time.monotonic() + quiet
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            try:
                self.connection.drain_events(timeout=0.1)
            except TimeoutError:
                continue
        return self.messages

    @property
    def envelopes(self) -> list[dict]:
        return [json.loads(message.body) for message in self.messages]

    def close(self) -> None:
        # The test is over; the broker removes exclusive queues whatever happens here.
        with contextlib.suppress(Exception):
            self.connection.close()
