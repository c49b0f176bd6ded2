"""W3C Trace Context in one process: continued or started, kept apart per greenthread, stamped on events.

The trace across processes (HTTP -> outbox -> broker -> consumer, exported over OTLP) is
tests/e2e/test_tracing.py."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import eventlet
from opentelemetry import context, trace

from shared import logs, tracing
from shared.events import Event
from shared.uow import UnitOfWorkFactory

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def request(headers: dict[str, str]):
    return SimpleNamespace(method="POST", path="/api/v1/dossiers", headers=headers)


def sample(sequence: int = 1) -> Event:
    return Event("dossier", "received", "26740-261123-0001", {"status": 2}, "79.26740", sequence)


def test_an_incoming_traceparent_is_continued_with_a_span_of_our_own():
    with tracing.server_span("dossier", request({"traceparent": CALLER}), "/api/v1/dossiers"):
        version, trace_id, span_id, _flags = tracing.current()["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert span_id != "00f067aa0ba902b7"  # the server span is ours, the caller's is its parent


def test_without_a_traceparent_a_trace_is_started():
    with tracing.server_span("dossier", request({}), "/api/v1/dossiers"):
        first = tracing.trace_id_of(tracing.current()["traceparent"])
    with tracing.server_span("dossier", request({"traceparent": "garbage"}), "/api/v1/dossiers"):
        second = tracing.trace_id_of(tracing.current()["traceparent"])
    assert len(first) == 32 and int(first, 16) != 0
    assert first != second  # each request its own trace; a malformed header starts one too
    assert tracing.current() == {}  # nothing is left attached after the request


def test_each_greenthread_keeps_its_own_trace():
    """nameko runs every worker in a greenthread; greenlet gives each its own contextvars, so two workers
    interleaving never see each other's trace, and a new greenthread starts with none (hence the
    explicit hand-over through ``context_data``)."""
    seen: dict[str, str | None] = {}

    def worker(name: str, traceparent: str) -> None:
        token = context.attach(tracing.extract({"traceparent": traceparent}))
        try:
            eventlet.sleep(0.01)  # the other worker runs meanwhile
            seen[name] = tracing.trace_id_of(tracing.current().get("traceparent"))
            seen[f"{name}'s child"] = eventlet.spawn(lambda: tracing.current().get("traceparent")).wait()
        finally:
            context.detach(token)

    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    threads = [eventlet.spawn(worker, "a", CALLER), eventlet.spawn(worker, "b", other)]
    for thread in threads:
        thread.wait()
    assert seen == {
        "a": TRACE_ID,
        "b": "0af7651916cd43dd8448eb211c80319c",
        "a's child": None,
        "b's child": None,
    }


def test_the_unit_of_work_stamps_its_events_with_the_current_trace():
    factory = UnitOfWorkFactory.__new__(UnitOfWorkFactory)
    factory.integer_sequence = False
    outside = factory._as_sent(events := [sample()])  # outside any trace: as they were
    assert outside is events and outside[0].traceparent is None
    with tracing.server_span("dossier", request({"traceparent": CALLER}), "/api/v1/dossiers"):
        (stamped,) = factory._as_sent([sample()])
        expected = tracing.current()["traceparent"]
    assert stamped.traceparent == expected
    assert json.loads(stamped.to_json())["traceparent"] == expected
    factory.integer_sequence = True
    (old_form,) = factory._as_sent([sample(sequence=3)])
    assert json.loads(old_form.to_json())["sequence"] == 3


def test_every_log_record_names_its_request_and_trace(caplog):
    logs.install()
    token = logs.REQUEST_ID.set("req-1")
    try:
        with tracing.server_span("dossier", request({"traceparent": CALLER}), "/api/v1/dossiers"):
            span_id = format(trace.get_current_span().get_span_context().span_id, "016x")
            with caplog.at_level(logging.INFO):
                logging.getLogger("motcua.test").info("refused")
    finally:
        logs.REQUEST_ID.reset(token)
    (record,) = [r for r in caplog.records if r.name == "motcua.test"]
    line = json.loads(logs.JsonFormatter(service="dossier").format(record))
    assert line["message"] == "refused" and line["service"] == "dossier" and line["level"] == "INFO"
    assert (line["request_id"], line["trace_id"], line["span_id"]) == ("req-1", TRACE_ID, span_id)
