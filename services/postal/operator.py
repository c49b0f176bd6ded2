"""The postal operator behind one interface: create order, cancel, confirm a hand-over, track, quote.

:class:`OperatorAdapter` is what the service layer calls; :class:`HttpOperator` speaks the
operator's HTTP API (the simulator in :mod:`simulators.postal_operator` speaks the same). A real
operator's client plugs in behind the same methods.

Every call goes through :class:`shared.neighbours.Neighbour` (``postal_operator``): timeouts, bounded
retries honouring ``Retry-After``, a circuit (``POSTAL_OPERATOR_*`` settings). A create carries an
``Idempotency-Key`` (the shipment's id), so a retried create — ours, or a whole request the client
retries — never makes two orders; a cancel and a hand-over carry one too (both are the same whenever
repeated), a quote changes nothing. What still fails raises :class:`OperatorUnavailable`: a request
answers 503 with ``Retry-After``, a call owed to the operator stays owed for the watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.neighbours import DEFAULT_RETRY_AFTER_SECONDS, Neighbour, NeighbourUnavailable, Policy

NEIGHBOUR = "postal_operator"
# Three attempts of at most 2 + 5 s, a Retry-After of at most 5 s between them: 31 s at worst.
POLICY = Policy(connect_timeout=2.0, read_timeout=5.0, attempts=3, backoff=0.2, retry_after_max=5.0)


class OperatorUnavailable(NeighbourUnavailable):
    """The operator did not answer usefully within the attempts allowed (or its circuit is open);
    nothing is known to be done. A request answers it 503 with ``Retry-After`` (shared/http.py)."""

    def __init__(self, reason: str, *, retry_after: int = DEFAULT_RETRY_AFTER_SECONDS, **kwargs: Any) -> None:
        super().__init__(NEIGHBOUR, reason, retry_after=retry_after, **kwargs)


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

    def close(self) -> None: ...


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


class HttpOperator:
    """The operator's HTTP API: ``POST /orders``, ``POST /orders/{c}/cancel``,
    ``POST /orders/{c}/handover``, ``GET /orders/{c}``, ``POST /quotes``."""

    def __init__(self, name: str, base_url: str, policy: Policy = POLICY, *, service: str = "postal") -> None:
        self.name = name
        self.neighbour = Neighbour(service, NEIGHBOUR, base_url, policy)

    def close(self) -> None:
        self.neighbour.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.neighbour.request(method, path, **kwargs)
        except NeighbourUnavailable as exc:
            raise OperatorUnavailable(
                f"{method} {path}: {exc.reason}",
                retry_after=exc.retry_after,
                short_circuited=exc.short_circuited,
                circuit_open=exc.circuit_open,
            ) from exc
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
        answer = self._call("POST", "/orders", json=self._body(order), idempotency_key=idempotency_key)
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
        self._call("POST", f"/orders/{consignment}/cancel", idempotency_key=f"cancel:{consignment}")

    def confirm_handover(self, consignment: str, *, handed_over_at: datetime) -> None:
        """The postal worker took the sealed result on a co-signed record: the delivery may start."""
        self._call(
            "POST",
            f"/orders/{consignment}/handover",
            json={"handed_over_at": handed_over_at.isoformat()},
            idempotency_key=f"handover:{consignment}",
        )

    def track(self, consignment: str) -> list[TrackingEntry]:
        answer = self._call("GET", f"/orders/{consignment}")
        return [TrackingEntry(e["status"], _moment(e["occurred_at"])) for e in answer.get("events", [])]

    def quote(self, order: Order) -> int:
        return int(self._call("POST", "/quotes", json=self._body(order), idempotent=True)["fee_vnd"])
