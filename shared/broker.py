"""RabbitMQ topology and the confirming publisher: where an event leaves the building.

The topology: the durable topic exchange ``egov.events`` that carries every domain event, and the
dead-letter exchange ``egov.events.dlx``. Each consumer queue is a durable quorum queue with a
delivery limit, dead-lettering to ``egov.events.dlx`` under its own name, where a ``<queue>.dead-letter``
queue keeps what could not be handled.

Nothing unroutable is lost: the fanout exchange ``egov.events.unrouted`` feeds the durable queue of the
same name, and it is ``egov.events``' *alternate exchange*, so an event no queue is bound for lands
there, whoever published it, until an operator replays it (``python -m shared.ops replay-unrouted``).
Both, and the alternate exchange, are set up by the operator (``python -m shared.ops broker-setup``; in
production the Topology Operator's ``Policy``), not by the services: the alternate exchange is a
**policy**, not an argument of ``exchange.declare``, because RabbitMQ refuses to re-declare an existing
exchange with a different ``alternate-exchange`` argument (406 PRECONDITION_FAILED), which would break
every broker that already has ``egov.events`` and every subscriber that declares it without the argument.
The services' broker users get no rights on ``egov.events.unrouted``: what lands there has passed the
topic permissions of ``egov.events``, so a replay cannot carry an event its publisher could not send.
Where the policy is missing, the broker returns an unroutable event (``mandatory``) and the relay flags
it in the outbox, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

import amqp

from shared.events import CONTENT_TYPE, DEAD_LETTER_EXCHANGE, EXCHANGE, UNROUTED_EXCHANGE, UNROUTED_QUEUE

log = logging.getLogger(__name__)


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached or dropped the connection."""


def connect(amqp_uri: str, *, heartbeat: int = 0, timeout: float = 5.0) -> amqp.Connection:
    parsed = urlparse(amqp_uri)
    if parsed.scheme not in ("amqp", "pyamqp"):
        raise ValueError(f"AMQP_URI must start with amqp://, got {amqp_uri!r}")
    vhost = unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5672}",
        userid=unquote(parsed.username or "guest"),
        password=unquote(parsed.password or "guest"),
        virtual_host=vhost,
        heartbeat=heartbeat,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
    )
    try:
        connection.connect()
    except (OSError, amqp.exceptions.AMQPError) as exc:
        raise BrokerUnavailable(f"cannot reach RabbitMQ at {parsed.hostname}:{parsed.port}: {exc}") from exc
    return connection


def declare_exchanges(channel: amqp.Channel) -> None:
    channel.exchange_declare(EXCHANGE, "topic", durable=True, auto_delete=False)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, "topic", durable=True, auto_delete=False)


def declare_unrouted(channel: amqp.Channel) -> None:
    """The operator's part: where ``egov.events``' alternate exchange keeps what nobody is bound for."""
    channel.exchange_declare(UNROUTED_EXCHANGE, "fanout", durable=True, auto_delete=False)
    channel.queue_declare(
        UNROUTED_QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
    )
    channel.queue_bind(UNROUTED_QUEUE, UNROUTED_EXCHANGE, "")


def queue_arguments(queue: str, max_attempts: int) -> dict:
    # The broker's delivery limit is a safety net one above ours: the consumer dead-letters a
    # failing event itself, with the reason, on its last attempt.
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max_attempts + 1,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": queue,
    }


def declare_consumer_queue(
    channel: amqp.Channel, queue: str, bindings: Iterable[str], max_attempts: int
) -> None:
    """Declare a service's durable queue on ``egov.events`` and its dead-letter queue."""
    declare_exchanges(channel)
    channel.queue_declare(
        queue, durable=True, auto_delete=False, arguments=queue_arguments(queue, max_attempts)
    )
    for key in bindings:
        channel.queue_bind(queue, EXCHANGE, key)
    dead = f"{queue}.dead-letter"
    channel.queue_declare(dead, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(dead, DEAD_LETTER_EXCHANGE, queue)


@dataclass(frozen=True)
class Outgoing:
    """A message for ``egov.events``: the serialized envelope and where it goes."""

    message_id: str
    event_type: str
    routing_key: str
    body: bytes
    cc: Sequence[str] = ()
    exchange: str = EXCHANGE
    headers: Mapping[str, object] = field(default_factory=dict)


@dataclass
class Confirmation:
    confirmed: bool = False
    unroutable: bool = False
    failed: bool = False


class ConfirmingPublisher:
    """Publishes batches to ``egov.events``: persistent, ``mandatory``, pipelined publisher confirms.

    A batch is written to the socket in one go and then the broker's acks are awaited, which is
    what makes confirms cheap; a message the broker returns as unroutable is reported as such.
    """

    def __init__(self, amqp_uri: str, *, confirm_timeout: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.confirm_timeout = confirm_timeout
        self._connection: amqp.Connection | None = None
        self._channel: amqp.Channel | None = None
        self._next_tag = 1
        self._pending: dict[int, Confirmation] = {}
        self._by_id: dict[str, Confirmation] = {}
        self._lock = threading.Lock()

    def _ensure_channel(self) -> amqp.Channel:
        if self._channel is not None and self._connection is not None and self._connection.connected:
            return self._channel
        self.close()
        self._connection = connect(self.amqp_uri, timeout=self.confirm_timeout)
        channel = self._connection.channel()
        declare_exchanges(channel)
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._channel = channel
        self._next_tag = 1
        return channel

    def _settle(self, delivery_tag: int, multiple: bool, *, ok: bool) -> None:
        tags = [t for t in self._pending if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            outcome = self._pending.pop(tag, None)
            if outcome is not None:
                outcome.confirmed, outcome.failed = ok, not ok

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, ok=True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, ok=False)

    def _on_return(self, _exc, _exchange, routing_key, message) -> None:
        # A mandatory message no queue matched: RabbitMQ returns it, then acks it.
        outcome = self._by_id.get(message.properties.get("message_id"))
        if outcome is not None:
            outcome.unroutable = True
            log.error(
                "unroutable event %s (routing key %s): no queue is bound for it",
                message.properties.get("message_id"),
                routing_key,
            )

    def publish(self, messages: Sequence[Outgoing]) -> list[Confirmation]:
        """Publish a batch and wait for every confirm; raises BrokerUnavailable on a lost link."""
        with self._lock:
            return self._publish(messages)

    def _publish(self, messages: Sequence[Outgoing]) -> list[Confirmation]:
        try:
            channel = self._ensure_channel()
            outcomes = []
            self._by_id = {}
            for message in messages:
                headers = dict(message.headers)
                if message.cc:
                    headers["CC"] = list(message.cc)
                outgoing = amqp.Message(
                    message.body,
                    content_type=CONTENT_TYPE,
                    delivery_mode=2,
                    message_id=message.message_id,
                    type=message.event_type,
                    application_headers=headers,
                )
                outcome = Confirmation()
                self._pending[self._next_tag] = outcome
                self._by_id[message.message_id] = outcome
                self._next_tag += 1
                outcomes.append(outcome)
                channel.basic_publish(
                    outgoing, exchange=message.exchange, routing_key=message.routing_key, mandatory=True
                )
            deadline = time.monotonic() + self.confirm_timeout
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerUnavailable("timed out waiting for publisher confirms")
                self._connection.drain_events(timeout=remaining)
            return outcomes
        except (OSError, amqp.exceptions.AMQPError) as exc:
            self.close()
            raise BrokerUnavailable(str(exc)) from exc
        except BrokerUnavailable:
            self.close()
            raise

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._pending.clear()
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the link is already broken; closing is best effort
                connection.collect()


class MessageCopier:
    """Publishes copies of messages taken from a queue (the operator's requeue and replay), one at a time,
    ``mandatory`` and confirmed, on a channel of their own; tells whether a queue took each copy."""

    def __init__(self, channel: amqp.Channel) -> None:
        self.channel = channel
        self.channel.confirm_select()
        self._returned = False
        self.channel.events["basic_return"].add(self._on_return)

    def _on_return(self, *_args) -> None:
        self._returned = True

    def copy(self, original: amqp.Message, exchange: str, routing_key: str, headers: Mapping) -> bool:
        """The original's body and properties with ``headers``; True once confirmed and routed."""
        properties = {
            k: v for k, v in original.properties.items() if k not in ("application_headers", "headers")
        }
        properties["delivery_mode"] = 2
        message = amqp.Message(original.body, application_headers=dict(headers), **properties)
        self._returned = False
        self.channel.basic_publish_confirm(
            message, exchange=exchange, routing_key=routing_key, mandatory=True
        )
        # A return, if any, arrives before the confirm (RabbitMQ's ordering guarantee).
        return not self._returned
