"""Sending one event to a subscriber's callback: Standard Webhooks signatures, no redirects, bounded
answers, and the server-side request forgery guard (the callback's addresses, checked at each send)."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from standardwebhooks.webhooks import Webhook

from services.outbound.domain.subscription import refused_address


@dataclass(frozen=True)
class Answer:
    """What the callback answered: its status (None when there was none), ``Retry-After`` in seconds,
    the error when the send failed, and how long it took."""

    status: int | None
    retry_after: float | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return self.error or f"HTTP {self.status}"


class Refused(ValueError):
    """The callback URL is not allowed (scheme, or an address the guard refuses)."""


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


class WebhookSender:
    def __init__(
        self,
        *,
        allowed: tuple[ipaddress._BaseNetwork, ...],
        timeout: float,
        max_bytes: int,
        sender: str = "motcua",
    ) -> None:
        self.allowed, self.timeout, self.max_bytes = allowed, timeout, max_bytes
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy from the environment: the guard checks where it goes
        self.user_agent = f"{sender}-webhooks/1"

    def check(self, url: str) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host resolves to a refused address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(f"{url!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise Refused("credentials in the URL are not allowed; use the auth header")
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except OSError as exc:
            raise Refused(f"{parts.hostname} does not resolve: {exc}") from exc
        for info in infos:
            reason = refused_address(str(info[4][0]).split("%")[0], self.allowed)
            if reason:
                raise Refused(f"{parts.hostname}: {reason}")

    def send(
        self, url: str, *, message_id: str, body: str, secrets: list[str], auth_header: str | None
    ) -> Answer:
        started = time.monotonic()
        now = datetime.now(UTC)  # the receiver checks webhook-timestamp against its real clock
        try:
            self.check(url)
        except Refused as exc:
            return Answer(None, None, f"refused: {exc}", 0.0)
        signatures = " ".join(Webhook(secret).sign(message_id, now, body) for secret in secrets)
        headers = {
            "content-type": "application/cloudevents+json",
            "user-agent": self.user_agent,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        if auth_header:
            headers["authorization"] = auth_header
        try:
            with self.http.post(
                url,
                data=body.encode(),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                # Read at most max_bytes: a subscriber's answer is not ours to store.
                for _chunk in response.iter_content(8192):
                    if response.raw.tell() >= self.max_bytes or time.monotonic() - started > self.timeout:
                        break
                retry_after = _retry_after(response.headers.get("Retry-After"), now)
                return Answer(response.status_code, retry_after, None, time.monotonic() - started)
        except requests.RequestException as exc:
            return Answer(None, None, f"{type(exc).__name__}: {exc}"[:500], time.monotonic() - started)
