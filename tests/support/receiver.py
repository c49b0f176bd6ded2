"""A webhook subscriber for the tests: records what it is sent, and answers as told (an outage of n
requests with a status and Retry-After, slowness, requests held until released, 410 Gone, 401 to a
request ``authorize`` refuses)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import free_port


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[dict] = []  # every request, answered or not: headers, body, status
        self.answers: deque[tuple[int, dict]] = deque()  # the next answers, then 204
        self.always: tuple[int, dict] | None = None
        self.delay = 0.0
        # While set, each request waits for it to be released (at most ``hold_seconds``) before its answer.
        self.hold: threading.Event | None = None
        self.hold_seconds = 30.0
        self.arrived: list[dict] = []  # every request's event as it arrived, before any wait or answer
        self.authorize: Callable[[str | None], bool] | None = None  # the Authorization header -> allowed?
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", self.port, self, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, count: int, status: int = 503, **headers: str) -> None:
        with self.lock:
            self.answers.extend([(status, headers)] * count)

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data(as_text=True)
        try:
            arrived = json.loads(body or "null")  # a webhook's event
        except ValueError:
            arrived = body  # a form or any other body, as it came (the lookup page's payment start)
        with self.lock:
            self.arrived.append(arrived)
        hold = self.hold
        if hold is not None:
            hold.wait(self.hold_seconds)
        if self.delay:
            time.sleep(self.delay)
        refused = self.authorize is not None and not self.authorize(request.headers.get("Authorization"))
        with self.lock:
            if refused:
                status, headers = 401, {}
            else:
                status, headers = self.always or (self.answers.popleft() if self.answers else (204, {}))
            self.received.append(
                {"headers": dict(request.headers), "body": request.get_data(as_text=True), "status": status}
            )
        return Response(status=status, headers=headers)(environ, start_response)

    def delivered(self) -> list[dict]:
        """The requests answered 2xx, their bodies parsed, in the order they came."""
        with self.lock:
            return [
                {"headers": r["headers"], "event": json.loads(r["body"]), "body": r["body"]}
                for r in self.received
                if 200 <= r["status"] < 300
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
