"""The messaging gateways as simulators: ``python -m simulators.messaging --gateway sms|zalo|email``
(``make run``: SMS on 8013, Zalo on 8014, e-mail on 8015), one process each.

Each speaks the API the notifier's gateway (services/notifier/gateways.py) calls, keeps every message it
accepted (once per request id: a repeated id answers the first answer again and is not kept twice, as a
real gateway's client reference does) and logs it, and keeps every call with its answer:

* SMS: ``POST /sms/send {brandname, phone, text, unicode, request_id}`` -> ``{code: 0, message_id}``;
  an SMS longer than one segment (160 unaccented, 201 Unicode) is refused ``{code: 5}``.
* Zalo OA: ``POST /oa/message {phone, text, tracking_id}`` with an ``Access-Token`` header ->
  ``{error: 0, data: {message_id}}``; a phone in ``--not-followers`` answers ``{error: -213}`` (the
  citizen does not follow the Official Account).
* E-mail: ``POST /mail/send {from, to, subject, text, message_id}`` -> 202 ``{id}``.

Faults, each on the next send call, queued with ``POST /_control/faults {"faults": ["5xx", ...]}``:
``5xx`` (503, nothing kept), ``timeout`` (no answer for ``--hang-seconds``, nothing kept), ``rejected``
(the number or address refused for good: SMS ``{code: 3}``, Zalo ``{error: -201}``, e-mail 422),
``not_follower`` (Zalo ``{error: -213}``). ``GET /_control/received`` lists the messages and the calls;
``POST /_control/reset`` forgets everything; ``POST /_control/not-followers {"phones": [...]}`` sets them.
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

from werkzeug.wrappers import Request

from shared import clock
from simulators.serving import JsonApp, serve

log = logging.getLogger("messaging-simulator")
GATEWAYS = {"sms": ("/sms/send", 8013), "zalo": ("/oa/message", 8014), "email": ("/mail/send", 8015)}
FAULTS = ("5xx", "timeout", "rejected", "not_follower")
NOT_FOLLOWER = -213
SMS_LIMITS = {False: 160, True: 201}


class Gateway(JsonApp):
    """One simulated gateway: a WSGI application over what it received."""

    def __init__(self, kind: str, *, hang_seconds: float, token: str, not_followers: set[str]) -> None:
        self.kind, self.path = kind, GATEWAYS[kind][0]
        self.hang_seconds, self.token = hang_seconds, token
        self.lock = threading.Lock()
        self.not_followers = set(not_followers)
        self.reset()

    def reset(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}  # request id -> the first answer
        self.calls: list[dict[str, Any]] = []
        self.faults: deque[str] = deque()

    def route(self, request: Request) -> tuple[int, dict[str, Any]]:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/health/live":
            return 200, {"status": "up", "gateway": self.kind}
        if request.method == "POST" and path == self.path:
            return self.send(json.loads(request.get_data() or b"{}"), request)
        if request.method == "POST" and path == "/_control/faults":
            names = json.loads(request.get_data())["faults"]
            if unknown := [n for n in names if n not in FAULTS]:
                return 422, {"error": f"unknown faults {unknown}; known: {list(FAULTS)}"}
            with self.lock:
                self.faults.extend(names)
                return 200, {"queued": len(self.faults)}
        if request.method == "POST" and path == "/_control/not-followers":
            with self.lock:
                self.not_followers = set(json.loads(request.get_data())["phones"])
            return 200, {"not_followers": sorted(self.not_followers)}
        if request.method == "GET" and path == "/_control/received":
            with self.lock:
                return 200, {
                    "messages": self.messages,
                    "calls": self.calls,
                    "faults_pending": list(self.faults),
                }
        if request.method == "POST" and path == "/_control/reset":
            with self.lock:
                self.reset()
            return 200, {"reset": True}
        return 404, {"error": f"no route {request.method} {path}"}

    def send(self, body: dict[str, Any], request: Request) -> tuple[int, dict[str, Any]]:
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
        status, answer = self._answer(body, request, fault)
        with self.lock:
            self.calls.append({"body": body, "fault": fault, "status": status, "answer": answer})
        return status, answer

    def _request_id(self, body: dict[str, Any]) -> str:
        return str(
            body.get({"sms": "request_id", "zalo": "tracking_id", "email": "message_id"}[self.kind]) or ""
        )

    def _answer(self, body, request, fault) -> tuple[int, dict[str, Any]]:
        if fault == "5xx":
            return 503, {"error": "Service Unavailable"}
        if fault == "timeout":
            time.sleep(self.hang_seconds)
            return 504, {"error": "Gateway Timeout"}
        request_id = self._request_id(body)
        with self.lock:
            if request_id and request_id in self.answers:
                return self.answers[request_id]
        if self.kind == "sms":
            status, answer = self._sms(body, fault)
        elif self.kind == "zalo":
            status, answer = self._zalo(body, request, fault)
        else:
            status, answer = self._email(body, fault)
        if status in (200, 202) and answer.get("code", answer.get("error", 0)) == 0:
            with self.lock:
                if request_id:
                    self.answers[request_id] = (status, answer)
                self.messages.append({**body, "accepted_at": clock.now().isoformat()})
            log.info("%s accepted %s: %s", self.kind, request_id, body.get("text"))
        return status, answer

    def _sms(self, body, fault) -> tuple[int, dict[str, Any]]:
        if fault == "rejected":
            return 200, {"code": 3, "message": "Số điện thoại bị từ chối (rejected number)"}
        if not str(body.get("phone") or "").lstrip("+").isdigit() or not body.get("brandname"):
            return 200, {"code": 2, "message": "thiếu brandname hoặc số điện thoại không hợp lệ"}
        text, unicode = str(body.get("text") or ""), bool(body.get("unicode"))
        if not unicode and not text.isascii():
            return 200, {"code": 4, "message": "nội dung có dấu nhưng unicode=false"}
        if len(text) > SMS_LIMITS[unicode]:
            return 200, {"code": 5, "message": f"quá {SMS_LIMITS[unicode]} ký tự"}
        return 200, {"code": 0, "message_id": uuid.uuid4().hex}

    def _zalo(self, body, request, fault) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Access-Token") != self.token:
            return 200, {"error": -124, "message": "access token không hợp lệ"}
        if fault == "rejected":
            return 200, {"error": -201, "message": "số điện thoại không hợp lệ (rejected)"}
        if fault == "not_follower" or body.get("phone") in self.not_followers:
            return 200, {"error": NOT_FOLLOWER, "message": "người dùng chưa quan tâm Official Account"}
        return 200, {"error": 0, "data": {"message_id": uuid.uuid4().hex}}

    def _email(self, body, fault) -> tuple[int, dict[str, Any]]:
        if fault == "rejected" or "@" not in str(body.get("to") or ""):
            return 422, {"error": "địa chỉ e-mail bị từ chối (rejected address)"}
        return 202, {"id": uuid.uuid4().hex}


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description="Run a messaging gateway simulator (SMS, Zalo OA, e-mail).")
    parser.add_argument("--gateway", choices=sorted(GATEWAYS), required=True)
    parser.add_argument("--address", help="host:port (default 127.0.0.1:8013 sms, 8014 zalo, 8015 email)")
    parser.add_argument("--hang-seconds", type=float, default=10.0)
    parser.add_argument("--token", default=env.get("ZALO_ACCESS_TOKEN") or "motcua-development-oa-token")
    parser.add_argument(
        "--not-followers", default="", help="phones that do not follow the OA (comma-separated)"
    )
    args = parser.parse_args(argv)
    address = args.address or f"127.0.0.1:{GATEWAYS[args.gateway][1]}"
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s [{args.gateway}-gateway] %(message)s"
    )
    gateway = Gateway(
        args.gateway,
        hang_seconds=args.hang_seconds,
        token=args.token,
        not_followers={p.strip() for p in args.not_followers.split(",") if p.strip()},
    )
    return serve(gateway, address, log, f"{args.gateway} gateway simulator")


if __name__ == "__main__":
    raise SystemExit(main())
