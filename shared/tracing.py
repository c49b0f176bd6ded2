"""Distributed tracing: one filing followed across every service by its W3C trace id.

The trace travels as W3C Trace Context (``traceparent``, ``tracestate``):

* **HTTP**: :func:`server_span` continues the request's ``traceparent`` (or starts a trace) in a server
  span around the request; the handler's worker continues it (:class:`Tracing`, through nameko's
  ``context_data``).
* **the outbox**: at commit the unit of work stamps every event with the current context
  (:func:`current`), so it is stored with the event and published with it, however late the relay runs.
* **the event**: the CloudEvents distributed-tracing extension, ``traceparent``/``tracestate`` attributes
  of the envelope (shared/events.py).
* **the consumer**: the worker handling an event continues the event's trace in a consumer span; a batch
  worker makes one consumer span per event, each in its event's trace.

Spans are made by OpenTelemetry's SDK. They are exported (OTLP over HTTP, batched) only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; the exporter's other
``OTEL_*`` variables apply as OpenTelemetry documents them. Unset, spans are still made, so that the trace
id reaches the events and the logs, but are not recorded (sampler ``ALWAYS_OFF``: an id and nothing
else) and go nowhere: no processor, no thread, no I/O.

nameko runs each worker in a greenthread of its own, and a new greenthread starts with an empty context
(greenlet gives each its own ``contextvars``), so the context is handed to a worker explicitly, in the
worker's ``context_data``, and attached there by :class:`Tracing`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from nameko.extensions import DependencyProvider
from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import logs
from shared.events import Event

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
# context_data keys: the worker's parent, its kind, and the request id for its log lines.
PARENT_KEYS = ("traceparent", "tracestate")
KIND_KEY = "motcua.span_kind"
REQUEST_ID_KEY = "motcua.request_id"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_provider: TracerProvider | None = None


def exporting(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether spans leave the process (an OTLP endpoint is configured)."""
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


def provider(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider:
    """This process's tracer provider, made once (a process runs one service, or a test several)."""
    global _provider
    if _provider is None:
        resource = Resource.create({"service.name": f"motcua-{service}"})
        # Not exporting: spans are never recorded (ALWAYS_OFF), yet each still has its ids, which is all
        # the events and the logs need; exporting: OTEL_TRACES_SAMPLER decides, by default every trace.
        made = TracerProvider(resource=resource, sampler=None if exporting(environ) else ALWAYS_OFF)
        if exporting(environ):
            # Imported only when used: the exporter brings protobuf and an HTTP session.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            endpoint = next(environ[name] for name in ENDPOINT_VARIABLES if environ.get(name))
            log.info("exporting spans over OTLP to %s", endpoint)
        trace.set_tracer_provider(made)
        _provider = made
    return _provider


def tracer(service: str) -> trace.Tracer:
    return provider(service).get_tracer(f"motcua.{service}")


def extract(carrier: Mapping[str, Any]) -> context.Context:
    """The context a ``traceparent``/``tracestate`` carrier names (an empty one when it names none or is
    malformed: a new trace starts, the request or event is never refused for it)."""
    return _PROPAGATOR.extract({k: v for k, v in carrier.items() if k in PARENT_KEYS and isinstance(v, str)})


def current() -> dict[str, str]:
    """The current context as ``traceparent`` (and ``tracestate``), or empty outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) a ``traceparent`` carries."""
    return traceparent.split("-")[1] if traceparent else None


@contextmanager
def server_span(service: str, request, route: str) -> Iterator[trace.Span]:
    """Around one HTTP request: continue the caller's trace (its ``traceparent``) or start one."""
    parent = extract({key: request.headers.get(key, "") for key in PARENT_KEYS})
    with tracer(service).start_as_current_span(
        f"{request.method} {route}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path},
    ) as span:
        yield span


def answered(span: trace.Span, status_code: int) -> None:
    """An HTTP answer on its server span: a 5xx is the span's error, a 4xx the client's (not the span's)."""
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


def worker_data(span_kind: str = "internal", **carrier: Any) -> dict[str, Any]:
    """``context_data`` for a worker that continues the current trace, or the given carrier's."""
    data = dict(carrier) if carrier else current()
    data[KIND_KEY] = span_kind
    return data


def event_data(event: Event) -> dict[str, Any]:
    """``context_data`` for a worker handling one event: its consumer span continues the event's trace."""
    carrier = {"traceparent": event.traceparent, "tracestate": event.tracestate}
    return worker_data("consumer", **{k: v for k, v in carrier.items() if v})


def link(event: Event) -> Link | None:
    span = trace.get_current_span(extract({"traceparent": event.traceparent or ""})).get_span_context()
    return Link(span) if span.is_valid else None


class Tracing(DependencyProvider):
    """Every worker of a service runs in a span: an HTTP handler's under the request's server span, an
    event handler's in the event's trace, a timer's in a trace of its own.

    A batch handler (``args[0]`` a list of events) gets one consumer span per event, in that event's
    trace, and a span of its own linked to each."""

    def setup(self) -> None:
        self.service = self.container.service_name
        self.tracer = tracer(self.service)
        self.active: dict[Any, tuple[list[trace.Span], object, object]] = {}

    def worker_setup(self, worker_ctx) -> None:
        data = worker_ctx.context_data or {}
        kind = data.get(KIND_KEY)
        name = f"{self.service}.{worker_ctx.entrypoint.method_name}"
        batch = _batch(worker_ctx.args)
        spans: list[trace.Span] = []
        if batch is not None:
            links = [found for found in map(link, batch) if found is not None]
            spans.extend(
                self.tracer.start_span(
                    name,
                    context=extract(_carrier(event)),
                    kind=SpanKind.CONSUMER,
                    attributes=_event_attributes(event),
                )
                for event in batch
            )
            main = self.tracer.start_span(f"{name} batch", context=context.Context(), links=links)
        else:
            attributes = (
                _event_attributes(worker_ctx.args[0]) if kind == "consumer" and worker_ctx.args else {}
            )
            main = self.tracer.start_span(
                name,
                context=extract(data),
                kind=SpanKind.CONSUMER if kind == "consumer" else SpanKind.INTERNAL,
                attributes=attributes,
            )
        spans.insert(0, main)
        token = context.attach(trace.set_span_in_context(main))
        request_token = logs.REQUEST_ID.set(data.get(REQUEST_ID_KEY))
        self.active[worker_ctx] = (spans, token, request_token)

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        if exc_info is None or worker_ctx not in self.active:
            return
        for span in self.active[worker_ctx][0]:
            span.record_exception(exc_info[1])
            span.set_status(Status(StatusCode.ERROR, type(exc_info[1]).__name__))

    def worker_teardown(self, worker_ctx) -> None:
        found = self.active.pop(worker_ctx, None)
        if found is None:
            return
        spans, token, request_token = found
        for span in spans:
            span.end()
        logs.REQUEST_ID.reset(request_token)
        context.detach(token)


def _batch(args: Sequence[Any]) -> list[Event] | None:
    if args and isinstance(args[0], list) and all(isinstance(event, Event) for event in args[0]):
        return args[0]
    return None


def _carrier(event: Event) -> dict[str, str]:
    return {"traceparent": event.traceparent or "", "tracestate": event.tracestate or ""}


def _event_attributes(event: Any) -> dict[str, str]:
    if not isinstance(event, Event):
        return {}
    return {
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_subject": event.subject,
    }
