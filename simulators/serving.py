"""What every simulator shares: a JSON WSGI app and the serving loop of its process.

A simulator's ``route(request)`` answers ``(status, body)``: a dict or list is sent as JSON, a werkzeug
``Response`` as it is. A request the simulator cannot read (bad JSON, a missing field) is a 400 with the
reason, as the real parties answer, never a 500 with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class JsonApp:
    def route(self, request: Request) -> tuple[int, Any]:  # pragma: no cover - every simulator overrides it
        raise NotImplementedError

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            status, body = self.route(request)
        except (ValueError, KeyError, TypeError) as exc:
            status, body = 400, {"error": f"unreadable request: {exc}"}
        if not isinstance(body, Response):
            body = Response(
                json.dumps(body, ensure_ascii=False), status=status, content_type="application/json"
            )
        return body(environ, start_response)


def serve(
    app, address: str, log: logging.Logger, banner: str, on_stop: Callable[[], None] | None = None
) -> int:
    """Serve ``app`` on ``host:port``, threaded, until interrupted; ``on_stop`` runs before it closes."""
    host, _, port = address.rpartition(":")
    server = make_server(host, int(port), app, threaded=True)
    log.info("%s on http://%s", banner, address)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if on_stop is not None:
            on_stop()
        server.server_close()
    return 0
