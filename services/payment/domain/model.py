"""A payment of a dossier's fees through the national payment platform (plain Python).

One :class:`Payment` per transaction reference (``MaThamChieu``), which is also the idempotency key of
everything about it: the platform's confirmations and query answers, and the payment recorded on the
dossier. Its life::

    pending ──confirmation or query "paid"──> paid ──the dossier took it──> (recorded)
       │  └──confirmation or query "failed"──> failed
       └──no answer for the whole window────> expired

A repeated confirmation, or a query answer that says less than what is known (``pending`` after
``paid``), changes nothing: a payment never moves backwards. A confirmation of another amount than
the one asked for is refused (:class:`AmountMismatch`). No card data ever reaches motcua: the citizen
pays on the platform's page; a payment holds the reference, the amount and the platform's answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain import Aggregate, Conflict


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"


class AmountMismatch(Conflict):
    """The platform reports another amount than the one the dossier owes: nothing is recorded."""


@dataclass(frozen=True)
class Window:
    """When a pending payment is asked about: from ``after`` its start (the callback's chance) until
    ``until`` (then it has expired: the platform's link no longer works)."""

    after: timedelta = timedelta(minutes=30)
    until: timedelta = timedelta(days=3)


@dataclass(eq=False)
class Payment(Aggregate):
    reference: str  # MaThamChieu
    dossier_code: str
    receiving_unit: str
    amount_vnd: int
    started_at: datetime
    started_by: str  # "citizen", or the desk officer's token subject
    status: PaymentStatus = PaymentStatus.PENDING
    payment_url: str | None = None
    transaction: str | None = None  # MaGiaoDich, the platform's own id
    error_code: str | None = None  # MaLoi of a failure
    settled_at: datetime | None = None  # paid or failed, as the platform says
    settled_via: str | None = None  # "confirmation" or "query"
    recorded_at: datetime | None = None  # the dossier took the payment
    record_outcome: str | None = None
    queried_at: datetime | None = None
    receipt_url: str | None = None
    receipt: bytes | None = None
    receipt_type: str | None = None
    events: list = field(default_factory=list, repr=False)

    @property
    def subject(self) -> str:
        return self.dossier_code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.receiving_unit, None

    # --- what the platform says ------------------------------------------------------------------

    def paid(self, *, amount_vnd: int, transaction: str | None, at: datetime, via: str) -> bool:
        """The platform says the citizen paid; True when this is news (the payment is now paid)."""
        if self.status is PaymentStatus.PAID:
            return False
        if self.status is PaymentStatus.FAILED:
            raise Conflict(
                f"payment {self.reference} failed ({self.error_code}); a success now is not believed"
            )
        if amount_vnd != self.amount_vnd:
            raise AmountMismatch(
                f"payment {self.reference}: the platform reports {amount_vnd} đồng, "
                f"{self.amount_vnd} were due"
            )
        self.status, self.transaction, self.settled_at, self.settled_via = (
            PaymentStatus.PAID,
            transaction,
            at,
            via,
        )
        return True

    def failed(self, *, error_code: str, at: datetime, via: str) -> bool:
        """The platform says the payment failed (cancelled, refused); True when this is news."""
        if self.status is not PaymentStatus.PENDING:
            return False  # a failure after a success is a late message about an earlier attempt
        self.status, self.error_code, self.settled_at, self.settled_via = (
            PaymentStatus.FAILED,
            error_code,
            at,
            via,
        )
        return True

    def still_pending(self, *, at: datetime) -> None:
        """A query found it still pending."""
        self.queried_at = at

    # --- the window, the dossier, the receipt ----------------------------------------------------

    def due_for_query(self, now: datetime, window: Window) -> bool:
        return self.status is PaymentStatus.PENDING and now - self.started_at >= window.after

    def expire(self, now: datetime, window: Window) -> bool:
        """Past the window with no answer: expired (the link no longer works); True when it expired now."""
        if self.status is PaymentStatus.PENDING and now - self.started_at > window.until:
            self.status, self.settled_at = PaymentStatus.EXPIRED, now
            return True
        return False

    @property
    def owes_record(self) -> bool:
        """Paid, and the dossier has not taken it yet."""
        return self.status is PaymentStatus.PAID and self.recorded_at is None

    @property
    def owes_receipt(self) -> bool:
        return self.status is PaymentStatus.PAID and self.receipt is None

    def record(self, *, at: datetime, outcome: str) -> None:
        """The dossier took the payment (``recorded``), or no longer awaits one (the outcome says why)."""
        if self.status is not PaymentStatus.PAID:
            raise Conflict(f"payment {self.reference} is {self.status}, not paid")
        if self.recorded_at is None:
            self.recorded_at, self.record_outcome = at, outcome

    def keep_receipt(self, *, url: str, content: bytes, content_type: str) -> None:
        """The platform's receipt (biên lai), fetched and kept."""
        self.receipt_url, self.receipt, self.receipt_type = url, content, content_type

    def reusable(self, amount_vnd: int, now: datetime, window: Window) -> bool:
        """A pending payment of the same amount whose link is still fresh: the same link again, rather
        than a second transaction the citizen could also pay."""
        return (
            self.status is PaymentStatus.PENDING
            and self.amount_vnd == amount_vnd
            and self.payment_url is not None
            and now - self.started_at < window.after
        )
