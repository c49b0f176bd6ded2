"""A neighbour a test can take down, slow down and bring back on the same port: a tiny HTTP server
answering every request with one scripted JSON answer, recording what it was sent."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import free_port


class StubNeighbour:
    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.status, self.body = status, body if body is not None else {}
        self.delay = 0.0
        self.received: list[dict[str, Any]] = []  # method, path, headers, body of every request
        self.lock = threading.Lock()
        self.server = None
        self.up()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.received.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": request.get_data(as_text=True),
                }
            )
            status, body, delay = self.status, self.body, self.delay
        if delay:
            time.sleep(delay)
        return Response(json.dumps(body), status=status, content_type="application/json")(
            environ, start_response
        )

    def up(self) -> None:
        """Listen (again) on the same port."""
        self.server = make_server("127.0.0.1", self.port, self, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: a connection is refused, as when the neighbour's process is gone."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    close = down
