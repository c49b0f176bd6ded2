"""A postal operator simulator: ``python -m simulators.postal_operator`` (started by ``make run``).

It speaks the operator API the postal service's :class:`~services.postal.operator.HttpOperator`
calls (``POST /orders`` with ``Idempotency-Key``, ``POST /orders/{c}/cancel``,
``POST /orders/{c}/handover``, ``GET /orders/{c}``, ``POST /quotes``) and calls back with
Standard-Webhooks-signed tracking reports after configurable delays, retrying a report until it is
acknowledged, as a real operator does. A pickup starts at once (the worker goes to the applicant's
door); a delivery starts only once its worker took the sealed result at the desk on a co-signed
hand-over record (``POST /orders/{c}/handover``), never when the order is placed.

It injects the faults a real operator shows, per order, chosen by a scenario (a comma-separated
list of faults; ``SIMULATOR_SCENARIO`` for every order, or queued for the next orders with
``POST /_control/scenarios {"scenarios": ["duplicate,out_of_order", ...]}``):

* ``duplicate`` — every report is delivered twice with the same ``webhook-id``;
* ``out_of_order`` — the second and third reports are sent in swapped order (true timestamps kept);
* ``failed_delivery`` — one failed attempt, then delivered;
* ``returned_to_sender`` — two failed attempts, then the result goes back to the desk;
* ``late_after_delivery`` — a ``delivery_failed`` stamped after the delivery arrives after it;
* ``unknown_status`` — a status name never sent before (``held_at_hub``) in the middle;
* ``proxy`` — an authorised proxy signs for the delivery;
* ``lost`` — the package is lost in transit (reported as ``lost``, with the compensation paid).

``POST /_control/outage {"orders": n, "cancels": m}`` answers the next n order calls and m cancel
calls with 503 (the adapter's retries, the watch's retry of an owed cancel); ``GET /_control/log``
lists every webhook attempt and its answer.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook
from werkzeug.wrappers import Request

from shared import clock
from simulators.serving import JsonApp, serve

log = logging.getLogger("postal-operator-simulator")
DEFAULT_SECRET = "whsec_bW90Y3VhLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0"
FAULTS = (
    "lost",
    "duplicate",
    "out_of_order",
    "failed_delivery",
    "returned_to_sender",
    "late_after_delivery",
    "unknown_status",
    "proxy",
)
UNKNOWN_STATUS = "held_at_hub"
COMPENSATION_VND = 500000  # what the simulated operator pays for a lost package


@dataclass(order=True)
class Scheduled:
    due: float
    seq: int
    webhook_id: str = field(compare=False)
    report: dict[str, Any] = field(compare=False)
    attempt: int = field(default=1, compare=False)


def script(direction: str, faults: set[str]) -> list[str]:
    """The statuses an order goes through under the given faults."""
    if direction == "pickup":
        steps = ["picked_up", "in_transit", "delivered"]
    elif "returned_to_sender" in faults:
        steps = [
            "picked_up",
            "in_transit",
            "out_for_delivery",
            "delivery_failed",
            "out_for_delivery",
            "delivery_failed",
            "returned_to_sender",
        ]
    elif "failed_delivery" in faults:
        steps = [
            "picked_up",
            "in_transit",
            "out_for_delivery",
            "delivery_failed",
            "out_for_delivery",
            "delivered",
        ]
    else:
        steps = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
    if "lost" in faults:
        steps = steps[:2] + ["lost"]
    if "unknown_status" in faults:
        steps.insert(2, UNKNOWN_STATUS)
    return steps


class Simulator(JsonApp):
    def __init__(
        self,
        *,
        webhook_url: str,
        secret: str,
        step_seconds: float,
        promised_hours: float,
        scenario: str = "",
        attempts: int = 8,
    ) -> None:
        self.webhook_url = webhook_url
        self.signer = Webhook(secret)
        self.step_seconds = step_seconds
        self.promised = timedelta(hours=promised_hours)
        self.default_scenario = scenario
        self.attempts = attempts
        self.lock = threading.Condition()
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, dict[str, Any]] = {}
        self.scenarios: deque[str] = deque()
        self.outage = 0
        self.cancel_outage = 0
        self.queue: list[Scheduled] = []
        self.seq = itertools.count()
        self.log: list[dict[str, Any]] = []
        self.running = True
        self.session = requests.Session()

    # --- the operator API ----------------------------------------------------------------------

    def create_order(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.outage > 0:
                self.outage -= 1
                return 503, {"error": "temporarily unavailable"}
            if key in self.by_key:
                return 200, self.by_key[key]
            missing = [f for f in ("reference", "direction", "contact", "packages") if f not in body]
            if missing:
                return 422, {"error": f"missing: {', '.join(missing)}"}
            scenario = self.scenarios.popleft() if self.scenarios else self.default_scenario
            faults = {f.strip() for f in scenario.split(",") if f.strip()}
            consignment = f"E{'B' if body['direction'] == 'pickup' else 'D'}{random.randrange(10**9):09d}VN"
            now = clock.now()
            answer = {
                "consignment": consignment,
                "fee_vnd": 22000 + 5000 * (int(body["packages"]) - 1),
                "packages": int(body["packages"]),
                "promised_at": (now + self.promised).isoformat(),
            }
            self.by_key[key] = answer
            self.orders[consignment] = {
                "order": body,
                "faults": sorted(faults),
                "events": [],
                "cancelled": False,
                "handed_over": False,
            }
            if body["direction"] == "pickup":  # a delivery waits for the result's hand-over at the desk
                self._schedule(consignment, body["direction"], faults, time.time())
            return 201, answer

    def hand_over(self, consignment: str) -> tuple[int, dict[str, Any]]:
        """The worker took the sealed result on a co-signed record: the delivery starts (once)."""
        with self.lock:
            order = self.orders.get(consignment)
            if order is None:
                return 404, {"error": "no such consignment"}
            if order["order"]["direction"] != "delivery":
                return 409, {"error": "only a delivery is handed over at the desk"}
            if order["cancelled"]:
                return 409, {"error": "the order was cancelled"}
            if not order["handed_over"]:
                order["handed_over"] = True
                self._schedule(consignment, "delivery", set(order["faults"]), time.time())
            return 200, {"consignment": consignment, "handed_over": True}

    def _schedule(self, consignment: str, direction: str, faults: set[str], start: float) -> None:
        steps = script(direction, faults)
        reports = []
        for index, status in enumerate(steps, start=1):
            at = start + index * self.step_seconds
            report: dict[str, Any] = {
                "type": "shipment.tracking",
                "consignment": consignment,
                "status": status,
                "occurred_at": clock.at(at).isoformat(),
            }
            if status == "lost":
                report["compensation"] = {"amount_vnd": COMPENSATION_VND, "cause": "lost_in_transit"}
            if status == "delivered" and direction == "delivery":
                report["recipient"] = (
                    {"kind": "proxy", "name": "Trần Thị Bình"} if "proxy" in faults else {"kind": "applicant"}
                )
            reports.append([at, report])
        if "out_of_order" in faults and len(reports) >= 3:
            reports[1][0], reports[2][0] = reports[2][0], reports[1][0]
        if "late_after_delivery" in faults and steps[-1] == "delivered":
            last = reports[-1][0]
            late = {
                "type": "shipment.tracking",
                "consignment": consignment,
                "status": "delivery_failed",
                "occurred_at": clock.at(last + self.step_seconds).isoformat(),
            }
            reports.append([last + 2 * self.step_seconds, late])
        for due, report in reports:
            webhook_id = f"msg_{uuid.uuid4().hex}"
            copies = 2 if "duplicate" in faults else 1
            for copy in range(copies):
                heapq.heappush(
                    self.queue,
                    Scheduled(due + copy * self.step_seconds / 4, next(self.seq), webhook_id, report),
                )
        self.lock.notify_all()

    def cancel(self, consignment: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.cancel_outage > 0:
                self.cancel_outage -= 1
                return 503, {"error": "temporarily unavailable"}
            order = self.orders.get(consignment)
            if order is None:
                return 404, {"error": "no such consignment"}
            delivered = any(e["status"] in ("delivered", "returned_to_sender") for e in order["events"])
            if delivered:
                return 409, {"error": "already delivered"}
            if order["cancelled"]:
                return 200, {"consignment": consignment, "status": "cancelled"}
            order["cancelled"] = True
            self.queue = [s for s in self.queue if s.report["consignment"] != consignment]
            heapq.heapify(self.queue)
            report = {
                "type": "shipment.tracking",
                "consignment": consignment,
                "status": "cancelled",
                "occurred_at": clock.now().isoformat(),
            }
            heapq.heappush(
                self.queue, Scheduled(time.time(), next(self.seq), f"msg_{uuid.uuid4().hex}", report)
            )
            self.lock.notify_all()
            return 200, {"consignment": consignment, "status": "cancelled"}

    def track(self, consignment: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            order = self.orders.get(consignment)
            if order is None:
                return 404, {"error": "no such consignment"}
            return 200, {
                "consignment": consignment,
                "events": list(order["events"]),
                "faults": order["faults"],
            }

    # --- the webhook sender ------------------------------------------------------------------------

    def run_sender(self) -> None:
        while self.running:
            with self.lock:
                while self.running and (not self.queue or self.queue[0].due > time.time()):
                    timeout = None if not self.queue else max(0.0, self.queue[0].due - time.time())
                    self.lock.wait(timeout if timeout is not None else 0.5)
                if not self.running:
                    return
                item = heapq.heappop(self.queue)
            self._send(item)

    def _send(self, item: Scheduled) -> None:
        body = json.dumps(item.report, ensure_ascii=False)
        moment = datetime.now(UTC)
        headers = {
            "webhook-id": item.webhook_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": self.signer.sign(item.webhook_id, moment, body),
            "content-type": "application/json",
        }
        try:
            status = self.session.post(
                self.webhook_url, data=body.encode(), headers=headers, timeout=5
            ).status_code
        except requests.RequestException as exc:
            status = f"error: {type(exc).__name__}"
        with self.lock:
            self.log.append(
                {"webhook_id": item.webhook_id, "attempt": item.attempt, "answer": status, **item.report}
            )
            order = self.orders.get(item.report["consignment"])
            if isinstance(status, int) and 200 <= status < 300:
                if order is not None and item.webhook_id not in {e["webhook_id"] for e in order["events"]}:
                    order["events"].append({"webhook_id": item.webhook_id, **item.report})
            elif item.attempt < self.attempts:
                # as real senders do: retry with backoff, same webhook-id, a fresh timestamp and signature
                delay = min(2 ** (item.attempt - 1) * max(self.step_seconds, 0.2), 60)
                heapq.heappush(
                    self.queue,
                    Scheduled(
                        time.time() + delay, next(self.seq), item.webhook_id, item.report, item.attempt + 1
                    ),
                )
                self.lock.notify_all()
            else:
                log.error("gave up on webhook %s (%s): %s", item.webhook_id, item.report["status"], status)

    # --- HTTP ----------------------------------------------------------------------------------------

    def route(self, request: Request) -> tuple[int, dict[str, Any]]:
        path, method = request.path.rstrip("/"), request.method
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/health/live":
            return 200, {"status": "up"}
        if method == "POST" and path == "/orders":
            key = request.headers.get("Idempotency-Key")
            if not key:
                return 400, {"error": "Idempotency-Key is required"}
            return self.create_order(key, json.loads(request.get_data()))
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "cancel":
            return self.cancel(parts[1])
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "handover":
            return self.hand_over(parts[1])
        if method == "GET" and len(parts) == 2 and parts[0] == "orders":
            return self.track(parts[1])
        if method == "POST" and path == "/quotes":
            body = json.loads(request.get_data())
            return 200, {"fee_vnd": 22000 + 5000 * (int(body.get("packages", 1)) - 1)}
        if method == "POST" and path == "/_control/scenarios":
            names = json.loads(request.get_data())["scenarios"]
            for name in names:
                unknown = {f.strip() for f in name.split(",") if f.strip()} - set(FAULTS) - {"happy"}
                if unknown:
                    return 422, {"error": f"unknown faults {sorted(unknown)}; known: {list(FAULTS)}"}
            with self.lock:
                self.scenarios.extend(names)
            return 200, {"queued": len(self.scenarios)}
        if method == "POST" and path == "/_control/outage":
            body = json.loads(request.get_data())
            with self.lock:
                self.outage = int(body.get("orders", self.outage))
                self.cancel_outage = int(body.get("cancels", self.cancel_outage))
            return 200, {"outage": self.outage, "cancels": self.cancel_outage}
        if method == "GET" and path == "/_control/log":
            with self.lock:
                return 200, {"attempts": list(self.log), "pending": len(self.queue)}
        return 404, {"error": f"no route {method} {path}"}


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description="Run the postal operator simulator.")
    parser.add_argument("--address", default=env.get("SIMULATOR_ADDRESS", "127.0.0.1:8011"))
    parser.add_argument(
        "--webhook-url",
        default=env.get("SIMULATOR_WEBHOOK_URL", "http://127.0.0.1:8001/api/v1/webhooks/vnpost"),
    )
    parser.add_argument("--secret", default=env.get("SIMULATOR_WEBHOOK_SECRET", DEFAULT_SECRET))
    parser.add_argument("--step-seconds", type=float, default=float(env.get("SIMULATOR_STEP_SECONDS", "3")))
    parser.add_argument(
        "--promised-hours", type=float, default=float(env.get("SIMULATOR_PROMISED_HOURS", "48"))
    )
    parser.add_argument("--scenario", default=env.get("SIMULATOR_SCENARIO", ""))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [postal-operator] %(message)s")
    simulator = Simulator(
        webhook_url=args.webhook_url,
        secret=args.secret,
        step_seconds=args.step_seconds,
        promised_hours=args.promised_hours,
        scenario=args.scenario,
    )
    sender = threading.Thread(target=simulator.run_sender, name="webhook-sender", daemon=True)
    sender.start()

    def stop_sender() -> None:
        simulator.running = False
        with simulator.lock:
            simulator.lock.notify_all()

    banner = f"postal operator simulator (webhooks to {args.webhook_url})"
    return serve(simulator, args.address, log, banner, on_stop=stop_sender)


if __name__ == "__main__":
    raise SystemExit(main())
