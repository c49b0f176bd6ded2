"""Webhooks verified, stored and acknowledged per second, and their latency at half that rate.

The postal service runs as its own process (as ``make run`` starts it). Tracking reports for
pre-inserted shipments are signed beforehand (Standard Webhooks, the development secret) so the
client spends nothing on HMAC: ``wrk`` sends them as fast as the service answers, and the figure is
the number of reports **stored** (rows in ``postal_webhooks``) per second of the run. Each shipment
gets picked_up, in_transit, out_for_delivery, delivered in turn, so most reports move a shipment and
write an outbox event too.

The baseline, measured in the same run on the same database: the same verification
(``standardwebhooks`` over the same raw bodies) plus one INSERT, committed per message, in a bare
loop — what the receiver would cost without HTTP, nameko, the shipment lookup and the event.

Latency: a second process sends new reports at half the measured rate on a fixed schedule and
measures each response from its scheduled send time (so a stall counts against every request it
delays), reporting p50 and p99.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from benchmarks.common import RunningService, wrk
from services.postal import repository
from services.postal.domain.model import Direction, Shipment
from services.postal.models import webhooks
from shared.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bW90Y3VhLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0"
STATUSES = ("picked_up", "in_transit", "out_for_delivery", "delivered")
UNIT = "26734"
CONTACT = {"name": "Nguyễn Văn An", "phone": "0901234567", "address": "12 Lê Lợi"}


class RunningPostal(RunningService):
    def __init__(self, amqp_uri: str, database_url: str) -> None:
        super().__init__("postal", amqp_uri, database_url, env={"POSTAL_WATCH_SECONDS": "3600"})


def _shipments(engine: sa.Engine, count: int) -> list[str]:
    consignments = []
    now = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as connection, Session(bind=connection) as session:
        for _ in range(count):
            consignment = f"EB{uuid.uuid4().int % 10**12:012d}VN"
            shipment = Shipment.order(
                id=str(uuid.uuid4()),
                dossier_code=f"B-{consignment}",
                direction=Direction.DELIVERY,
                operator="vnpost",
                consignment=consignment,
                receiving_unit=UNIT,
                packages=1,
                fee_vnd=22000,
                created_at=now,
            )
            repository.add_shipment(session, shipment, unit_path=f"79.{UNIT}", contact=CONTACT)
            consignments.append(consignment)
    return consignments


def signed_requests(consignments: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Reports status by status across all shipments, each signed now."""
    webhook = Webhook(SECRET)
    start = datetime.now(UTC) - timedelta(minutes=30)
    out = []
    for step, status in enumerate(STATUSES):
        for consignment in consignments:
            body = json.dumps(
                {
                    "consignment": consignment,
                    "status": status,
                    "occurred_at": (start + timedelta(minutes=step)).isoformat(),
                }
            )
            webhook_id = f"msg_{uuid.uuid4().hex}"
            moment = datetime.now(UTC)
            out.append(
                (
                    body,
                    {
                        "webhook-id": webhook_id,
                        "webhook-timestamp": str(int(moment.timestamp())),
                        "webhook-signature": webhook.sign(webhook_id, moment, body),
                        "Content-Type": "application/json",
                    },
                )
            )
    return out


def baseline(database_url: str, requests_: list[tuple[str, dict[str, str]]]) -> float:
    """The same verification plus one INSERT per message, committed each time, in a bare loop."""
    engine = create_engine(database_url)
    table = sa.Table(
        "bench_webhook_baseline",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("webhook_id", sa.String(200), unique=True),
        sa.Column("body", sa.Text),
    )
    table.create(engine)
    webhook = Webhook(SECRET)
    started = time.perf_counter()
    for body, headers in requests_:
        webhook.verify(body.encode(), headers, json_parse=False)
        with engine.begin() as connection:
            connection.execute(table.insert().values(webhook_id=headers["webhook-id"], body=body))
    elapsed = time.perf_counter() - started
    table.drop(engine)
    engine.dispose()
    return len(requests_) / elapsed


def _lua(requests_: list[tuple[str, dict[str, str]]]) -> str:
    entries = ",".join(
        "{"
        + ",".join(
            json.dumps(v) for v in (body, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"])
        )
        + "}"
        for body, h in requests_
    )
    return (
        "\n".join(
            [
                "reqs = {" + entries + "}",
                "threads = 0",
                "setup = function(thread) thread:set('id', threads); threads = threads + 1 end",
                "counter = 0",
                "request = function() local n = counter * 2 + id; counter = counter + 1; "
                "local r = reqs[(n % #reqs) + 1]; "
                "return wrk.format('POST', nil, {['Content-Type']='application/json', ['webhook-id']=r[2], "
                "['webhook-timestamp']=r[3], ['webhook-signature']=r[4]}, r[1]) end",
                "done = function(summary, latency, requests) "
                "io.write(string.format('RESULT %d %d\\n', summary.requests, summary.duration)) end",
            ]
        )
        + "\n"
    )


def throughput(url: str, engine: sa.Engine, requests_: list, seconds: int, connections: int) -> float:
    import re

    output = wrk(f"{url}/api/v1/webhooks/vnpost", _lua(requests_), seconds, connections)
    match = re.search(r"RESULT (\d+) (\d+)", output)
    if not match:
        raise RuntimeError(f"wrk said: {output}")
    duration = int(match.group(2)) / 1e6
    with engine.connect() as connection:
        stored = connection.execute(sa.select(sa.func.count()).select_from(webhooks)).scalar_one()
    return stored / duration


def paced(port: int, path: str, requests_: list, rate: float, workers: int = 16) -> dict:
    """Send ``requests_`` at ``rate`` per second on a fixed schedule; latency from the scheduled time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def worker(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(k, len(requests_), workers):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body, headers = requests_[i]
            connection.request("POST", path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            with lock:
                latencies.append(time.perf_counter() - due)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "rate_per_s": round(rate, 1),
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "statuses": statuses,
    }


def run(
    amqp_uri: str, database_url: str, *, seconds: int = 10, shipments: int = 3000, connections: int = 16
) -> dict:
    engine = create_engine(database_url)
    with RunningPostal(amqp_uri, database_url) as service:
        consignments = _shipments(engine, shipments)
        load = signed_requests(consignments)
        base = baseline(database_url, load[: min(len(load), 5000)])
        rate = throughput(service.url, engine, load, seconds, connections)
        fresh = signed_requests(_shipments(engine, max(50, int(rate / 2 * seconds / len(STATUSES)) + 1)))
        count = min(len(fresh), int(rate / 2 * seconds))
        # the second process: this module's ``paced`` in a fresh interpreter
        script = (
            "import json,sys; from benchmarks.bench_postal import paced; "
            "a=json.load(sys.stdin); print(json.dumps(paced(a['port'], a['path'], a['requests'], a['rate'])))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            input=json.dumps(
                {
                    "port": service.port,
                    "path": "/api/v1/webhooks/vnpost",
                    "requests": fresh[:count],
                    "rate": rate / 2,
                }
            ),
            capture_output=True,
            text=True,
            check=True,
        )
        latency = json.loads(result.stdout.strip().splitlines()[-1])
    engine.dispose()
    return {
        "baseline_verify_insert_per_s": round(base),
        "webhooks_stored_per_s": round(rate),
        "ratio": round(rate / base, 3),
        "at_half_rate": latency,
    }
