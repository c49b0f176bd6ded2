"""The payment service's repository: payments by reference, the confirmations it stored and the ones
it refused. A :class:`~shared.uow.TrackingRepository` like every service's (a payment publishes no
event of its own: the dossier's ``paid`` is the event of a payment), storing at commit only what
changed since the row was loaded."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.payment.domain.model import Payment, PaymentStatus
from services.payment.models import confirmations, rejections, transactions
from shared.units import UnitRegistry
from shared.uow import TrackingRepository, Transaction

_COLUMNS = tuple(column.name for column in transactions.columns)


def _row(payment: Payment) -> dict[str, Any]:
    values = {name: getattr(payment, name) for name in _COLUMNS}
    values["status"] = payment.status.value
    return values


def _payment(row: sa.Row) -> Payment:
    values = dict(row._mapping)
    values["status"] = PaymentStatus(values["status"])
    return Payment(**values)


class Payments(TrackingRepository[Payment]):
    def __init__(self, tx: Transaction, units: UnitRegistry) -> None:
        super().__init__(tx, units)
        self.loaded: dict[str, dict[str, Any]] = {}
        self.added: set[str] = set()

    def identity(self, payment: Payment) -> Hashable:
        return payment.reference

    def _seen(self, row: sa.Row | None) -> Payment | None:
        if row is None:
            return None
        if row.reference in self.seen:
            return self.seen[row.reference]
        payment = self.track(_payment(row))
        self.loaded[payment.reference] = _row(payment)
        return payment

    def get(self, reference: str, *, for_update: bool = False) -> Payment | None:
        query = sa.select(transactions).where(transactions.c.reference == reference)
        if for_update:
            query = query.with_for_update()
        return self._seen(self.session.execute(query).first())

    def of_dossier(self, dossier_code: str, *, for_update: bool = False) -> list[Payment]:
        """A dossier's payments, newest first."""
        query = (
            sa.select(transactions)
            .where(transactions.c.dossier_code == dossier_code)
            .order_by(transactions.c.started_at.desc())
        )
        if for_update:
            query = query.with_for_update()
        return [p for p in map(self._seen, self.session.execute(query).all()) if p is not None]

    def open_references(self, started_before: datetime, limit: int) -> list[str]:
        """References the reconciliation looks at: pending since before ``started_before``, or paid and
        still owing the dossier's record or the receipt; oldest first."""
        pending = sa.and_(
            transactions.c.status == PaymentStatus.PENDING.value, transactions.c.started_at <= started_before
        )
        paid = sa.and_(
            transactions.c.status == PaymentStatus.PAID.value,
            sa.or_(transactions.c.recorded_at.is_(None), transactions.c.receipt.is_(None)),
        )
        query = (
            sa.select(transactions.c.reference)
            .where(sa.or_(pending, paid))
            .order_by(transactions.c.started_at)
            .limit(limit)
        )
        return list(self.session.execute(query).scalars())

    def add(self, payment: Payment) -> Payment:
        self.added.add(payment.reference)
        return self.track(payment)

    def store(self, payment: Payment) -> None:
        values = _row(payment)
        if payment.reference in self.added:
            self.session.execute(transactions.insert().values(**values))
            self.added.discard(payment.reference)
        else:
            before = self.loaded.get(payment.reference, {})
            changed = {k: v for k, v in values.items() if before.get(k) != v}
            if changed:
                self.session.execute(
                    transactions.update()
                    .where(transactions.c.reference == payment.reference)
                    .values(**changed)
                )
        self.loaded[payment.reference] = values

    # --- what the platform sent --------------------------------------------------------------------

    def keep_confirmation(
        self, reference: str, error_code: str, at: datetime, outcome: str, body: str
    ) -> None:
        self.session.execute(
            confirmations.insert().values(
                reference=reference, error_code=error_code, received_at=at, outcome=outcome, body=body
            )
        )

    def keep_rejection(
        self, *, at: datetime, reason: str, reference: str | None, remote_addr: str | None, body: str
    ):
        self.session.execute(
            rejections.insert().values(
                received_at=at, reason=reason, reference=reference, remote_addr=remote_addr, body=body
            )
        )

    def owed(self) -> int:
        """Paid payments the dossier has not taken yet."""
        query = sa.select(sa.func.count()).where(
            transactions.c.status == PaymentStatus.PAID.value, transactions.c.recorded_at.is_(None)
        )
        return int(self.session.execute(query).scalar() or 0)

    def oldest_pending(self) -> datetime | None:
        """When the oldest pending payment started (the pending-age gauge)."""
        query = (
            sa.select(transactions.c.started_at)
            .where(transactions.c.status == PaymentStatus.PENDING.value)
            .order_by(transactions.c.started_at)
            .limit(1)
        )
        return self.session.execute(query).scalar()
