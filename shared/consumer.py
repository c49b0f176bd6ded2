"""Consuming events from ``egov.events``: the entrypoint, retries and the dead-letter path.

``@event_consumer("metrics.dossier-events", ["dossier.#"])`` declares a durable quorum queue bound
to ``egov.events`` and hands each parsed :class:`~shared.events.Event` to the decorated method.
A message that cannot be parsed goes straight to ``egov.events.dlx`` with the reason; a handler
that raises is retried (the message is requeued) and, on its last attempt, dead-lettered with the
exception as the reason, so the consumer carries on and nothing is dropped or retried forever.
De-duplication by event id happens in the handler's own transaction (``Transaction.first_delivery``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import partial

from kombu import Queue
from nameko.extensions import Entrypoint
from nameko.messaging import QueueConsumer

from shared import metrics
from shared.broker import BrokerUnavailable, ConfirmingPublisher, Outgoing, declare_consumer_queue
from shared.events import DEAD_LETTER_EXCHANGE, Event, InvalidEvent

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5


class EventQueueConsumer(QueueConsumer):
    """nameko's queue consumer, handing raw messages over so parsing failures are ours to handle."""

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            declare_consumer_queue(channel, provider.queue_name, provider.routing_keys, provider.max_attempts)
            consumer = consumer_cls(
                queues=[Queue(provider.queue_name, no_declare=True)],
                on_message=partial(self.handle_message, provider),
                accept=None,
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_message(self, provider, message):
        self.container.spawn_managed_thread(
            partial(provider.handle_message, message),
            identifier=f"EventConsumer.handle_message[{provider.queue_name}]",
        )


class EventConsumer(Entrypoint):
    queue_consumer = EventQueueConsumer()

    def __init__(self, queue_name: str, routing_keys: list[str], **kwargs) -> None:
        self.queue_name = queue_name
        self.routing_keys = list(routing_keys)
        self.max_attempts = DEFAULT_MAX_ATTEMPTS
        self._dead_letters: ConfirmingPublisher | None = None
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.max_attempts = int(self.container.config.get("EVENT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        self._dead_letters = ConfirmingPublisher(self.container.config["AMQP_URI"])
        self.queue_consumer.register_provider(self)

    def stop(self) -> None:
        self.queue_consumer.unregister_provider(self)
        if self._dead_letters is not None:
            self._dead_letters.close()

    @property
    def service(self) -> str:
        return self.container.service_name

    def handle_message(self, message) -> None:
        try:
            event = Event.from_json(message.body)
        except InvalidEvent as exc:
            self._dead_letter(message, f"unparseable: {exc}", attempts=1)
            return
        started = time.perf_counter()
        self.container.spawn_worker(
            self,
            (event,),
            {},
            context_data={},
            handle_result=partial(self._handle_result, message, started),
        )

    def _handle_result(self, message, started, worker_ctx, result, exc_info):
        metrics.EVENT_HANDLING.labels(self.service, self.queue_name).observe(time.perf_counter() - started)
        if exc_info is None:
            outcome = "duplicate" if result is False else "processed"
            metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, outcome).inc()
            self.queue_consumer.ack_message(message)
            return result, exc_info
        attempts = int((message.headers or {}).get("x-delivery-count", 0) or 0) + 1
        reason = f"{exc_info[0].__name__}: {exc_info[1]}"
        if attempts >= self.max_attempts:
            self._dead_letter(message, reason, attempts=attempts)
        else:
            log.warning(
                "%s: attempt %d/%d failed (%s); requeued",
                self.queue_name,
                attempts,
                self.max_attempts,
                reason,
            )
            metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "retried").inc()
            self.queue_consumer.requeue_message(message)
        return result, exc_info

    def _dead_letter(self, message, reason: str, *, attempts: int) -> None:
        """Copy the message, with why it failed, to the dead-letter exchange; then ack it."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-motcua-reason": reason[:1000],
                "x-motcua-queue": self.queue_name,
                "x-motcua-original-routing-key": message.delivery_info.get("routing_key", ""),
                "x-motcua-attempts": attempts,
                "x-motcua-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        properties = message.properties or {}
        try:
            outcomes = self._dead_letters.publish(
                [
                    Outgoing(
                        message_id=str(properties.get("message_id") or ""),
                        event_type=str(properties.get("type") or ""),
                        routing_key=self.queue_name,
                        body=message.body if isinstance(message.body, bytes) else str(message.body).encode(),
                        exchange=DEAD_LETTER_EXCHANGE,
                        headers=headers,
                    )
                ]
            )
        except BrokerUnavailable as exc:
            log.error("%s: cannot dead-letter (%s); message requeued", self.queue_name, exc)
            self.queue_consumer.requeue_message(message)
            return
        if not outcomes[0].confirmed or outcomes[0].unroutable:
            self.queue_consumer.requeue_message(message)
            return
        log.error("%s: dead-lettered after %d attempt(s): %s", self.queue_name, attempts, reason)
        metrics.DEAD_LETTERED.labels(self.service, self.queue_name).inc()
        metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "dead_lettered").inc()
        self.queue_consumer.ack_message(message)


event_consumer = EventConsumer.decorator
