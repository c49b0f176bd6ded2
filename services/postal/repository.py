"""Loading and storing the postal aggregates: rows of :mod:`services.postal.models` ↔ domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.postal.domain.model import (
    Direction,
    HandoverRecord,
    ItemOutcome,
    RecordItem,
    Shipment,
    ShipmentStatus,
)
from services.postal.models import handover_items, handover_records, operator_calls, returns, shipments

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


def shipment(session: Session, shipment_id: str, *, for_update: bool = False) -> Shipment | None:
    row = session.execute(
        _locked(sa.select(shipments).where(shipments.c.id == shipment_id), for_update)
    ).first()
    return None if row is None else _shipment(row)


def shipment_by_consignment(
    session: Session, operator: str, consignment: str, *, for_update: bool = False
) -> Shipment | None:
    query = sa.select(shipments).where(
        shipments.c.operator == operator, shipments.c.consignment == consignment
    )
    row = session.execute(_locked(query, for_update)).first()
    return None if row is None else _shipment(row)


def shipment_for_report(session: Session, operator: str, consignment: str) -> tuple[Shipment, str] | None:
    """The shipment a tracking report is about, locked, with its unit path (one query)."""
    query = sa.select(shipments).where(
        shipments.c.operator == operator, shipments.c.consignment == consignment
    )
    row = session.execute(query.with_for_update()).first()
    return None if row is None else (_shipment(row), row.unit_path)


def shipments_of(session: Session, dossier_code: str) -> list[Shipment]:
    rows = session.execute(
        sa.select(shipments).where(shipments.c.dossier_code == dossier_code).order_by(shipments.c.created_at)
    ).all()
    return [_shipment(row) for row in rows]


def unit_path_of(session: Session, shipment_id: str) -> str:
    return session.execute(sa.select(shipments.c.unit_path).where(shipments.c.id == shipment_id)).scalar_one()


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


def record(session: Session, record_id: str, *, for_update: bool = False) -> HandoverRecord | None:
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
                shipment=_shipment(item),
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
        save_shipment(session, item.shipment)


# --- returns by post ---------------------------------------------------------------------------------


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


# --- event sequence ------------------------------------------------------------------------------------

_NEXT_SEQUENCE = sa.text(
    "INSERT INTO postal_event_sequences (subject, last) VALUES (:subject, :count) "
    "ON CONFLICT (subject) DO UPDATE SET last = postal_event_sequences.last + :count RETURNING last"
)


def next_sequences(session: Session, subject: str, count: int) -> int:
    """Reserve ``count`` sequence numbers of a dossier's postal events; returns the first."""
    last = session.execute(_NEXT_SEQUENCE, {"subject": subject, "count": count}).scalar_one()
    return last - count + 1
