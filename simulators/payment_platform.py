"""A national payment platform simulator: ``python -m simulators.payment_platform`` (``make run``).

It speaks the protocol of services/payment/platform.py (docs/payment.md): ``POST /api/v1/payments/init``
opens a transaction for a reference and answers its payment page; ``POST /api/v1/payments/query``
answers what became of it (``TrangThaiGD`` 1 paid, 3 pending, 4 failed) with the receipt's link;
``GET /receipts/<reference>`` is the receipt (biên lai) of a paid one. Every message's ``MaXacThuc``
is checked (a wrong one: ``MaLoi`` 07) and every answer signed, with ``--secret``. INIT and QUERY are
keyed on the reference: a repeated INIT answers the same page.

The citizen's side: ``GET /pay/<reference>`` shows the page; a test pays (or fails) with ``POST
/_control/pay {"reference": ..., "outcome": "paid" | "failed", "fault": ...}``, and the platform then
sends its confirmation (``NOTIFY``) to ``--callback-url``, with one of these faults:

* ``callback_lost`` — no confirmation is sent (the query knows the outcome);
* ``callback_twice`` — the confirmation is sent twice;
* ``callback_before_query`` — the confirmation is sent, but the next two queries still say pending;
* ``wrong_checksum`` — a confirmation with a wrong ``MaXacThuc`` is sent instead of the right one.

``POST /_control/faults {"faults": ["timeout@init", "5xx@query", ...]}`` queues faults of the next
calls: ``timeout`` (no answer for ``--hang-seconds``), ``5xx`` (HTTP 503). ``GET /_control/received``
lists the transactions and every call and confirmation with its answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from services.payment.domain import protocol
from shared import clock
from shared.auth import PAYMENT_DEVELOPMENT_SECRET
from simulators.serving import JsonApp, serve

log = logging.getLogger("payment-platform-simulator")
CALL_FAULTS = ("timeout", "5xx")
OPERATIONS = ("init", "query")
PAYMENT_FAULTS = ("callback_lost", "callback_twice", "callback_before_query", "wrong_checksum")
FAILED_CODE = "24"  # the citizen cancelled
CHECKSUM_ERROR = "07"


class Platform(JsonApp):
    """The simulated platform: a WSGI application over the transactions it holds."""

    def __init__(
        self, *, partner: str, secret: str, base_url: str, callback_url: str, hang_seconds: float
    ) -> None:
        self.partner, self.secret, self.base_url = partner, secret, base_url.rstrip("/")
        self.callback_url, self.hang_seconds = callback_url, hang_seconds
        self.lock = threading.Lock()
        self.transactions: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.confirmations: list[dict[str, Any]] = []
        self.faults: deque[str] = deque()

    def route(self, request: Request) -> tuple[int, Any]:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/health/live":
            return 200, {"status": "up"}
        if request.method == "POST" and path in ("/api/v1/payments/init", "/api/v1/payments/query"):
            return self.call(request, path.rsplit("/", 1)[1])
        if request.method == "GET" and path.startswith("/pay/"):
            return self.page(path.removeprefix("/pay/"))
        if request.method == "GET" and path.startswith("/receipts/"):
            return self.receipt(path.removeprefix("/receipts/"))
        if request.method == "POST" and path == "/_control/pay":
            return self.pay(json.loads(request.get_data() or b"{}"))
        if request.method == "POST" and path == "/_control/faults":
            names = json.loads(request.get_data())["faults"]
            unknown = [
                n
                for n in names
                if n.partition("@")[0] not in CALL_FAULTS or n.partition("@")[2] not in ("", *OPERATIONS)
            ]
            if unknown:
                return 422, {"error": f"unknown faults {unknown}; known: {list(CALL_FAULTS)} (@init/@query)"}
            with self.lock:
                self.faults.extend(names)
            return 200, {"queued": len(self.faults)}
        if request.method == "GET" and path == "/_control/received":
            with self.lock:
                return 200, {
                    "transactions": self.transactions,
                    "calls": self.calls,
                    "confirmations": self.confirmations,
                    "faults_pending": list(self.faults),
                }
        return 404, {"error": f"no route {request.method} {path}"}

    # --- the partner's calls -------------------------------------------------------------------------

    def _fault_for(self, operation: str) -> str | None:
        with self.lock:
            for fault in list(self.faults):
                name, _, only = fault.partition("@")
                if not only or only == operation:
                    self.faults.remove(fault)
                    return name
        return None

    def call(self, request: Request, operation: str) -> tuple[int, dict[str, Any]]:
        fault = self._fault_for(operation)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            body = None
        if fault == "timeout":
            time.sleep(self.hang_seconds)
            status, answer = 504, {"error": "Gateway Timeout"}
        elif fault == "5xx":
            status, answer = 503, {"error": "Service Unavailable"}
        elif not isinstance(body, dict):
            status, answer = 400, {"error": "not JSON"}
        else:
            status, answer = 200, self.init(body) if operation == "init" else self.query(body)
        with self.lock:
            self.calls.append(
                {"operation": operation, "body": body, "fault": fault, "status": status, "answer": answer}
            )
        return status, answer

    def _refusal(self, code: str, text: str, reference: Any, order: tuple[str, ...]) -> dict[str, Any]:
        return protocol.signed({"MaLoi": code, "MoTaLoi": text, "MaThamChieu": reference}, order, self.secret)

    def init(self, body: dict[str, Any]) -> dict[str, Any]:
        order, reference = protocol.INIT_ANSWER_FIELDS, body.get("MaThamChieu")
        if not protocol.verified(body, protocol.INIT_FIELDS, self.secret):
            return self._refusal(CHECKSUM_ERROR, "Sai mã xác thực", reference, order)
        if body.get("MaDoiTac") != self.partner or body.get("LoaiBanTin") != protocol.INIT:
            return self._refusal("02", "Đối tác không hợp lệ", reference, order)
        try:
            protocol.parse_timestamp(str(body.get("ThoiGianGD")))
            amount = int(body["SoTien"])
        except (KeyError, ValueError):
            return self._refusal("03", "Dữ liệu không hợp lệ", reference, order)
        with self.lock:
            held = self.transactions.setdefault(
                reference,
                {
                    "reference": reference,
                    "amount": amount,
                    "state": protocol.PENDING,
                    "transaction": None,
                    "unaware_queries": 0,
                    "receipt_information": body.get("ThongTinBienLai"),
                    "init_time": body.get("ThoiGianGD"),
                },
            )
        page = f"{self.base_url}/pay/{held['reference']}"
        return protocol.signed(
            {"MaLoi": protocol.SUCCESS, "MaThamChieu": reference, "UrlThanhToan": page}, order, self.secret
        )

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        order, reference = protocol.QUERY_ANSWER_FIELDS, body.get("MaThamChieu")
        if not protocol.verified(body, protocol.QUERY_FIELDS, self.secret):
            return self._refusal(CHECKSUM_ERROR, "Sai mã xác thực", reference, order)
        with self.lock:
            held = self.transactions.get(reference)
            if held is None:
                return self._refusal("01", "Không tìm thấy giao dịch", reference, order)
            state = held["state"]
            if held["unaware_queries"] > 0:
                held["unaware_queries"] -= 1
                state = protocol.PENDING
            answer = {
                "MaLoi": protocol.SUCCESS,
                "MaThamChieu": reference,
                "MaGiaoDich": held["transaction"] or "",
                "SoTien": held["amount"],
                "TrangThaiGD": state,
                "DuongDanBienLai": f"{self.base_url}/receipts/{reference}" if state == protocol.PAID else "",
            }
        return protocol.signed(answer, order, self.secret)

    def receipt(self, reference: str) -> tuple[int, Any]:
        with self.lock:
            held = self.transactions.get(reference)
        if held is None or held["state"] != protocol.PAID:
            return 404, {"error": "no receipt"}
        document = {
            "SoBienLai": f"BL{reference[-8:]}",
            "MaThamChieu": reference,
            "MaGiaoDich": held["transaction"],
            "SoTien": held["amount"],
            "ThongTinBienLai": held["receipt_information"],
        }
        return 200, document

    # --- the citizen's side --------------------------------------------------------------------------

    def page(self, reference: str) -> tuple[int, Any]:
        with self.lock:
            held = self.transactions.get(reference)
        if held is None:
            return 404, {"error": "no such transaction"}
        text = (
            "<!doctype html><title>Nền tảng thanh toán</title>"
            f"<p>Thanh toán {held['amount']} đồng ({reference})</p>"
        )
        return 200, Response(text, content_type="text/html; charset=utf-8")

    def pay(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reference, outcome, fault = body.get("reference"), body.get("outcome", "paid"), body.get("fault")
        if outcome not in ("paid", "failed") or fault not in (None, *PAYMENT_FAULTS):
            return 422, {"error": f"outcome paid|failed, fault one of {PAYMENT_FAULTS}"}
        with self.lock:
            held = self.transactions.get(reference)
            if held is None:
                return 404, {"error": "no such transaction"}
            held["state"] = protocol.PAID if outcome == "paid" else protocol.FAILED
            held["transaction"] = f"GD{uuid.uuid4().hex[:12].upper()}"
            if fault == "callback_before_query":
                held["unaware_queries"] = 2
            amount, transaction = held["amount"], held["transaction"]
        confirmation = {
            "LoaiBanTin": protocol.CONFIRMATION,
            "PhienBan": protocol.VERSION,
            "MaDoiTac": self.partner,
            "MaThamChieu": reference,
            "MaGiaoDich": transaction,
            "SoTien": amount,
            "MaLoi": protocol.SUCCESS if outcome == "paid" else FAILED_CODE,
            "ThoiGianGD": protocol.timestamp(clock.now()),
        }
        signed = protocol.signed(confirmation, protocol.CONFIRMATION_FIELDS, self.secret)
        if fault == "wrong_checksum":
            signed["MaXacThuc"] = protocol.checksum(
                confirmation, protocol.CONFIRMATION_FIELDS, "not-the-secret"
            )
        sends = {"callback_lost": 0, "callback_twice": 2}.get(fault, 1)
        threading.Thread(target=self._send, args=(signed, sends), daemon=True).start()
        return 200, {"reference": reference, "state": outcome, "confirmations": sends}

    def _send(self, confirmation: dict[str, Any], times: int) -> None:
        for _ in range(times):
            try:
                response = requests.post(self.callback_url, json=confirmation, timeout=10)
                status, answer = response.status_code, response.text[:500]
            except requests.RequestException as exc:
                status, answer = 0, f"{type(exc).__name__}"
            with self.lock:
                self.confirmations.append({"body": confirmation, "status": status, "answer": answer})


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description="Run the national payment platform simulator.")
    parser.add_argument("--address", default=env.get("PAYMENT_SIMULATOR_ADDRESS", "127.0.0.1:8016"))
    parser.add_argument("--partner", default=env.get("PAYMENT_PARTNER_CODE", "MOTCUA"))
    parser.add_argument("--secret", default=env.get("PAYMENT_PARTNER_SECRET") or PAYMENT_DEVELOPMENT_SECRET)
    parser.add_argument(
        "--callback-url",
        default=env.get("PAYMENT_CALLBACK_URL", "http://127.0.0.1:8006/api/v1/platform/confirmations"),
    )
    parser.add_argument(
        "--hang-seconds", type=float, default=float(env.get("PAYMENT_SIMULATOR_HANG_SECONDS", "10"))
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [payment-platform] %(message)s")
    platform = Platform(
        partner=args.partner,
        secret=args.secret,
        base_url=f"http://{args.address}",
        callback_url=args.callback_url,
        hang_seconds=args.hang_seconds,
    )
    return serve(platform, args.address, log, "payment platform simulator")


if __name__ == "__main__":
    raise SystemExit(main())
