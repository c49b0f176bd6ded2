"""One filing followed across services by its trace id: W3C Trace Context from the HTTP request through
the outbox, the event and the consumer, exported over OTLP, and every log line JSON with the ids.

The dossier service (SQLite) and the metrics service (PostgreSQL) run as processes, as `make run` starts
them, on the test's broker vhost, with ``LOG_FORMAT=json`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at
a local OTLP/HTTP receiver (:class:`Collector`, decoding what the exporter sends with OpenTelemetry's own
protobuf messages). The citizen's filing comes in with a ``traceparent`` of the caller's:

* the response names the request (``X-Request-Id`` as given);
* the event on ``egov.events`` carries the caller's trace id in its ``traceparent`` attribute, with a
  parent span of the dossier service's (not the caller's span id);
* the dossier service exports its server span in that trace, child of the caller's span;
* the metrics service exports a consumer span for that event in the same trace;
* every line the dossier service wrote is a JSON object, and the lines written while handling a request
  name its request id and its trace id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from shared.auth import DEV_SECRET
from shared.migrate import upgrade
from tests.conftest import _postgres_database, bearer, free_port
from tests.e2e.test_processes import wait_live
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# The caller's context (the portal's, say): W3C Trace Context's own example ids.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
REQUEST_ID = "portal-req-7f3a"


class Collector:
    """An OTLP/HTTP trace receiver: every span exported to it, as (service, trace id, span id, parent id,
    name, kind)."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope in resource_spans.scope_spans:
                        collector.spans.extend(
                            {
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                            }
                            for span in scope.spans
                        )
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, found: Callable[[dict], bool], seconds: float = 20) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for span in list(self.spans):
                if found(span):
                    return span
            time.sleep(0.1)
        raise AssertionError(f"no such span in {seconds} s; exported: {self.spans}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    subprocess.run(
        [sys.executable, "-m", "shared.migrate", service], cwd=ROOT, env=env, check=True, capture_output=True
    )
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shared.runner", service],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def collector():
    receiving = Collector()
    yield receiving
    receiving.close()


@pytest.fixture
def metrics_database():
    yield from _postgres_database()


def test_one_filing_is_followed_by_its_trace_id_across_services(
    rabbit_config, tmp_path, collector, metrics_database
):
    upgrade("metrics", metrics_database)
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_POLL_SECONDS": "0.2",
        "DOSSIER_DATABASE_URL": f"sqlite:///{tmp_path / 'dossier.sqlite3'}",
        "DOSSIER_ADDRESS": f"127.0.0.1:{free_port()}",
        "METRICS_DATABASE_URL": metrics_database,
        "METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between the exporter's batches
    }
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.received.#")
    logs = {name: tmp_path / f"{name}.log" for name in ("dossier", "metrics")}
    processes = {name: start(name, env, logs[name]) for name in ("dossier", "metrics")}
    dossier_url = f"http://{env['DOSSIER_ADDRESS']}"
    try:
        wait_live(dossier_url, processes["dossier"])
        wait_live(f"http://{env['METRICS_ADDRESS']}", processes["metrics"])
        response = requests.post(
            f"{dossier_url}/api/v1/dossiers",
            headers={
                **bearer("desk_officer", "26740"),
                "traceparent": TRACEPARENT,
                "X-Request-Id": REQUEST_ID,
            },
            json={"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": "26740", "applicant": APPLICANT},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert response.headers["X-Request-Id"] == REQUEST_ID
        code = response.json()["code"]
        # A refusal, so that the request's own log line is written (shared/http.py).
        refused = requests.get(
            f"{dossier_url}/api/v1/dossiers/no-such-code",
            headers={
                **bearer("desk_officer", "26740"),
                "traceparent": TRACEPARENT,
                "X-Request-Id": "refused-1",
            },
            timeout=10,
        )
        assert refused.status_code == 404

        subscriber.drain(expect=1)
        (event,) = [e for e in subscriber.envelopes if e["subject"] == code]
        version, trace_id, parent_id, _flags = event["traceparent"].split("-")
        assert (version, trace_id) == ("00", TRACE_ID)
        assert parent_id != CALLER_SPAN  # a span of the dossier service's, in the caller's trace

        server = collector.wait_for(
            lambda s: (
                s["service"] == "motcua-dossier"
                and s["trace_id"] == TRACE_ID
                and s["parent_id"] == CALLER_SPAN
            )
        )
        assert server["name"] == "POST /api/v1/dossiers"
        consumer = collector.wait_for(
            lambda s: s["service"] == "motcua-metrics" and s["trace_id"] == TRACE_ID
        )
        assert consumer["parent_id"] == parent_id  # continues the trace from the event itself
    finally:
        subscriber.close()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    lines = logs["dossier"].read_text(encoding="utf-8").splitlines()
    assert lines, "the dossier service wrote no log line"
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"dossier.log line {number} is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message", "service"} <= set(r) for r in records)
    refusal = [r for r in records if r["request_id"] == "refused-1"]
    assert refusal and all(r["trace_id"] == TRACE_ID for r in refusal), refusal
    assert any("404" in r["message"] for r in refusal), refusal
    for line in logs["metrics"].read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["service"] == "metrics"
