"""Test subscribers on the real broker: bind a queue the way a commune, district or province would."""

from __future__ import annotations

import contextlib
import json
import time

import amqp

from shared.broker import connect, declare_exchanges
from shared.events import EXCHANGE, Event


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


def publish(amqp_uri: str, *bodies: bytes, routing_key: str = "dossier.received.79.26740") -> None:
    """Persistent and confirmed: a quorum queue may drop unconfirmed messages of a closing publisher."""
    connection = connect(amqp_uri)
    channel = connection.channel()
    declare_exchanges(channel)
    channel.confirm_select()
    for body in bodies:
        message = amqp.Message(body, delivery_mode=2)
        channel.basic_publish_confirm(message, exchange=EXCHANGE, routing_key=routing_key)
    connection.close()


def probe_event(sequence: int, **data) -> Event:
    """An event of dossier D-1 at commune 26740, for consumer tests."""
    return Event(
        source="dossier", name="received", subject="D-1", data=data, unit_path="79.26740", sequence=sequence
    )


def depth(amqp_uri: str, queue: str) -> int:
    """Messages ready in ``queue``; 0 while nobody has declared it yet."""
    from shared import ops

    try:
        with ops.channel(amqp_uri) as chan:
            return chan.queue_declare(queue, passive=True)[1]
    except amqp.exceptions.NotFound:
        return 0


def wait_for(predicate, timeout: float = 15.0):
    """Poll ``predicate`` until it returns something truthy or the time is up; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def dead_letters(amqp_uri: str, queue: str, expect: int, timeout: float = 15.0) -> list[amqp.Message]:
    """Take up to ``expect`` messages from ``<queue>.dead-letter``."""
    connection = connect(amqp_uri)
    channel = connection.channel()
    found: list[amqp.Message] = []
    deadline = time.monotonic() + timeout
    while len(found) < expect and time.monotonic() < deadline:
        message = channel.basic_get(f"{queue}.dead-letter", no_ack=True)
        if message is None:
            time.sleep(0.1)
        else:
            found.append(message)
    connection.close()
    return found
