"""The postal service's repositories: rows of :mod:`services.postal.models` ↔ its aggregates.

:class:`Shipments`, :class:`HandoverRecords` and :class:`Returns` are ``shared.uow.TrackingRepository``
subclasses: what they load or add is tracked, stored at commit (only what changed), and the events
the shipments recorded are numbered per dossier in ``postal_event_sequences`` (one dossier has several
shipments) and written to the outbox in the same transaction. :class:`Repositories` opens the three
on one transaction. The module functions below them are their SQL (tests seed rows with them too).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.postal import schemas  # noqa: F401 - the postal.* event types, validated at commit
from services.postal.domain.model import (
    Direction,
    HandoverRecord,
    ItemOutcome,
    PostalReturn,
    RecordItem,
    Shipment,
    ShipmentStatus,
)
from services.postal.models import (
    event_sequences,
    handover_items,
    handover_records,
    operator_calls,
    returns,
    shipments,
    webhook_rejections,
    webhooks,
)
from shared.units import UnitRegistry
from shared.uow import TrackingRepository, Transaction

_SHIPMENT_FIELDS = (
    "id",
    "dossier_code",
    "direction",
    "operator",
    "consignment",
    "receiving_unit",
    "packages",
    "fee_vnd",
    "charged_to",
    "created_at",
    "promised_at",
    "status",
    "status_at",
    "attempts",
    "delivered_at",
    "handed_over_at",
    "lost_at",
    "recipient_kind",
    "recipient_name",
    "result_document",
    "loss_cause",
    "compensation_vnd",
    "cancel_reason",
    "redelivery_cause",
)


def _attempts_in(value: list[dict[str, str]] | None) -> list[tuple[ShipmentStatus, datetime]]:
    return [(ShipmentStatus(a["status"]), datetime.fromisoformat(a["at"])) for a in value or []]


def _attempts_out(attempts: list[tuple[ShipmentStatus, datetime]]) -> list[dict[str, str]]:
    return [{"status": status.value, "at": at.isoformat()} for status, at in attempts]


def _shipment(row: sa.Row) -> Shipment:
    values = {name: getattr(row, name) for name in _SHIPMENT_FIELDS}
    values["direction"] = Direction(values["direction"])
    values["status"] = ShipmentStatus(values["status"])
    values["attempt_reports"] = _attempts_in(row.attempt_reports)
    return Shipment(**values)


def _shipment_row(shipment: Shipment) -> dict[str, Any]:
    row = {name: getattr(shipment, name) for name in _SHIPMENT_FIELDS}
    row["direction"], row["status"] = shipment.direction.value, shipment.status.value
    row["attempt_reports"] = _attempts_out(shipment.attempt_reports)
    return row


def add_shipment(session: Session, shipment: Shipment, *, unit_path: str, contact: dict[str, str]) -> None:
    session.execute(
        shipments.insert().values(
            **_shipment_row(shipment),
            unit_path=unit_path,
            contact_name=contact["name"],
            contact_phone=contact["phone"],
            contact_address=contact["address"],
        )
    )


def save_shipment(session: Session, shipment: Shipment) -> None:
    row = _shipment_row(shipment)
    del row["id"]
    session.execute(shipments.update().where(shipments.c.id == shipment.id).values(**row))


def _locked(query: sa.Select, for_update: bool) -> sa.Select:
    return query.with_for_update() if for_update else query


def contact_of(session: Session, shipment_id: str) -> dict[str, str]:
    row = session.execute(
        sa.select(shipments.c.contact_name, shipments.c.contact_phone, shipments.c.contact_address).where(
            shipments.c.id == shipment_id
        )
    ).one()
    return {"name": row.contact_name, "phone": row.contact_phone, "address": row.contact_address}


# --- hand-over records -----------------------------------------------------------------------------


def add_record(session: Session, record: HandoverRecord, *, created_by: str) -> None:
    session.execute(
        handover_records.insert().values(
            id=record.id,
            direction=record.direction.value,
            receiving_unit=record.receiving_unit,
            created_at=record.created_at,
            created_by=created_by,
        )
    )
    session.execute(
        handover_items.insert(),
        [
            {
                "record_id": record.id,
                "shipment_id": item.shipment.id,
                "position": position,
                "packages_counted": item.packages_counted,
                "discrepancy": item.discrepancy,
            }
            for position, item in enumerate(record.items)
        ],
    )


def record(
    session: Session, record_id: str, *, for_update: bool = False, shipment=None
) -> HandoverRecord | None:
    """A record with its items; ``shipment`` makes each listed shipment's object (default: from its row)."""
    shipment = shipment or _shipment
    row = session.execute(
        _locked(sa.select(handover_records).where(handover_records.c.id == record_id), for_update)
    ).first()
    if row is None:
        return None
    items = session.execute(
        sa.select(handover_items, shipments)
        .join(shipments, shipments.c.id == handover_items.c.shipment_id)
        .where(handover_items.c.record_id == record_id)
        .order_by(handover_items.c.position)
    ).all()
    return HandoverRecord(
        id=row.id,
        direction=Direction(row.direction),
        receiving_unit=row.receiving_unit,
        created_at=row.created_at,
        operator_signed_by=row.operator_signed_by,
        operator_signed_at=row.operator_signed_at,
        desk_signed_by=row.desk_signed_by,
        desk_signed_at=row.desk_signed_at,
        items=[
            RecordItem(
                shipment=shipment(item),
                packages_counted=item.packages_counted,
                outcome=None if item.outcome is None else ItemOutcome(item.outcome),
                reason=item.reason,
                reason_code=item.reason_code,
            )
            for item in items
        ],
    )


def save_record(session: Session, record: HandoverRecord) -> None:
    session.execute(
        handover_records.update()
        .where(handover_records.c.id == record.id)
        .values(
            operator_signed_by=record.operator_signed_by,
            operator_signed_at=record.operator_signed_at,
            desk_signed_by=record.desk_signed_by,
            desk_signed_at=record.desk_signed_at,
        )
    )
    for item in record.items:
        session.execute(
            handover_items.update()
            .where(handover_items.c.record_id == record.id, handover_items.c.shipment_id == item.shipment.id)
            .values(
                outcome=None if item.outcome is None else item.outcome.value,
                reason=item.reason,
                reason_code=item.reason_code,
            )
        )


# --- returns by post ---------------------------------------------------------------------------------


def _return(row: sa.Row) -> PostalReturn:
    return PostalReturn(**{column.name: getattr(row, column.name) for column in returns.columns})


def _return_row(postal_return: PostalReturn) -> dict[str, Any]:
    """The row's values but its key (``dossier_code``)."""
    return {c.name: getattr(postal_return, c.name) for c in returns.columns if c.name != "dossier_code"}


def postal_return(session: Session, dossier_code: str, *, for_update: bool = False) -> sa.Row | None:
    query = sa.select(returns).where(returns.c.dossier_code == dossier_code)
    return session.execute(_locked(query, for_update)).first()


def put_return(session: Session, dossier_code: str, values: dict[str, Any]) -> None:
    if postal_return(session, dossier_code) is None:
        session.execute(returns.insert().values(dossier_code=dossier_code, **values))
    else:
        session.execute(returns.update().where(returns.c.dossier_code == dossier_code).values(**values))


# --- calls owed to the operator -----------------------------------------------------------------------


def owe_call(session: Session, shipment_id: str, call: str, now: datetime) -> None:
    """Remember a call the operator must get (once per shipment and kind: a repeat adds nothing)."""
    known = session.execute(
        sa.select(operator_calls.c.id).where(
            operator_calls.c.shipment_id == shipment_id, operator_calls.c.call == call
        )
    ).first()
    if known is None:
        session.execute(
            operator_calls.insert().values(shipment_id=shipment_id, call=call, created_at=now, attempts=0)
        )


def owed_calls(session: Session, *, dossier_code: str | None = None, limit: int = 100) -> list[sa.Row]:
    query = (
        sa.select(
            operator_calls.c.id,
            operator_calls.c.call,
            shipments.c.consignment,
            shipments.c.handed_over_at,
        )
        .join(shipments, shipments.c.id == operator_calls.c.shipment_id)
        .where(operator_calls.c.done_at.is_(None))
        .order_by(operator_calls.c.id)
        .limit(limit)
    )
    if dossier_code is not None:
        query = query.where(shipments.c.dossier_code == dossier_code)
    return list(session.execute(query).all())


def settle_call(
    session: Session, call_id: int, *, outcome: str | None, error: str | None, now: datetime
) -> None:
    """A call made (``outcome``), or failed again (``error``: it stays owed)."""
    values: dict[str, Any] = {"attempts": operator_calls.c.attempts + 1, "last_error": error}
    if outcome is not None:
        values.update(done_at=now, outcome=outcome)
    session.execute(operator_calls.update().where(operator_calls.c.id == call_id).values(**values))


# --- the repositories ------------------------------------------------------------------------------------


class AlreadyStored(Exception):
    """The operator's report with this ``webhook-id`` is stored already: the transaction must roll back."""


class Shipments(TrackingRepository[Shipment]):
    """The shipments of one transaction; each is one aggregate (a dossier may have several)."""

    sequences = event_sequences

    def __init__(self, tx: Transaction, units: UnitRegistry) -> None:
        super().__init__(tx, units)
        self.loaded: dict[str, dict[str, Any]] = {}  # each loaded shipment's row, to store only changes
        self.contacts: dict[str, dict[str, str]] = {}  # the new ones' contacts, inserted at commit

    def identity(self, shipment: Shipment) -> Hashable:
        return shipment.id

    def _seen(self, row: sa.Row | None) -> Shipment | None:
        if row is None:
            return None
        if row.id in self.seen:
            return self.seen[row.id]
        shipment = self.track(_shipment(row))
        self.loaded[shipment.id] = _shipment_row(shipment)
        return shipment

    def get(self, shipment_id: str, *, for_update: bool = False) -> Shipment | None:
        query = sa.select(shipments).where(shipments.c.id == shipment_id)
        return self._seen(self.session.execute(_locked(query, for_update)).first())

    def by_consignment(self, operator: str, consignment: str, *, for_update: bool = False) -> Shipment | None:
        query = sa.select(shipments).where(
            shipments.c.operator == operator, shipments.c.consignment == consignment
        )
        return self._seen(self.session.execute(_locked(query, for_update)).first())

    def of_dossier(self, dossier_code: str) -> list[Shipment]:
        """A dossier's shipments, both directions, oldest first."""
        query = (
            sa.select(shipments)
            .where(shipments.c.dossier_code == dossier_code)
            .order_by(shipments.c.created_at)
        )
        return [self._seen(row) for row in self.session.execute(query).all()]

    def add(self, shipment: Shipment, *, contact: dict[str, str]) -> None:
        """A new shipment (inserted at commit) with the contact it goes to or comes from."""
        self.contacts[shipment.id] = contact
        self.track(shipment)

    def store(self, shipment: Shipment) -> None:
        if shipment.id in self.contacts:
            unit_path = self.units.routing_path(shipment.receiving_unit)
            add_shipment(self.session, shipment, unit_path=unit_path, contact=self.contacts.pop(shipment.id))
        elif _shipment_row(shipment) != self.loaded.get(shipment.id):
            save_shipment(self.session, shipment)
        self.loaded[shipment.id] = _shipment_row(shipment)

    def keep_report(self, report: dict[str, Any]) -> None:
        """Store one verified operator report (``postal_webhooks``); raises :class:`AlreadyStored` when
        its ``webhook-id`` is (a repeated delivery, or the same one delivered twice at once)."""
        try:
            self.session.execute(webhooks.insert().values(**report))
        except sa.exc.IntegrityError as exc:
            raise AlreadyStored(report["webhook_id"]) from exc

    def keep_rejection(self, rejection: dict[str, Any]) -> None:
        """A forged or stale delivery, kept for forensics (``postal_webhook_rejections``)."""
        self.session.execute(webhook_rejections.insert().values(**rejection))

    def owe_call(self, shipment_id: str, call: str, now: datetime) -> None:
        owe_call(self.session, shipment_id, call, now)

    def owed_calls(self, *, dossier_code: str | None = None, limit: int = 100) -> list[Any]:
        return owed_calls(self.session, dossier_code=dossier_code, limit=limit)

    def settle_call(self, call_id: int, *, outcome: str | None, error: str | None, now: datetime) -> None:
        settle_call(self.session, call_id, outcome=outcome, error=error, now=now)

    def census(self, now: datetime) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """Shipments by (direction, status), and the open ones past their promised time by direction
        (a lost one is alerted on as lost, not as stuck)."""
        counts = self.session.execute(
            sa.select(shipments.c.direction, shipments.c.status, sa.func.count()).group_by(
                shipments.c.direction, shipments.c.status
            )
        ).all()
        final = [
            s.value
            for s in (ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED_TO_SENDER, ShipmentStatus.CANCELLED)
        ]
        overdue = self.session.execute(
            sa.select(shipments.c.direction, sa.func.count())
            .where(shipments.c.status.not_in(final))
            .where(shipments.c.promised_at < now)
            .where(shipments.c.lost_at.is_(None))
            .group_by(shipments.c.direction)
        ).all()
        return {(d, s): n for d, s, n in counts}, dict(overdue)


class HandoverRecords(TrackingRepository[HandoverRecord]):
    """The hand-over records of one transaction; their consignments' shipments are tracked by
    ``shipments`` (which publishes their ``handed_over``)."""

    def __init__(self, tx: Transaction, units: UnitRegistry, shipments: Shipments) -> None:
        super().__init__(tx, units)
        self.shipments = shipments
        self.created_by: dict[str, str] = {}  # the new ones' authors, inserted at commit
        self.loaded: dict[str, tuple] = {}  # each loaded record's signatures and decisions

    @staticmethod
    def _state(record: HandoverRecord) -> tuple:
        signatures = (
            record.operator_signed_by,
            record.operator_signed_at,
            record.desk_signed_by,
            record.desk_signed_at,
        )
        return signatures, tuple((item.outcome, item.reason, item.reason_code) for item in record.items)

    def identity(self, record: HandoverRecord) -> Hashable:
        return record.id

    def get(self, record_id: str, *, for_update: bool = False) -> HandoverRecord | None:
        if record_id in self.seen:
            return self.seen[record_id]
        found = record(self.session, record_id, for_update=for_update, shipment=self.shipments._seen)
        if found is None:
            return None
        self.loaded[record_id] = self._state(found)
        return self.track(found)

    def add(self, record: HandoverRecord, *, created_by: str) -> None:
        self.created_by[record.id] = created_by
        self.track(record)

    def store(self, record: HandoverRecord) -> None:
        if record.id in self.created_by:
            add_record(self.session, record, created_by=self.created_by.pop(record.id))
        elif self._state(record) != self.loaded.get(record.id):
            save_record(self.session, record)
        self.loaded[record.id] = self._state(record)


class Returns(TrackingRepository[PostalReturn]):
    """The returns by post of one transaction, one per dossier."""

    def __init__(self, tx: Transaction, units: UnitRegistry) -> None:
        super().__init__(tx, units)
        self.loaded: dict[str, dict[str, Any] | None] = {}

    def get(self, dossier_code: str, *, for_update: bool = False) -> PostalReturn | None:
        if dossier_code in self.seen:
            return self.seen[dossier_code]
        row = postal_return(self.session, dossier_code, for_update=for_update)
        if row is None:
            return None
        found = self.track(_return(row))
        self.loaded[dossier_code] = _return_row(found)
        return found

    def add(self, postal_return: PostalReturn) -> None:
        self.loaded[postal_return.dossier_code] = None
        self.track(postal_return)

    def store(self, postal_return: PostalReturn) -> None:
        row = _return_row(postal_return)
        if row != self.loaded.get(postal_return.dossier_code):
            put_return(self.session, postal_return.dossier_code, row)
        self.loaded[postal_return.dossier_code] = row

    def awaiting_delivery(self, limit: int = 100) -> list[PostalReturn]:
        """Resolved returns of dossiers still open that have no delivery yet (an outage left them)."""
        query = (
            sa.select(returns)
            .where(returns.c.resolved_at.is_not(None))
            .where(returns.c.closed_at.is_(None))
            .where(
                ~sa.exists().where(
                    shipments.c.dossier_code == returns.c.dossier_code,
                    shipments.c.direction == Direction.DELIVERY.value,
                )
            )
            .limit(limit)
        )
        return [_return(row) for row in self.session.execute(query).all()]


@dataclass(frozen=True)
class Repositories:
    """The postal repositories of one transaction (so that each aggregate is one object in it)."""

    shipments: Shipments
    records: HandoverRecords
    returns: Returns

    @classmethod
    def of(cls, tx: Transaction, units: UnitRegistry) -> Repositories:
        shipments = Shipments(tx, units)
        return cls(shipments, HandoverRecords(tx, units, shipments), Returns(tx, units))
