"""Consuming events from ``egov.events``: the entrypoints, retries and the dead-letter path.

``@event_consumer("metrics.dossier-events", ["dossier.#"])`` declares a durable quorum queue bound
to ``egov.events`` and hands each parsed :class:`~shared.events.Event` to the decorated method.
De-duplication by event id happens in the handler's own transaction (``Transaction.first_delivery``).
Before any handler sees an event, :func:`shared.verification.verify_delivery` checks it (routing key,
source, type, schema, units); what fails is dead-lettered at once with the reason, as is an event a
handler refuses by raising :class:`shared.verification.EventRejected`. Events are read tolerantly
(docs/contracts.md §6): an envelope attribute or a ``data`` field this version does not know is left
out before the handler sees the event, so a newer producer's additive change dead-letters nothing.
A queue's name starts with its service's name (``metrics.…``): the service's broker user may use no
other (shared/broker_users.py).

Two kinds of failure, told apart by :func:`shared.transient.is_transient`:

- **The infrastructure's** (the database stopped, a connection reset, a lock timeout): the message is
  held, unacked, and handled again after a back-off (``EVENT_OUTAGE_BACKOFF_MAX_SECONDS`` at most
  between tries) until the database answers. It spends none of its attempts; while the held messages
  fill the prefetch window the broker sends no more, which is what pauses the consumer. A message is
  held at most ``EVENT_MAX_HOLD_SECONDS`` after its delivery (default 15 min), then given back to the
  broker (requeued, which spends one delivery): RabbitMQ's ``consumer_timeout`` (30 min by default)
  would otherwise close the channel and take back every unacked message on it. The hold must be below
  the broker's timeout (``BROKER_CONSUMER_TIMEOUT_SECONDS``), checked at start (:func:`hold_problem`).
- **The message's own** (the handler raised anything else): the attempt counts. The message is requeued
  after a delay growing with each attempt (``EVENT_RETRY_DELAYS``, default 1 s, 5 s, 30 s, 2 min) and,
  on its last attempt (``EVENT_MAX_ATTEMPTS``), dead-lettered with the exception as the reason, so the
  consumer carries on and nothing is dropped or retried forever. A message that cannot be parsed goes
  straight to ``egov.events.dlx`` with the reason.

``@event_batch_consumer(queue, keys, batch_size=500, batch_wait=0.05)`` is the same contract for a
handler that takes a list of events: nameko's one worker per message is what limits a consumer, so
here the broker's callback only parses and buffers, and one worker takes each batch (full, or
``batch_wait`` seconds after its first message). A batch that succeeds is acked message by message; one
whose handler raises is handled again one event per call, so a poison event is retried and
dead-lettered alone, exactly as above, while its neighbours are acked. Batches run one at a time,
in arrival order; the broker sends up to ``prefetch`` (default twice ``batch_size``) unacked messages, so
the next batch fills while one is handled. On stop, buffered messages are not acked: the broker
delivers them again, and the handler's de-duplication keeps them from counting twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import eventlet
from eventlet.event import Event as Done
from eventlet.greenthread import GreenThread
from eventlet.queue import Empty, LightQueue
from kombu import Queue
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from nameko.messaging import QueueConsumer, QueueConsumerStopped

from shared import metrics, tracing
from shared.broker import BrokerUnavailable, ConfirmingPublisher, Outgoing, declare_consumer_queue
from shared.config import parse_delays
from shared.events import DEAD_LETTER_EXCHANGE, Event, InvalidEvent
from shared.failpoints import crash_point
from shared.transient import describe, is_transient
from shared.units import UnitRegistry
from shared.verification import EventRejected, verify_delivery

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)
DEFAULT_OUTAGE_BACKOFF_MAX = 10.0
OUTAGE_BACKOFF_FIRST = 0.5
DEFAULT_MAX_HOLD = 900.0
# RabbitMQ's own default consumer_timeout (deploy/k8s/overlays/production/rabbitmq.yaml states it).
DEFAULT_BROKER_CONSUMER_TIMEOUT = 1800.0
# Time a held message may take to be handled once more after its hold's last back-off.
HOLD_MARGIN = 60.0


def retry_delay(delays: Sequence[float], attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1-based); the last delay repeats."""
    return delays[min(attempt, len(delays)) - 1]


def outage_backoff(round_: int, ceiling: float) -> float:
    """The wait before handling a held message again: 0.5 s, 1 s, 2 s … up to ``ceiling``."""
    return min(OUTAGE_BACKOFF_FIRST * 2 ** min(round_, 16), ceiling)


def max_hold(config: Mapping[str, Any]) -> float:
    """How long after its delivery a held message is given back to the broker (seconds)."""
    return float(config.get("EVENT_MAX_HOLD_SECONDS") or DEFAULT_MAX_HOLD)


def hold_problem(config: Mapping[str, Any]) -> str | None:
    """Why the hold and the broker's ``consumer_timeout`` disagree, or None when they agree."""
    hold = max_hold(config)
    timeout = float(config.get("BROKER_CONSUMER_TIMEOUT_SECONDS") or DEFAULT_BROKER_CONSUMER_TIMEOUT)
    if hold <= 0:
        return f"EVENT_MAX_HOLD_SECONDS must be positive, not {hold:g}"
    if hold + HOLD_MARGIN > timeout:
        return (
            f"EVENT_MAX_HOLD_SECONDS={hold:g} is not {HOLD_MARGIN:g} s below the broker's consumer_timeout "
            f"(BROKER_CONSUMER_TIMEOUT_SECONDS={timeout:g}): a held event would be redelivered by the broker "
            "with its whole channel; lower the hold or raise consumer_timeout on the broker and here"
        )
    return None


class EventQueueConsumer(QueueConsumer):
    """nameko's queue consumer, handing raw messages over so parsing failures are ours to handle.

    Graceful stop (SIGTERM): the entrypoints' stop cancels the consumers, so no new message arrives,
    but the connection stays open until the container has finished its workers and calls
    :meth:`stop`, so the messages in flight are acked on the channel they came on. nameko's own
    consumer closes the connection as soon as the last consumer is cancelled: the acks of the
    messages still being handled were then dropped, and the broker delivered those messages again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._workers_done = False

    def on_iteration(self) -> None:
        self._cancel_consumers_if_requested()
        if not self._consumers and self._workers_done:
            self.should_stop = True

    def stop(self) -> None:
        # Called after the container's workers are done (shared extensions stop last).
        self._workers_done = True
        super().stop()

    def on_connection_error(self, exc, interval) -> None:
        # kombu retries a lost connection forever; once the consumer is asked to stop (kill: the
        # broker is gone and so are the unacked messages, which it delivers again), stop retrying.
        if self.should_stop:
            raise QueueConsumerStopped(f"stopped while the broker is unreachable: {exc}")
        super().on_connection_error(exc, interval)

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            declare_consumer_queue(channel, provider.queue_name, provider.routing_keys, provider.max_attempts)
            consumer = consumer_cls(
                queues=[Queue(provider.queue_name, no_declare=True)],
                on_message=partial(self.handle_message, provider),
                accept=None,
            )
            # basic.qos holds for the consumers started after it on the channel: start each one at
            # once, so that every entrypoint gets its own prefetch (kombu will not start it twice).
            consumer.qos(prefetch_count=provider.prefetch_count)
            consumer.consume()
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_message(self, provider, message):
        provider.receive(message)


class EventConsumer(Entrypoint):
    queue_consumer = EventQueueConsumer()

    def __init__(self, queue_name: str, routing_keys: list[str], *, verify: bool = True, **kwargs) -> None:
        self.queue_name = queue_name
        self.routing_keys = list(routing_keys)
        self.max_attempts = DEFAULT_MAX_ATTEMPTS
        self.retry_delays = DEFAULT_RETRY_DELAYS
        self.outage_backoff_max = DEFAULT_OUTAGE_BACKOFF_MAX
        self.max_hold = DEFAULT_MAX_HOLD
        self.verify = verify
        self.units: UnitRegistry | None = None
        self._dead_letters: ConfirmingPublisher | None = None
        super().__init__(**kwargs)

    def setup(self) -> None:
        if not self.queue_name.startswith(f"{self.service}."):
            # The service's broker user may declare and read only queues named so (shared/broker_users.py).
            raise ValueError(
                f"queue {self.queue_name!r} of service {self.service} must start with '{self.service}.'"
            )
        config = self.container.config
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        self.retry_delays = parse_delays(config.get("EVENT_RETRY_DELAYS") or DEFAULT_RETRY_DELAYS)
        self.outage_backoff_max = float(
            config.get("EVENT_OUTAGE_BACKOFF_MAX_SECONDS") or DEFAULT_OUTAGE_BACKOFF_MAX
        )
        problem = hold_problem(config)
        if problem:
            raise ValueError(f"{self.queue_name}: {problem}")
        self.max_hold = max_hold(config)
        self.units = UnitRegistry.from_settings(self.container.config.get("UNITS_FILE") or None)
        self._dead_letters = ConfirmingPublisher(self.container.config["AMQP_URI"])
        self.queue_consumer.register_provider(self)

    def stop(self) -> None:
        self.queue_consumer.unregister_provider(self)
        if self._dead_letters is not None:
            self._dead_letters.close()

    @property
    def service(self) -> str:
        return self.container.service_name

    @property
    def prefetch_count(self) -> int:
        """Unacked messages the broker may send: one per worker."""
        return self.container.max_workers

    def receive(self, message) -> None:
        """Called by the queue consumer's thread for each delivery: one thread per message."""
        self.container.spawn_managed_thread(
            partial(self.handle_message, message, received=time.monotonic()),
            identifier=f"EventConsumer.handle_message[{self.queue_name}]",
        )

    def accept(self, message) -> tuple[Event | None, str | None]:
        """The message's event, or None and why it is refused (shared/verification.py)."""
        try:
            event = Event.from_json(message.body)
        except InvalidEvent as exc:
            return None, f"unparseable: {exc}"
        if self.verify:
            headers = message.headers or {}
            try:
                event = verify_delivery(
                    event, message.delivery_info.get("routing_key", ""), headers.get("CC") or (), self.units
                )
            except EventRejected as exc:
                return None, f"rejected: {exc}"
        return event, None

    def handle_message(self, message, outage_round: int = 0, received: float | None = None) -> None:
        received = time.monotonic() if received is None else received
        event, refusal = self.accept(message)
        if event is None:
            self._dead_letter(message, refusal, attempts=1)
            return
        started = time.perf_counter()
        try:
            self.container.spawn_worker(
                self,
                (event,),
                {},
                context_data=tracing.event_data(event),
                handle_result=partial(self._handle_result, message, started, outage_round, received),
            )
        except ContainerBeingKilled:
            return  # unacked: the broker delivers it again

    def _handle_result(self, message, started, outage_round, received, worker_ctx, result, exc_info):
        metrics.EVENT_HANDLING.labels(self.service, self.queue_name).observe(time.perf_counter() - started)
        if exc_info is not None and is_transient(exc_info[1]):
            self._hold(message, exc_info[1], outage_round, received)
        else:
            if exc_info is None:
                crash_point("consumer.after_commit")
            self._settle(message, result, exc_info)
        return result, exc_info

    def _hold(self, message, exc: BaseException, outage_round: int, received: float) -> None:
        """The infrastructure failed, not the message: handle it again later, spending no attempt."""
        wait = outage_backoff(outage_round, self.outage_backoff_max)
        metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "deferred").inc()
        if self._hold_is_over(received, wait, describe(exc), 1):
            self.queue_consumer.requeue_message(message)
            return
        log.warning("%s: %s; event held, handled again in %.1fs", self.queue_name, describe(exc), wait)

        def again() -> None:
            eventlet.sleep(wait)
            self.handle_message(message, outage_round + 1, received)

        self.container.spawn_managed_thread(again, identifier=f"EventConsumer.hold[{self.queue_name}]")

    def _hold_is_over(self, received: float, wait: float, reason: str, count: int) -> bool:
        """Whether holding on for ``wait`` more seconds would pass the maximum hold (then say so)."""
        if time.monotonic() - received + wait <= self.max_hold:
            return False
        log.error(
            "%s: %s; %d event(s) held for EVENT_MAX_HOLD_SECONDS=%g, given back to the broker "
            "(one delivery spent each)",
            self.queue_name,
            reason,
            count,
            self.max_hold,
        )
        return True

    def _settle(self, message, result, exc_info) -> None:
        """Ack a handled message; requeue a failed one after its delay, or dead-letter it on its last
        attempt."""
        if exc_info is None:
            outcome = "duplicate" if result is False else "processed"
            metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, outcome).inc()
            self.queue_consumer.ack_message(message)
            return
        attempts = int((message.headers or {}).get("x-delivery-count", 0) or 0) + 1
        reason = f"{exc_info[0].__name__}: {exc_info[1]}"
        if issubclass(exc_info[0], EventRejected):
            # The handler refuses the event itself (its sequence number is taken): retrying changes nothing.
            self._dead_letter(message, f"rejected: {exc_info[1]}", attempts=attempts)
            return
        if attempts >= self.max_attempts:
            self._dead_letter(message, reason, attempts=attempts)
            return
        delay = retry_delay(self.retry_delays, attempts)
        log.warning(
            "%s: attempt %d/%d failed (%s); requeued in %.1fs",
            self.queue_name,
            attempts,
            self.max_attempts,
            reason,
            delay,
        )
        metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "retried").inc()

        def requeue() -> None:
            # Held unacked meanwhile: if the process dies, the broker delivers it again at once.
            eventlet.sleep(delay)
            self.queue_consumer.requeue_message(message)

        self.container.spawn_managed_thread(requeue, identifier=f"EventConsumer.retry[{self.queue_name}]")

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


class EventBatchConsumer(EventConsumer):
    """The entrypoint of :func:`event_batch_consumer`: the handler takes a list of events.

    What the handler returns for a batch may be one answer per event, False for a redelivery it
    ignored (counted as a duplicate), as :class:`EventConsumer` reads a single handler's answer.
    ``motcua_event_handling_seconds`` observes, for each event, the handling of the call it was in.
    """

    def __init__(
        self,
        queue_name: str,
        routing_keys: list[str],
        *,
        batch_size: int = 500,
        batch_wait: float = 0.05,
        prefetch: int | None = None,
        **kwargs,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"{queue_name}: batch_size must be at least 1, not {batch_size}")
        if batch_wait < 0:
            raise ValueError(f"{queue_name}: batch_wait must not be negative, not {batch_wait}")
        prefetch = 2 * batch_size if prefetch is None else prefetch
        if prefetch < batch_size:
            raise ValueError(f"{queue_name}: prefetch {prefetch} is smaller than batch_size {batch_size}")
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.prefetch = prefetch
        self._arrivals: LightQueue | None = None
        self._batches: GreenThread | None = None
        self._stopping = False
        super().__init__(queue_name, routing_keys, **kwargs)

    @property
    def prefetch_count(self) -> int:
        return self.prefetch

    def setup(self) -> None:
        self._arrivals = LightQueue()
        self._stopping = False
        super().setup()

    def start(self) -> None:
        self._batches = self.container.spawn_managed_thread(
            self._run_batches, identifier=f"EventBatchConsumer[{self.queue_name}]"
        )

    def stop(self) -> None:
        # No batch starts after this; whatever is buffered stays unacked and the broker delivers it
        # again. The batch being handled, if any, finishes and is settled first: its acks go out on
        # the connection, which stays open until then (EventQueueConsumer).
        self._stopping = True
        self._arrivals.put(None)
        super().stop()
        if self._batches is not None:
            self._batches.wait()

    def receive(self, message) -> None:
        """In the queue consumer's thread: parse, check and buffer, nothing else."""
        event, refusal = self.accept(message)
        if event is None:
            self.container.spawn_managed_thread(
                partial(self._dead_letter, message, refusal, attempts=1),
                identifier=f"EventBatchConsumer.dead_letter[{self.queue_name}]",
            )
            return
        self._arrivals.put((message, event, time.monotonic()))

    def _run_batches(self) -> None:
        while not self._stopping:
            batch = self._next_batch()
            if batch is None:
                return
            self._handle_batch(batch)

    def _next_batch(self) -> list[tuple[Any, Event, float]] | None:
        """Wait for a first message, then take more until the batch is full or ``batch_wait`` is up."""
        item = self._arrivals.get()
        if item is None:
            return None
        batch = [item]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            try:
                item = self._arrivals.get_nowait()
            except Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._arrivals.get(timeout=remaining)
                except Empty:
                    break
            if item is None:
                return None
            batch.append(item)
        return batch

    def _call(self, events: list[Event]) -> tuple[Any, Any] | None:
        """Run the handler on ``events`` in a worker; its result and exc_info, None if being killed."""
        done = Done()

        def handle_result(worker_ctx, result, exc_info):
            done.send((result, exc_info))
            return result, exc_info

        try:
            # The worker's spans come from the events themselves, one per event (shared/tracing.py).
            self.container.spawn_worker(self, (events,), {}, context_data={}, handle_result=handle_result)
        except ContainerBeingKilled:
            return None
        return done.wait()

    def _call_through_outages(self, events: list[Event], received: float) -> tuple[Any, Any] | None:
        """:meth:`_call`, again after a back-off while the infrastructure fails; None when stopping.

        RELEASED when the hold would pass ``max_hold`` after ``received`` (the oldest delivery)."""
        outage_round = 0
        while True:
            outcome = self._call(events)
            if outcome is None or outcome[1] is None or not is_transient(outcome[1][1]):
                return outcome
            wait = outage_backoff(outage_round, self.outage_backoff_max)
            if self._hold_is_over(received, wait, describe(outcome[1][1]), len(events)):
                metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "deferred").inc(len(events))
                return RELEASED
            log.warning(
                "%s: %s; %d event(s) held, handled again in %.1fs",
                self.queue_name,
                describe(outcome[1][1]),
                len(events),
                wait,
            )
            metrics.EVENTS_CONSUMED.labels(self.service, self.queue_name, "deferred").inc(len(events))
            del outcome
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self._stopping:
                    return None  # unacked: the broker delivers them again
                eventlet.sleep(min(0.2, wait))
            outage_round += 1

    def _release(self, batch: list[tuple[Any, Event, float]]) -> None:
        for message, _event, _received in batch:
            self.queue_consumer.requeue_message(message)

    def _handle_batch(self, batch: list[tuple[Any, Event, float]]) -> None:
        started = time.perf_counter()
        oldest = min(received for _message, _event, received in batch)
        outcome = self._call_through_outages([event for _message, event, _received in batch], oldest)
        if outcome is RELEASED:
            self._release(batch)
            return
        if outcome is None:
            return
        result, exc_info = outcome
        handling = metrics.EVENT_HANDLING.labels(self.service, self.queue_name)
        elapsed = time.perf_counter() - started
        if exc_info is None or len(batch) == 1:
            if exc_info is None:
                crash_point("consumer.after_commit")
            answers = _answers(result, len(batch))
            for (message, _event, _received), answer in zip(batch, answers, strict=True):
                handling.observe(elapsed)
                self._settle(message, answer, exc_info)
            return
        log.warning(
            "%s: a batch of %d events failed (%s: %s); handling them one by one",
            self.queue_name,
            len(batch),
            exc_info[0].__name__,
            exc_info[1],
        )
        del exc_info
        for index, (message, event, _received) in enumerate(batch):
            if self._stopping:
                return  # the rest stays unacked: delivered again
            started = time.perf_counter()
            outcome = self._call_through_outages([event], oldest)
            if outcome is RELEASED:
                self._release(batch[index:])
                return
            if outcome is None:
                return
            result, exc_info = outcome
            handling.observe(time.perf_counter() - started)
            self._settle(message, _answers(result, 1)[0], exc_info)


# What _call_through_outages answers when the hold is over: the batch goes back to the broker.
RELEASED: Any = object()


def _answers(result: Any, count: int) -> Sequence[Any]:
    """A batch handler's answer per event: its list if it gave one per event, else None for each."""
    if isinstance(result, Sequence) and not isinstance(result, str | bytes) and len(result) == count:
        return result
    return [None] * count


event_consumer = EventConsumer.decorator
event_batch_consumer = EventBatchConsumer.decorator
