"""The national portal's adapter, as every Vietnamese one-stop system calls it.

``POST {adapter}/{auth path}`` with the unit's credentials and a ``dstcode`` header answers
``{error_code: 0, session}``; the session is kept until the portal refuses it (HTTP 401, or one of the
configured session ``error_code``\\ s), then renewed once. Every call is ``POST {adapter}/{service
path}`` with ``{session, madonvi, service, ...}``. Success is ``error_code`` 0 and nothing else: a
message is never read for its meaning. Transport failures (timeouts, 5xx, a refused connection) are
retried within the call by urllib3's ``Retry`` (bounded, with back-off, ``Retry-After`` honoured);
what still fails raises :class:`PortalUnavailable`, a refusal :class:`PortalRefused`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from services.outbound.metrics import PORTAL_ANSWERS


class PortalError(Exception):
    """The portal did not take the call; ``outcome`` is the metric's label."""

    outcome = "error"


class PortalRefused(PortalError):
    """The portal answered with an ``error_code`` other than 0."""

    outcome = "refused"

    def __init__(self, service: str, error_code: Any, message: str) -> None:
        super().__init__(f"{service}: error_code {error_code}: {message}"[:900])
        self.error_code, self.message = error_code, message


class PortalUnavailable(PortalError):
    """No usable answer: a timeout, a refused connection, a 5xx or a body that is not the adapter's."""

    outcome = "unavailable"


@dataclass(frozen=True)
class PortalSettings:
    url: str
    auth_path: str
    service_path: str
    dstcode: str
    username: str
    password: str
    unit_code: str  # madonvi
    timeout: float
    retries: int
    session_error_codes: frozenset[str]


def succeeded(answer: dict[str, Any]) -> bool:
    """Only an explicit ``error_code`` 0 is success (as a number or as text)."""
    return str(answer.get("error_code", "")).strip() == "0"


class PortalAdapter:
    """One portal connection per process; calls from several threads share the cached session."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            backoff_factor=0.5,
            backoff_max=10,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self._session: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = f"{self.settings.url.rstrip('/')}/{path.lstrip('/')}"
        try:
            response = self.http.post(
                url, json=body, headers={"dstcode": self.settings.dstcode}, timeout=self.settings.timeout
            )
        except requests.RequestException as exc:
            raise PortalUnavailable(f"{path}: {type(exc).__name__}: {exc}"[:900]) from exc
        if response.status_code >= 500:
            raise PortalUnavailable(f"{path}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise PortalUnavailable(f"{path}: HTTP {response.status_code}, not JSON") from exc
        if not isinstance(answer, dict):
            raise PortalUnavailable(f"{path}: HTTP {response.status_code}, not a JSON object")
        return response.status_code, answer

    def _login(self) -> str:
        s = self.settings
        status, answer = self._post(s.auth_path, {"username": s.username, "password": s.password})
        if status != 200 or not succeeded(answer) or not answer.get("session"):
            raise PortalRefused("auth", answer.get("error_code", status), str(answer.get("message", "")))
        return str(answer["session"])

    def _token(self, refused: str | None = None) -> str:
        with self._lock:
            if self._session is None or self._session == refused:
                self._session = self._login()
            return self._session

    def _refuses_session(self, status: int, answer: dict[str, Any]) -> bool:
        return status == 401 or str(answer.get("error_code", "")).strip() in self.settings.session_error_codes

    def call(self, service: str, **members: Any) -> dict[str, Any]:
        """One integration call; the session is renewed once if the portal refuses it."""
        try:
            answer = self._call(service, members)
        except PortalError as exc:
            PORTAL_ANSWERS.labels(exc.outcome).inc()
            raise
        PORTAL_ANSWERS.labels("ok").inc()
        return answer

    def _call(self, service: str, members: dict[str, Any]) -> dict[str, Any]:
        session = self._token()
        body = {"session": session, "madonvi": self.settings.unit_code, "service": service, **members}
        status, answer = self._post(self.settings.service_path, body)
        if self._refuses_session(status, answer):
            session = self._token(refused=session)
            status, answer = self._post(self.settings.service_path, {**body, "session": session})
        if not succeeded(answer):
            raise PortalRefused(service, answer.get("error_code", status), str(answer.get("message", "")))
        return answer

    def knows(self, code: str) -> bool:
        """``TraCuuHoSo``: whether the portal holds the dossier (then it is updated, not inserted)."""
        return bool(self.call("TraCuuHoSo", mahoso=code).get("result"))

    def sync(self, record: dict[str, Any], *, updating: bool) -> None:
        self.call("DongBoHoSoMC", isUpdating=updating, data=[record])

    def progress(self, steps: list[dict[str, Any]]) -> None:
        self.call("CapNhatTienDoHoSoMC", data=steps)
