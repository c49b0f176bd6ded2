"""An OAuth2 token endpoint for the tests, run as its own process: the client credentials grant
(RFC 6749 §4.4, client_secret_basic), token introspection (RFC 7662) for the test's subscriber, and
controls to revoke every token and count those issued.

    python -m tests.support.token_endpoint PORT CLIENT_ID CLIENT_SECRET [LIFETIME_SECONDS]
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import threading
import time
from urllib.parse import unquote

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class TokenApp:
    def __init__(self, client_id: str, client_secret: str, lifetime: int) -> None:
        self.client_id, self.client_secret, self.lifetime = client_id, client_secret, lifetime
        self.active: dict[str, float] = {}  # token -> expiry (monotonic)
        self.issued = 0
        self.lock = threading.Lock()

    def _client(self, request: Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return unquote(client_id), unquote(secret)

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            response = self._answer(request)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.path == "/token" and request.method == "POST":
            if self._client(request) != (self.client_id, self.client_secret):
                return _json({"error": "invalid_client"}, 401)
            if request.form.get("grant_type") != "client_credentials":
                return _json({"error": "unsupported_grant_type"}, 400)
            token = secrets.token_urlsafe(24)
            self.active[token] = time.monotonic() + self.lifetime
            self.issued += 1
            return _json({"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime})
        if request.path == "/introspect" and request.method == "POST":
            expiry = self.active.get(request.form.get("token", ""))
            return _json({"active": expiry is not None and expiry > time.monotonic()})
        if request.path == "/_control/revoke" and request.method == "POST":
            self.active.clear()
            return _json({"revoked": True})
        if request.path == "/_control/issued":
            return _json({"issued": self.issued})
        return _json({"error": "not found"}, 404)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class TokenEndpoint:
    """The process, from a test: ``url`` (the token endpoint), ``accepts(authorization header)``,
    ``revoke()``, ``issued()``."""

    def __init__(self, port: int, client_id: str, client_secret: str, lifetime: int = 3600) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/token"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.token_endpoint",
                str(port),
                client_id,
                client_secret,
                str(lifetime),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/_control/issued", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the test token endpoint did not come up on {self.base}")

    def accepts(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        answer = requests.post(f"{self.base}/introspect", data={"token": authorization[7:]}, timeout=5)
        return answer.json()["active"] is True

    def revoke(self) -> None:
        requests.post(f"{self.base}/_control/revoke", timeout=5).raise_for_status()

    def issued(self) -> int:
        return requests.get(f"{self.base}/_control/issued", timeout=5).json()["issued"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


if __name__ == "__main__":
    port, client_id, client_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    lifetime = int(sys.argv[4]) if len(sys.argv) > 4 else 3600
    make_server(
        "127.0.0.1", port, TokenApp(client_id, client_secret, lifetime), threaded=True
    ).serve_forever()
