"""The outbound service: webhook deliveries per second and the fast subscribers' delivery lag while
slow ones answer after 5 s; dossiers synced to the national portal per second.

**Webhooks.** The outbound service runs as its own process (PostgreSQL, the bench vhost) with 100
subscriptions of one province to a local receiver (a threaded HTTP server in this process); 10 of them
answer each delivery after 5 s. Events are published on ``egov.events`` as the dossier service's relay
publishes them.

* Throughput: a burst of events; the figure is the fast subscriptions' deliveries (2xx) per second,
  from the publish to the last one. Baseline, in the same run, to the same receiver: a bare loop of
  Standard Webhooks-signed POSTs (one keep-alive session, one after the other) — what one sender costs
  without the database, the ordering and the dispatcher. Target: the ratio ≥ 0.5.
* Lag: events at a steady rate — half the fast deliveries per second just measured, over the 90 fast
  subscriptions (at most ``rate`` events a second); per fast delivery, from the event's ``time`` to its
  arrival; p50 and p99 (target p99 < 1 s) while the slow subscriptions hold 10 of the dispatcher's
  threads with the burst's and these deliveries.

**Portal sync.** The dossier service files N dossiers while the outbound service cannot reach the
portal simulator (a fault proxy, cut); once all N wait in the queue, the proxy is restored and the
figure is dossiers synced per second (their ``received`` step at the portal: ``TraCuuHoSo``,
``DongBoHoSoMC`` after the dossier service's portal-record read, ``CapNhatTienDoHoSoMC``). The ceiling,
in the same run: the same three calls per dossier to the same simulator in a bare loop of the adapter.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
from standardwebhooks.webhooks import Webhook

from benchmarks.common import RunningService, free_port
from chaos.proxy import FaultProxy
from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope
from services.outbound.domain.portal import History, Personal, record, step
from services.outbound.portal import PortalAdapter, PortalSettings
from shared.auth import DEV_SECRET, mint
from shared.broker import ConfirmingPublisher, Outgoing
from shared.units import UnitRegistry
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts
from tests.support.portal import portal_simulator

PROVINCE, DESK, PROCEDURE = "79", "26740", "1.012767"
SECRET = "whsec_" + "YmVuY2htYXJrLXN1YnNjcmliZXItc2VjcmV0LTAx"
EVENT_CLASSES = {event.name: event for event in EVENTS}
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _bearer(role: str, unit: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(DEV_SECRET, sub=f'{role}@{unit}', roles=[role], units=[unit])}"}


class Receiver:
    """Answers 204 at once on /fast/<n>, after ``slow_seconds`` on /slow/<n> (but a subscription's test
    delivery at once); records each arrival: (path, event id, event time, arrival time)."""

    def __init__(self, slow_seconds: float) -> None:
        self.arrivals: list[tuple[str, str, str, float]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                arrived = time.time()
                event = json.loads(body)
                if self.path.startswith("/slow/") and not event["type"].endswith("subscription_test"):
                    time.sleep(slow_seconds)
                with receiver.lock:
                    receiver.arrivals.append((self.path, event["id"], event.get("time", ""), arrived))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's listen backlog is 5: the service opening a connection per subscription
            # at once overflowed it, and a connection the kernel completed but the server had not
            # accepted was closed unanswered — a failed try, retried after the 25 s backoff. A web
            # server's backlog is hundreds (nginx: 511).
            request_queue_size = 1024

        self.port = free_port()
        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fast(self, ids: set[str]) -> list[tuple[str, str, str, float]]:
        with self.lock:
            return [a for a in self.arrivals if a[0].startswith("/fast/") and a[1] in ids]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _events(registry: UnitRegistry, count: int) -> list:
    now = datetime.now(UTC)
    path = registry.routing_path(DESK)
    events = []
    for _ in range(count):
        facts = StatusFacts(
            code=f"{DESK}-{uuid.uuid4().hex[:10]}",
            procedure_code=PROCEDURE,
            procedure_version=1,
            procedure_field="civil_status",
            receiving_unit=DESK,
            handling_unit=DESK,
            channel=Channel.COUNTER,
            return_method=ReturnMethod.COUNTER,
            online_level=None,
            received_at=now,
            due_at=now + timedelta(days=3),
            original_due_at=now + timedelta(days=3),
            status=Status.RECEIVED,
            occurred_at=datetime.now(UTC),
        )
        events.append(envelope(EVENT_CLASSES["received"](facts=facts), path, path, 1))
    return events


def _publish(publisher: ConfirmingPublisher, events: list) -> None:
    publisher.publish(
        [
            Outgoing(
                message_id=e.id,
                event_type=e.type,
                routing_key=e.routing_key,
                body=e.to_json().encode(),
                cc=e.cc,
            )
            for e in events
        ]
    )


def _bare_loop(receiver: Receiver, seconds: float) -> float:
    """Signed POSTs of one CloudEvent body, one after the other, for ``seconds``: per second."""
    session, body = requests.Session(), _events(UnitRegistry.default(), 1)[0].to_json()
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        message_id, now = str(uuid.uuid4()), datetime.now(UTC)
        headers = {
            "content-type": "application/cloudevents+json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(message_id, now, body),
        }
        session.post(
            receiver.url("/bare"), data=body.encode(), headers=headers, timeout=10
        ).raise_for_status()
        sent += 1
    return sent / (time.monotonic() - started)


def webhooks(amqp_uri: str, database_url: str, *, burst: int, rate: float, seconds: float) -> dict:
    receiver = Receiver(slow_seconds=5.0)
    env = {
        "MOTCUA_ENV": "development",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_POLL_SECONDS": "0.05",
        "WEBHOOK_CONCURRENCY": "100",
        "WEBHOOK_TIMEOUT_SECONDS": "10",
        "PORTAL_SYNC_SECONDS": "3600",
        "PORTAL_URL": "http://127.0.0.1:9",
        "DOSSIER_URL": "http://127.0.0.1:9",
    }
    try:
        with RunningService("outbound", amqp_uri, database_url, env=env) as service:
            subscriber = _bearer("subscriber", PROVINCE)
            for n in range(100):
                path = f"/slow/{n}" if n < 10 else f"/fast/{n}"
                made = requests.post(
                    f"{service.url}/api/v1/subscriptions",
                    json={"callback_url": receiver.url(path), "unit": PROVINCE, "secret": SECRET},
                    headers=subscriber,
                    timeout=30,
                )
                made.raise_for_status()
            baseline = _bare_loop(receiver, 5.0)
            registry, publisher = UnitRegistry.default(), ConfirmingPublisher(amqp_uri)
            try:
                # Throughput: a burst; every fast subscription gets every event.
                events = _events(registry, burst)
                ids = {e.id for e in events}
                started = time.time()
                _publish(publisher, events)
                expected = 90 * burst
                deadline = time.monotonic() + 600
                while len(receiver.fast(ids)) < expected and time.monotonic() < deadline:
                    time.sleep(0.2)
                fast = receiver.fast(ids)
                elapsed = max(a[3] for a in fast) - started
                throughput = len(fast) / elapsed
                # Lag: a steady rate, the slow ones still busy with the burst and with these.
                rate = min(rate, 0.5 * throughput / 90)
                steady: set[str] = set()
                begun = time.monotonic()
                for tick in range(max(1, int(rate * seconds))):
                    batch = _events(registry, 1)
                    steady |= {e.id for e in batch}
                    _publish(publisher, batch)
                    time.sleep(max(0.0, begun + (tick + 1) / rate - time.monotonic()))
                deadline = time.monotonic() + 120
                while len(receiver.fast(steady)) < 90 * len(steady) and time.monotonic() < deadline:
                    time.sleep(0.2)
                lags = sorted(
                    a[3] - datetime.fromisoformat(a[2].replace("Z", "+00:00")).timestamp()
                    for a in receiver.fast(steady)
                )
            finally:
                publisher.close()
    finally:
        receiver.close()
    return {
        "deliveries_per_second": round(throughput, 1),
        "bare_signed_posts_per_second": round(baseline, 1),
        "ratio": round(throughput / baseline, 2),
        "burst": f"{burst} events x 90 fast subscriptions = {expected}: {len(fast)} in {elapsed:.1f} s",
        "lag_fast_p50_seconds": round(statistics.median(lags), 3),
        "lag_fast_p99_seconds": round(lags[int(0.99 * (len(lags) - 1))], 3),
        "lag_sample": f"{len(lags)} fast deliveries of {len(steady)} events at {rate:.2f}/s",
    }


def _ceiling(portal_url: str, count: int) -> float:
    """The three calls per dossier to the simulator, in a bare loop of the adapter: dossiers a second."""
    adapter = PortalAdapter(
        PortalSettings(
            url=portal_url,
            auth_path="auth",
            service_path="integration",
            dstcode="79",
            username="motcua",
            password="motcua-development-password",
            unit_code="000.00.00.H79",
            timeout=10,
            retries=0,
            session_error_codes=frozenset({"401"}),
        )
    )
    personal = Personal("Nguyễn Văn An", "0901234567", None, "Thủ tục", "Hộ tịch")
    names = {DESK: DESK}
    started = time.monotonic()
    for event in _events(UnitRegistry.default(), count):
        data = json.loads(event.to_json())["data"]
        item = step("received", data, History(), names, ZONE)
        adapter.sync(record(data, History(), personal, names, ZONE), updating=adapter.knows(data["code"]))
        adapter.progress([item])
    rate = count / (time.monotonic() - started)
    adapter.close()
    return rate


def portal(amqp_uri: str, database_url: str, *, dossiers: int) -> dict:
    with portal_simulator(hang_seconds=2, slow_seconds=0.2) as simulator:
        ceiling = _ceiling(simulator.url, dossiers)
        target = urlsplit(simulator.url)
        proxy = FaultProxy(target.hostname, target.port)
        proxy.cut()
        common = {"MOTCUA_ENV": "development"}
        try:
            with RunningService("dossier", amqp_uri, database_url, env=common) as dossier:
                env = {
                    **common,
                    "PORTAL_URL": f"http://127.0.0.1:{proxy.port}",
                    "PORTAL_HTTP_RETRIES": "0",
                    "PORTAL_RETRY_DELAYS": "0.5",
                    "PORTAL_MAX_ATTEMPTS": "1000",
                    "PORTAL_SYNC_SECONDS": "0.1",
                    "PORTAL_SYNC_UNITS": PROVINCE,
                    "DOSSIER_URL": dossier.url,
                }
                with RunningService("outbound", amqp_uri, database_url, env=env) as outbound:
                    desk = _bearer("desk_officer", DESK)
                    codes = set()
                    applicant = {"full_name": "Nguyễn Văn An", "id_number": "079090001234"}
                    for _ in range(dossiers):
                        made = requests.post(
                            f"{dossier.url}/api/v1/dossiers",
                            json={
                                "procedure_code": PROCEDURE,
                                "receiving_unit": DESK,
                                "applicant": applicant,
                            },
                            headers=desk,
                            timeout=30,
                        )
                        made.raise_for_status()
                        codes.add(made.json()["code"])
                    backlog = f'motcua_portal_sync_backlog{{unit="{DESK}"}} {float(dossiers)}'
                    deadline = time.monotonic() + 120
                    while backlog not in requests.get(f"{outbound.url}/metrics", timeout=10).text:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the dossiers' events did not all reach the portal queue")
                        time.sleep(0.5)
                    proxy.restore()
                    started = time.monotonic()
                    deadline = started + 600
                    while time.monotonic() < deadline:
                        steps = simulator.received()["steps"]
                        if all(code in steps for code in codes):
                            break
                        time.sleep(0.5)
                    elapsed = time.monotonic() - started
        finally:
            proxy.close()
    synced = dossiers / elapsed
    return {
        "dossiers_synced_per_second": round(synced, 1),
        "simulator_ceiling_per_second": round(ceiling, 1),
        "ratio": round(synced / ceiling, 2),
        "sample": f"{dossiers} dossiers (the received step each), synced in {elapsed:.1f} s",
    }
