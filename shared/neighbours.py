"""Calling a neighbour over HTTP: another motcua service or an outside party (the postal operator, the
timestamp authority, the national portal, a gateway), each by name, the same way.

A :class:`Neighbour` gives every call

- a **timeout** to connect and one to read (``Policy``); a call never waits without bound;
- **bounded retries** (urllib3's ``Retry`` on requests' ``HTTPAdapter``): a refused or timed-out
  connection is retried for every method (the request never left), a read timeout, a 5xx or a 429 only
  for an idempotent method or a POST that carries an ``Idempotency-Key``; ``Retry-After`` is honoured up
  to ``retry_after_max`` seconds, other waits are urllib3's exponential back-off up to ``backoff_max``;
- a **circuit** (pybreaker) that opens after ``failures_to_open`` consecutive failed calls (each after
  its retries) and lets one call through again after ``cooldown`` seconds (half-open): a success closes
  it, a failure opens it for another cool-down. While it is open no call is made.

A call either returns the neighbour's answer (2xx, 3xx or 4xx other than 429: the neighbour answered,
its refusal is the caller's to read) or raises :class:`NeighbourUnavailable` (a ``ConnectionError``,
so ``shared.transient.is_transient`` holds): an HTTP entrypoint answers it as ``503`` with the
``Retry-After`` it carries (``shared.http``), a consumer keeps the event and tries it later without
spending an attempt (``shared.consumer``), a timer leaves the work owed for its next round.

The circuit's state is on ``/health/ready`` (``shared.operations``; an open circuit to a neighbour
reports ``degraded`` and fails readiness only when the neighbour is ``required``) and in the metrics
``motcua_neighbour_circuit_state``, ``motcua_neighbour_calls_total`` and
``motcua_neighbour_call_seconds`` (shared/metrics.py). docs/runbook.md "A neighbour's circuit is open".

pybreaker's lock is held only to decide whether a call may go (``CircuitBreaker.calling``), never
during the call, so under eventlet concurrent calls to one neighbour run side by side.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pybreaker
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared import metrics
from shared.config import Setting, positive, positive_int
from shared.problems import ServiceUnavailable

log = logging.getLogger(__name__)

# Retried when the method allows it: the neighbour is busy or failing, not refusing this request.
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# What a caller is told to wait when the neighbour failed but its circuit is still closed.
DEFAULT_RETRY_AFTER_SECONDS = 5
# The gauge's values: closed 0, half-open 1, open 2 (the alert fires on 2).
CIRCUIT_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}


@dataclass(frozen=True)
class Policy:
    """How one neighbour is called. The worst case of a call is :meth:`bound` seconds."""

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    attempts: int = 3  # in all, the first included
    backoff: float = 0.5  # urllib3's backoff_factor: 0, 2·b, 4·b … before the 2nd, 3rd, 4th attempt
    backoff_max: float = 10.0
    retry_after_max: float = 10.0  # a longer Retry-After is waited this long
    failures_to_open: int = 5
    cooldown: float = 30.0

    def wait_before(self, attempt: int) -> float:
        """urllib3's back-off before attempt ``attempt`` (2, 3, …) when no Retry-After came: none before
        the second, then ``backoff · 2^(attempt − 2)``, at most ``backoff_max``."""
        if attempt <= 2:
            return 0.0
        return min(self.backoff_max, self.backoff * 2 ** (attempt - 2))

    def bound(self) -> float:
        """The longest a call can take: every attempt timing out to connect and read, and every wait
        between attempts as long as it may be."""
        waits = sum(
            max(self.wait_before(attempt), self.retry_after_max) for attempt in range(2, self.attempts + 1)
        )
        return self.attempts * (self.connect_timeout + self.read_timeout) + waits


def policy_settings(prefix: str, defaults: Policy, what: str) -> tuple[Setting, ...]:
    """The settings of one neighbour's policy, ``<prefix>_CONNECT_TIMEOUT_SECONDS`` and so on, each
    defaulting to ``defaults``; ``what`` names the neighbour in the messages."""
    rows = (
        ("CONNECT_TIMEOUT_SECONDS", positive, "connect timeout", defaults.connect_timeout),
        ("TIMEOUT_SECONDS", positive, "read timeout of one attempt", defaults.read_timeout),
        ("ATTEMPTS", _attempts, "attempts per call, the first included (1-10)", defaults.attempts),
        ("RETRY_AFTER_MAX_SECONDS", positive, "longest Retry-After waited", defaults.retry_after_max),
        ("CIRCUIT_FAILURES", positive_int, "consecutive failed calls that open the circuit",
         defaults.failures_to_open),
        ("CIRCUIT_COOLDOWN_SECONDS", positive, "seconds an open circuit waits before a trial call",
         defaults.cooldown),
    )  # fmt: skip
    return tuple(
        Setting(f"{prefix}_{key}", parse, required=False, description=f"{what}: {text}", default=default)
        for key, parse, text, default in rows
    )


def policy_from(parsed: Mapping[str, Any], prefix: str, defaults: Policy) -> Policy:
    """The policy from settings checked by :func:`shared.config.validate` with :func:`policy_settings`."""
    return replace(
        defaults,
        connect_timeout=parsed[f"{prefix}_CONNECT_TIMEOUT_SECONDS"],
        read_timeout=parsed[f"{prefix}_TIMEOUT_SECONDS"],
        attempts=parsed[f"{prefix}_ATTEMPTS"],
        retry_after_max=parsed[f"{prefix}_RETRY_AFTER_MAX_SECONDS"],
        failures_to_open=parsed[f"{prefix}_CIRCUIT_FAILURES"],
        cooldown=parsed[f"{prefix}_CIRCUIT_COOLDOWN_SECONDS"],
    )


def _attempts(value: Any) -> int:
    number = int(value)
    if not 1 <= number <= 10 or number != float(value):
        raise ValueError(f"must be a whole number from 1 to 10, got {value!r}")
    return number


class NeighbourUnavailable(ConnectionError):
    """The neighbour gave no usable answer within the policy (or its circuit is open): nothing is known
    to be done there. ``retry_after`` is when trying again makes sense, in whole seconds."""

    def __init__(self, neighbour: str, reason: str, *, retry_after: int, short_circuited: bool = False):
        super().__init__(f"{neighbour}: {reason}")
        self.neighbour, self.reason = neighbour, reason
        self.retry_after, self.short_circuited = retry_after, short_circuited

    def problem(self, detail: str | None = None) -> ServiceUnavailable:
        """The synchronous caller's answer: 503 with ``Retry-After``; the neighbour named, no address."""
        problem = ServiceUnavailable(
            detail or f"the {self.neighbour} does not answer now; nothing was done there: retry later",
            neighbour=self.neighbour,
        )
        problem.headers["Retry-After"] = str(self.retry_after)
        return problem


class _Failed(Exception):
    """One call failed after its retries (counted by the circuit); carries the caller's exception."""

    def __init__(self, error: NeighbourUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, service: str, name: str) -> None:
        self.service, self.name = service, name

    def state_change(self, cb, old_state, new_state) -> None:
        metrics.NEIGHBOUR_CIRCUIT_STATE.labels(self.service, self.name).set(CIRCUIT_VALUES[new_state.name])
        level = logging.INFO if new_state.name == pybreaker.STATE_CLOSED else logging.WARNING
        log.log(level, "%s: circuit to the %s %s", self.service, self.name, new_state.name)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> int | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in whole seconds, or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0, math.ceil((moment - (now or datetime.now(UTC))).total_seconds()))


class Neighbour:
    """One neighbour of one service: ``request`` calls it under the policy and the circuit.

    ``required``: whether the service is of no use without it (an open circuit then fails readiness);
    otherwise an open circuit reports ``degraded`` and the caller's work is refused (503) or kept.
    """

    def __init__(
        self,
        service: str,
        name: str,
        base_url: str,
        policy: Policy,
        *,
        required: bool = False,
        headers: Mapping[str, str] | None = None,
        adapter: type[HTTPAdapter] = HTTPAdapter,
    ) -> None:
        self.service, self.name, self.policy, self.required = service, name, policy, required
        self.base_url = base_url.rstrip("/")
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=policy.failures_to_open,
            reset_timeout=policy.cooldown,
            exclude=[lambda exc: not isinstance(exc, _Failed)],
            listeners=[_StateListener(service, name)],
            state_storage=self._storage,
            name=f"{service}->{name}",
            throw_new_error_on_trip=False,
        )
        # Two sessions: one retries whatever failed, the other only what never reached the neighbour.
        self._retrying = self._session(adapter, retry_everything=True, headers=headers)
        self._once = self._session(adapter, retry_everything=False, headers=headers)
        metrics.NEIGHBOUR_CIRCUIT_STATE.labels(service, name).set(0)
        register(self)

    def _session(
        self, adapter: type[HTTPAdapter], *, retry_everything: bool, headers: Mapping[str, str] | None
    ) -> requests.Session:
        p = self.policy
        retry = Retry(
            total=p.attempts - 1,
            connect=p.attempts - 1,
            read=p.attempts - 1,
            status=p.attempts - 1,
            other=0,
            redirect=0,
            backoff_factor=p.backoff,
            backoff_max=p.backoff_max,
            retry_after_max=p.retry_after_max,
            status_forcelist=RETRIED_STATUSES,
            allowed_methods=None if retry_everything else IDEMPOTENT_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        session = requests.Session()
        session.trust_env = False  # where a neighbour is, is configured here, not by the environment
        mounted = adapter(max_retries=retry)
        session.mount("http://", mounted)
        session.mount("https://", mounted)
        session.headers.update(headers or {})
        return session

    # -- calls --------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """The neighbour's answer (any status but a 5xx or 429), or :class:`NeighbourUnavailable`.

        A POST is retried after a read timeout or a 5xx only with ``idempotency_key`` (sent as the
        ``Idempotency-Key`` header); ``kwargs`` go to requests (``json``, ``data``, ``params``, …).
        """
        method = method.upper()
        headers = dict(headers or {})
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        session = self._retrying if method in IDEMPOTENT_METHODS or idempotency_key else self._once
        started = time.monotonic()
        try:
            with self.breaker.calling():
                response = self._send(session, method, path, headers, kwargs)
        except pybreaker.CircuitBreakerError:
            self._count("short_circuited", started)
            raise NeighbourUnavailable(
                self.name, "its circuit is open", retry_after=self.cooldown_left(), short_circuited=True
            ) from None
        except _Failed as failed:
            self._count("failed", started)
            error = failed.error
            if self.state == pybreaker.STATE_OPEN:
                error.retry_after = max(error.retry_after, self.cooldown_left())
            raise error from None
        self._count("ok" if response.status_code < 400 else "refused", started)
        return response

    def _send(
        self, session: requests.Session, method: str, path: str, headers: dict, kwargs: dict
    ) -> requests.Response:
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        try:
            response = session.request(method, self.url(path), headers=headers, timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            # The kind only: the text names the host, which the caller's client need not see.
            raise _Failed(
                NeighbourUnavailable(
                    self.name, f"{type(exc).__name__}", retry_after=DEFAULT_RETRY_AFTER_SECONDS
                )
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            waited = retry_after_seconds(response.headers.get("Retry-After"))
            response.close()
            raise _Failed(
                NeighbourUnavailable(
                    self.name,
                    f"HTTP {response.status_code}",
                    retry_after=waited if waited else DEFAULT_RETRY_AFTER_SECONDS,
                )
            )
        return response

    def _count(self, outcome: str, started: float) -> None:
        metrics.NEIGHBOUR_CALLS.labels(self.service, self.name, outcome).inc()
        if outcome != "short_circuited":
            metrics.NEIGHBOUR_CALL_SECONDS.labels(self.service, self.name).observe(time.monotonic() - started)

    # -- the circuit --------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (pybreaker's names)."""
        return self._storage.state

    def cooldown_left(self) -> int:
        """Whole seconds until an open circuit lets a trial call through (at least 1 while open)."""
        opened = self._storage.opened_at
        if self.state != pybreaker.STATE_OPEN or opened is None:
            return 0
        left = self.policy.cooldown - (datetime.now(UTC) - opened).total_seconds()
        return max(1, math.ceil(left))

    def health(self) -> str:
        """``up``, or the circuit's state and when the next trial is, for ``/health/ready``."""
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return "up"
        if state == pybreaker.STATE_OPEN:
            return f"circuit open (a trial call in {self.cooldown_left()} s)"
        return "circuit half-open (a trial call is under way)"

    def close(self) -> None:
        unregister(self)
        self._retrying.close()
        self._once.close()


# -- the registry /health/ready reads ---------------------------------------------------------------

_REGISTRY: dict[tuple[str, str], Neighbour] = {}
_REGISTRY_LOCK = threading.Lock()


def register(neighbour: Neighbour) -> None:
    """The service's latest client for that neighbour is the one its readiness reports."""
    with _REGISTRY_LOCK:
        _REGISTRY[(neighbour.service, neighbour.name)] = neighbour


def unregister(neighbour: Neighbour) -> None:
    with _REGISTRY_LOCK:
        if _REGISTRY.get((neighbour.service, neighbour.name)) is neighbour:
            del _REGISTRY[(neighbour.service, neighbour.name)]


def of_service(service: str) -> list[Neighbour]:
    with _REGISTRY_LOCK:
        return [n for (owner, _), n in sorted(_REGISTRY.items()) if owner == service]
