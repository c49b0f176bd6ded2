"""The demo's HTTP side: one client per service, the problems it answers, tokens per role and unit."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import requests

from shared.auth import mint

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_DOSSIER_URL = os.environ.get("MOTCUA_DOSSIER_URL", "http://127.0.0.1:8000")
DEFAULT_METRICS_URL = os.environ.get("MOTCUA_METRICS_URL", "http://127.0.0.1:8003")


class DemoError(Exception):
    """A step failed: the message says what, where and what to do."""


class ServiceMissing(DemoError):
    """A service the demo needs does not answer."""


def problem_text(response: requests.Response) -> str:
    """The problem detail of an error response, with its field errors; the raw text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if not isinstance(body, dict):
        return str(body)[:300]
    text = str(body.get("detail") or body.get("title") or body)
    fields = [
        f"{e.get('pointer')}: {e.get('detail')}" for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    if fields and all(f not in text for f in fields):
        text += f" ({'; '.join(fields)})"
    if body.get("allowed_actions") is not None:
        text += f" [allowed now: {', '.join(body['allowed_actions']) or 'nothing'}]"
    return text


class Api:
    """One service's HTTP API: counts every call, fails loudly on a 5xx or an unexpected status."""

    def __init__(self, name: str, base: str, timeout: float = 30.0) -> None:
        self.name, self.base, self.timeout = name, base.rstrip("/"), timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.calls = 0
        self.statuses: Counter[int] = Counter()
        self.writes = 0  # successful state changes (each publishes one event)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        role: str = "",
        json: Any = None,
        params: dict | None = None,
        expect: Iterable[int] = (200,),
        key: str | None = None,
    ) -> requests.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if method == "POST":
            # A retry after a dropped connection reuses the key: the service replays, never doubles.
            headers["Idempotency-Key"] = key or str(uuid.uuid4())
        url = f"{self.base}{path}"
        for attempt in range(3):
            try:
                response = self._session().request(
                    method, url, json=json, params=params, headers=headers, timeout=self.timeout
                )
                break
            except requests.ConnectionError as exc:
                if attempt == 2:
                    raise ServiceMissing(
                        f"{self.name} service not reachable at {self.base} ({method} {path}): {exc}\n"
                        "  start it with `make run` (or pass its address with "
                        f"--{self.name}-url)"
                    ) from exc
                time.sleep(0.5 * (attempt + 1))
            except requests.Timeout as exc:
                raise DemoError(
                    f"{self.name} service did not answer {method} {path} within {self.timeout:.0f} s"
                ) from exc
        with self._lock:
            self.calls += 1
            self.statuses[response.status_code] += 1
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if method == "POST" and response.status_code in (200, 201) and not replayed:
                self.writes += 1
        as_whom = f" as {role}" if role else ""
        if response.status_code >= 500:
            raise DemoError(
                f"the {self.name} service answered {response.status_code} to {method} {path}{as_whom}: "
                f"{problem_text(response)}\n  (a server error: see the service's log)"
            )
        if response.status_code == 401:
            raise DemoError(
                f"the {self.name} service refused the demo's token ({problem_text(response)}): "
                "set JWT_SECRET to the secret the services run with"
            )
        if response.status_code not in tuple(expect):
            raise DemoError(
                f"{method} {path}{as_whom} answered {response.status_code}, expected "
                f"{'/'.join(map(str, expect))}: {problem_text(response)}"
            )
        return response

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def client_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500)


class Tokens:
    """Bearer tokens minted locally: a desk officer per commune; the province's agency, leader, clerk …"""

    def __init__(self, secret: str, province: str) -> None:
        self.secret, self.province = secret, province
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, role: str, unit: str | None = None) -> str:
        unit = unit or self.province
        with self._lock:
            token = self._cache.get((role, unit))
            if token is None:
                token = mint(self.secret, sub=f"demo-{role}@{unit}", roles=[role], units=[unit])
                self._cache[(role, unit)] = token
            return token
