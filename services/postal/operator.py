"""The postal operator behind one interface: create order, cancel, confirm a hand-over, track, quote.

:class:`OperatorAdapter` is what the service layer calls; :class:`HttpOperator` speaks the
operator's HTTP API (the simulator in :mod:`simulators.postal_operator` speaks the same). A real
operator's client plugs in behind the same methods.

Every call has a timeout; a timeout, a connection error, a 429 or a 5xx is retried a bounded number
of times with exponential backoff; a create carries an ``Idempotency-Key`` (the shipment's id), so a
retried create — ours, or a whole request the client retries — never makes two orders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class OperatorUnavailable(Exception):
    """The operator did not answer usefully within the attempts allowed; nothing is known to be done."""


class OperatorRejected(Exception):
    """The operator refused the request (a 4xx other than a throttle): retrying will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the operator refused the request ({status}): {detail}")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str
    address: str


@dataclass(frozen=True)
class Order:
    """What the operator needs to carry one consignment; the contact is personal data."""

    reference: str  # our shipment id
    direction: str
    unit: str
    contact: Contact
    packages: int
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderConfirmation:
    consignment: str
    fee_vnd: int
    packages: int
    promised_at: datetime | None


@dataclass(frozen=True)
class TrackingEntry:
    status: str
    occurred_at: datetime


class OperatorAdapter(Protocol):
    name: str

    def create_order(self, order: Order, *, idempotency_key: str) -> OrderConfirmation: ...

    def cancel(self, consignment: str) -> None: ...

    def confirm_handover(self, consignment: str, *, handed_over_at: datetime) -> None: ...

    def track(self, consignment: str) -> list[TrackingEntry]: ...

    def quote(self, order: Order) -> int: ...


def call_with_retries(
    session: requests.Session,
    method: str,
    url: str,
    *,
    attempts: int,
    timeout: float,
    backoff: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP call, retried on timeouts, connection errors, 429 and 5xx; any other answer is returned."""
    last: str = "no attempt made"
    for attempt in range(1, attempts + 1):
        try:
            response = session.request(method, url, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code not in RETRIED_STATUSES:
                return response
            last = f"HTTP {response.status_code}"
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s %s: attempt %d/%d failed (%s); retrying in %.2fs",
                method,
                url,
                attempt,
                attempts,
                last,
                delay,
            )
            sleep(delay)
    raise OperatorUnavailable(f"{method} {url}: {attempts} attempt(s) failed, last: {last}")


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


class HttpOperator:
    """The operator's HTTP API: ``POST /orders``, ``POST /orders/{c}/cancel``,
    ``POST /orders/{c}/handover``, ``GET /orders/{c}``, ``POST /quotes``."""

    def __init__(
        self, name: str, base_url: str, *, timeout: float = 5.0, attempts: int = 3, backoff: float = 0.2
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout, self.attempts, self.backoff = timeout, attempts, backoff
        self.session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = call_with_retries(
            self.session,
            method,
            f"{self.base_url}{path}",
            attempts=self.attempts,
            timeout=self.timeout,
            backoff=self.backoff,
            **kwargs,
        )
        if response.status_code >= 400:
            raise OperatorRejected(response.status_code, response.text[:500])
        try:
            return response.json()
        except ValueError as exc:
            raise OperatorUnavailable(
                f"{method} {path}: the operator answered something that is not JSON"
            ) from exc

    @staticmethod
    def _body(order: Order) -> dict[str, Any]:
        return {
            "reference": order.reference,
            "direction": order.direction,
            "unit": order.unit,
            "contact": {
                "name": order.contact.name,
                "phone": order.contact.phone,
                "address": order.contact.address,
            },
            "packages": order.packages,
            "documents": list(order.documents),
        }

    def create_order(self, order: Order, *, idempotency_key: str) -> OrderConfirmation:
        answer = self._call(
            "POST", "/orders", json=self._body(order), headers={"Idempotency-Key": idempotency_key}
        )
        try:
            return OrderConfirmation(
                consignment=str(answer["consignment"]),
                fee_vnd=int(answer["fee_vnd"]),
                packages=int(answer.get("packages", order.packages)),
                promised_at=_moment(answer.get("promised_at")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OperatorUnavailable(f"the operator's order confirmation is incomplete: {exc}") from exc

    def cancel(self, consignment: str) -> None:
        self._call("POST", f"/orders/{consignment}/cancel")

    def confirm_handover(self, consignment: str, *, handed_over_at: datetime) -> None:
        """The postal worker took the sealed result on a co-signed record: the delivery may start."""
        self._call(
            "POST", f"/orders/{consignment}/handover", json={"handed_over_at": handed_over_at.isoformat()}
        )

    def track(self, consignment: str) -> list[TrackingEntry]:
        answer = self._call("GET", f"/orders/{consignment}")
        return [TrackingEntry(e["status"], _moment(e["occurred_at"])) for e in answer.get("events", [])]

    def quote(self, order: Order) -> int:
        return int(self._call("POST", "/quotes", json=self._body(order))["fee_vnd"])
