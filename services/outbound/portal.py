"""The national portal's adapter, as every Vietnamese one-stop system calls it.

``POST {adapter}/{auth path}`` with the unit's credentials and a ``dstcode`` header answers
``{error_code: 0, session}``; the session is kept until the portal refuses it (HTTP 401, or one of the
configured session ``error_code``\\ s), then renewed once. Every call is ``POST {adapter}/{service
path}`` with ``{session, madonvi, service, ...}``. Success is ``error_code`` 0 and nothing else: a
message is never read for its meaning. Calls go through :class:`shared.neighbours.Neighbour`
(``national_portal``, ``PORTAL_*`` settings): timeouts, bounded retries honouring ``Retry-After``
(every call is, as a failed sync round would send it again anyway: the adapter's API has no
idempotency key, so a step whose answer was lost on the way may be recorded twice there), and a
circuit. What still fails raises :class:`PortalUnavailable`, a refusal
:class:`PortalRefused`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from services.outbound.metrics import PORTAL_ANSWERS
from shared.neighbours import Neighbour, NeighbourUnavailable, Policy

NEIGHBOUR = "national_portal"
# The portal is far and slow: connect 5 s, read 10 s, 3 attempts, a Retry-After waited up to 10 s.
POLICY = Policy(connect_timeout=5.0, read_timeout=10.0, attempts=3, backoff=0.5, retry_after_max=10.0)


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
    """No usable answer: a timeout, a refused connection, a 5xx or a body that is not the adapter's;
    ``circuit_open`` when the neighbour's circuit is open (shared.neighbours.NeighbourUnavailable)."""

    outcome = "unavailable"
    circuit_open = False


@dataclass(frozen=True)
class PortalSettings:
    url: str
    auth_path: str
    service_path: str
    dstcode: str
    username: str
    password: str
    unit_code: str  # madonvi
    session_error_codes: frozenset[str]
    policy: Policy = POLICY


def succeeded(answer: dict[str, Any]) -> bool:
    """Only an explicit ``error_code`` 0 is success (as a number or as text)."""
    return str(answer.get("error_code", "")).strip() == "0"


class PortalAdapter:
    """One portal connection per process; calls from several threads share the cached session."""

    def __init__(self, settings: PortalSettings, *, service: str = "outbound") -> None:
        self.settings = settings
        self.neighbour = Neighbour(service, NEIGHBOUR, settings.url, settings.policy)
        self._session: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.neighbour.close()

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            response = self.neighbour.request(
                "POST", path, json=body, headers={"dstcode": self.settings.dstcode}, idempotent=True
            )
        except NeighbourUnavailable as exc:
            error = PortalUnavailable(f"{path}: {exc.reason}"[:900])
            error.circuit_open = exc.circuit_open
            raise error from exc
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
