"""Sending one event to a subscriber's callback: Standard Webhooks signatures, no redirects, bounded
answers, OAuth2 client credentials, and the server-side request forgery guard.

The guard resolves the callback's host once, checks every address it resolves to, and connects to the
checked address — never resolving again, so a name that answers a public address to the check and a
private one to the connection (DNS rebinding) reaches nothing it should not. The request keeps the name:
``Host``, TLS SNI and the certificate's check are the callback's host, not the address."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook

from services.outbound.domain.subscription import ClientCredentials, refused_address

# A token is renewed this long before the expiry its endpoint announced.
TOKEN_MARGIN_SECONDS = 30.0
# When the token endpoint announces no expiry: renewed on a 401, or after this long.
TOKEN_DEFAULT_SECONDS = 300.0


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
    """The URL is not allowed (scheme, or an address the guard refuses)."""


class TokenRefused(RuntimeError):
    """The token endpoint gave no access token (its error, or no answer)."""


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses (the system's resolver), each once, in its order."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))


@dataclass(frozen=True)
class Target:
    """A checked URL: the name it was given and the address the connection goes to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked address (``request.target``) while the URL, ``Host``, SNI and the
    certificate's hostname check keep the callback's name."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        target: Target | None = getattr(request, "target", None)
        if target is None:  # only the guard's requests go through this session
            raise Refused("a request that the guard did not check")
        host_params = {**host_params, "host": target.address}
        if target.scheme == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": target.host, "assert_hostname": target.host}
        return host_params, pool_kwargs


class WebhookSender:
    def __init__(
        self,
        *,
        allowed: tuple[ipaddress._BaseNetwork, ...],
        timeout: float,
        max_bytes: int,
        sender: str = "motcua",
        resolver: Callable[[str, int], list[str]] = resolve,
        verify: bool | str = True,
        connections: int = 10,
        hosts: int = 10,
    ) -> None:
        self.allowed, self.timeout, self.max_bytes = allowed, timeout, max_bytes
        self.resolver = resolver
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy from the environment: the guard checks where it goes
        self.http.verify = verify
        # Connections kept alive per checked address (up to one per sending green thread), for up to
        # ``hosts`` addresses at once: more subscribers' hosts than that would close each other's.
        adapter = _PinnedAdapter(pool_connections=hosts, pool_maxsize=connections)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.user_agent = f"{sender}-webhooks/1"
        self.tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.token_lock = threading.Lock()

    def check(self, url: str) -> Target:
        """The address to connect to: the host resolved once, every address checked; Refused when the
        scheme is not http(s), or the host resolves to an address the guard refuses."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(f"{url!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise Refused("credentials in the URL are not allowed; use the auth header")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolver(parts.hostname, port)
        except OSError as exc:
            raise Refused(f"{parts.hostname} does not resolve: {exc}") from exc
        if not addresses:
            raise Refused(f"{parts.hostname} does not resolve")
        for address in addresses:
            reason = refused_address(address, self.allowed)
            if reason:
                raise Refused(f"{parts.hostname}: {reason}")
        return Target(url, parts.scheme, parts.hostname, port, addresses[0])

    def _post(self, url: str, *, data: bytes, headers: dict[str, str], auth: Any = None) -> requests.Response:
        """One POST to the checked address of ``url``; the caller closes the streamed response."""
        target = self.check(url)
        prepared = self.http.prepare_request(
            requests.Request(
                "POST", url, data=data, headers={**headers, "Host": target.host_header}, auth=auth
            )
        )
        prepared.target = target
        return self.http.send(prepared, timeout=self.timeout, allow_redirects=False, stream=True)

    def _read(self, response: requests.Response, started: float) -> bytes:
        """At most max_bytes of an answer, within the timeout: a subscriber's answer is not ours to store."""
        kept = bytearray()
        for chunk in response.iter_content(8192):
            kept += chunk[: max(0, self.max_bytes - len(kept))]
            if response.raw.tell() >= self.max_bytes or time.monotonic() - started > self.timeout:
                break
        return bytes(kept)

    def token(self, credentials: ClientCredentials, *, renew: bool = False) -> str:
        """A bearer token for the callback (client credentials grant), cached until shortly before it
        expires; ``renew`` drops the cached one (the callback refused it)."""
        key = (credentials.token_url, credentials.client_id, credentials.client_secret)
        with self.token_lock:
            cached = self.tokens.get(key)
            if renew:
                self.tokens.pop(key, None)
            elif cached and cached[1] > time.monotonic():
                return cached[0]
        client = BackendApplicationClient(client_id=credentials.client_id)
        body = client.prepare_request_body(scope=credentials.scope, include_client_id=False)
        started = time.monotonic()
        try:
            with self._post(
                credentials.token_url,
                data=body.encode(),
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "accept": "application/json",
                    "user-agent": self.user_agent,
                },
                auth=(credentials.client_id, credentials.client_secret),  # client_secret_basic
            ) as response:
                text = self._read(response, started).decode("utf-8", "replace")
                status = response.status_code
        except (Refused, requests.RequestException) as exc:
            raise TokenRefused(f"the token endpoint: {type(exc).__name__}: {exc}"[:500]) from exc
        try:
            token = client.parse_request_body_response(text, scope=credentials.scope)
        except OAuth2Error as exc:
            raise TokenRefused(f"the token endpoint answered HTTP {status}: {exc.error}") from exc
        except ValueError as exc:  # not JSON, or no access_token
            raise TokenRefused(f"the token endpoint answered HTTP {status} without a token") from exc
        lifetime = float(token.get("expires_in") or TOKEN_DEFAULT_SECONDS)
        expires = time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS)
        with self.token_lock:
            self.tokens[key] = (token["access_token"], expires)
        return token["access_token"]

    def send(
        self,
        url: str,
        *,
        message_id: str,
        body: str,
        secrets: list[str],
        auth_header: str | None,
        oauth2: ClientCredentials | None = None,
    ) -> Answer:
        """One signed delivery; with OAuth2 credentials, a 401 renews the token and tries once more."""
        started = time.monotonic()
        now = datetime.now(UTC)  # the receiver checks webhook-timestamp against its real clock
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
        answer = self._once(url, body, headers, oauth2, renew=False, started=started, now=now)
        if answer.status == 401 and oauth2 is not None:  # the token was refused: a new one, once
            answer = self._once(url, body, headers, oauth2, renew=True, started=started, now=now)
        return answer

    def _once(
        self,
        url: str,
        body: str,
        headers: dict[str, str],
        oauth2: ClientCredentials | None,
        *,
        renew: bool,
        started: float,
        now: datetime,
    ) -> Answer:
        try:
            if oauth2 is not None:
                headers = {**headers, "authorization": f"Bearer {self.token(oauth2, renew=renew)}"}
            with self._post(url, data=body.encode(), headers=headers) as response:
                self._read(response, started)
                retry_after = _retry_after(response.headers.get("Retry-After"), now)
                return Answer(response.status_code, retry_after, None, time.monotonic() - started)
        except Refused as exc:
            return Answer(None, None, f"refused: {exc}", time.monotonic() - started)
        except TokenRefused as exc:
            return Answer(None, None, str(exc), time.monotonic() - started)
        except requests.RequestException as exc:
            return Answer(None, None, f"{type(exc).__name__}: {exc}"[:500], time.monotonic() - started)
