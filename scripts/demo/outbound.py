"""The day as it leaves motcua: the national portal simulator's copy, and one commune's HTTP subscriber."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import Counter
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from scripts.demo.client import Api, DemoError, ServiceMissing, Tokens

TEST_EVENT = "vn.motcua.outbound.subscription_test"


class Receiver:
    """A subscriber's endpoint on loopback: records every POST and answers 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], str]] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.received.append(
                ({k.lower(): v for k, v in request.headers.items()}, request.get_data(as_text=True))
            )
        return Response(status=204)(environ, start_response)

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Outbound:
    """One commune's subscription to a local receiver, made before the day, read back after it."""

    def __init__(self, outbound_url: str, portal_url: str, tokens: Tokens, commune: str, timeout: float):
        self.api = Api("outbound", outbound_url, timeout)
        self.portal_url, self.commune = portal_url.rstrip("/"), commune
        self.token = tokens.get("subscriber", commune)
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.receiver = Receiver()
        self.subscription: str | None = None

    def subscribe(self) -> None:
        try:
            response = self.api.request(
                "POST",
                "/api/v1/subscriptions",
                token=self.token,
                role="subscriber",
                json={"callback_url": self.receiver.url, "unit": self.commune, "secret": self.secret},
                expect=(201, 422),
            )
        except ServiceMissing:
            self.receiver.close()
            raise
        if response.status_code == 422:
            self.receiver.close()
            raise DemoError(
                f"the outbound service refused the demo's subscriber at {self.receiver.url}: "
                f"{response.text.strip()[:300]}\n  (a loopback callback needs "
                "WEBHOOK_ALLOWED_NETWORKS=127.0.0.1/32, as `make run` sets it)"
            )
        self.subscription = response.json()["id"]

    def _portal(self) -> dict[str, Any]:
        try:
            return requests.get(f"{self.portal_url}/_control/received", timeout=10).json()
        except requests.RequestException as exc:
            raise ServiceMissing(
                f"national portal simulator not reachable at {self.portal_url}: {exc}"
            ) from exc

    def report(self, codes: set[str], wait: float) -> None:
        """Waits until neither the portal nor the subscriber gets more (at most ``wait`` s), then prints."""
        deadline, seen, still_since = time.monotonic() + wait, None, time.monotonic()
        while True:
            held = self._portal()
            now = (len(held["calls"]), self.receiver.count())
            if now != seen:
                seen, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.receiver.close()
        synced = {code: item for code, item in held["dossiers"].items() if code in codes}
        steps = sum(len(held["steps"].get(code, [])) for code in synced)
        last = Counter(int(item["TrangThaiHoSo"]) for item in synced.values())
        print(f"\nNational portal (simulator at {self.portal_url}): what it holds of the day")
        print(f"Portal dossiers synced: {len(synced)} of {len(codes)} · {steps} processing steps")
        print(
            "  last status per dossier (national code ×dossiers): "
            + (", ".join(f"{code} ×{n}" for code, n in sorted(last.items())) or "none")
        )
        verifier, events, forged = Webhook(self.secret), [], 0
        for headers, body in self.receiver.received:
            try:
                verifier.verify(body, headers)
            except WebhookVerificationError:
                forged += 1
                continue
            event = json.loads(body)
            if event.get("type") != TEST_EVENT:
                events.append(event)
        about = {e.get("subject") or (e.get("data") or {}).get("code") for e in events}
        print(f"\nSubscriber of commune {self.commune} (HTTP callback {self.receiver.url})")
        print(
            f"Subscriber events received: {len(events)} about {len(about)} dossiers · "
            f"signatures verified: {len(self.receiver.received) - forged} of {len(self.receiver.received)}"
            " (with the subscription's test event)"
        )
