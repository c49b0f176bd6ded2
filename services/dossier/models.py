"""The dossier service's tables (it owns them; no other service reads them) and their mapping
onto the plain domain classes of :mod:`services.dossier.domain.model`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import registry

from services.dossier.domain.model import Channel, Dossier, ReturnMethod, Status
from shared.db import UTCDateTime, add_pipeline_tables

SERVICE = "dossier"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)


class IntEnumType(sa.types.TypeDecorator):
    """Stores an IntEnum as its integer (the portal's code) and loads it back as the enum."""

    impl = sa.SmallInteger
    cache_ok = True

    def __init__(self, enum: type, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.enum = enum

    def process_bind_param(self, value, dialect):
        return None if value is None else int(value)

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum(value)


dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("code", sa.String(60), primary_key=True),
    sa.Column("procedure_code", sa.String(40), nullable=False),
    sa.Column("procedure_version", sa.Integer, nullable=False),
    sa.Column("procedure_field", sa.String(60), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("handling_unit", sa.String(40), nullable=False),
    sa.Column("channel", IntEnumType(Channel), nullable=False),
    sa.Column("return_method", IntEnumType(ReturnMethod), nullable=False),
    sa.Column("status", IntEnumType(Status), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("applicant", sa.JSON, nullable=False),
    sa.Column("event_sequence", sa.Integer, nullable=False),
    sa.Index("ix_dossiers_receiving_unit_received_at", "receiving_unit", "received_at"),
    sa.Index("ix_dossiers_status_due_at", "status", "due_at"),
)

# Mã hồ sơ: a per-unit daily counter, incremented atomically inside the receipt's transaction.
dossier_code_counters = sa.Table(
    "dossier_code_counters",
    metadata,
    sa.Column("unit", sa.String(40), primary_key=True),
    sa.Column("day", sa.String(6), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

mapper_registry = registry(metadata=metadata)
mapper_registry.map_imperatively(Dossier, dossiers)


@event.listens_for(Dossier, "load")
def _fresh_event_list(dossier: Dossier, _context) -> None:
    # Loaded aggregates start with no pending events (dataclass __init__ is not called on load).
    dossier.events = []
