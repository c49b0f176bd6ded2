"""The dossier service's tables (it owns them; no other service reads them) and their mapping
onto the plain domain classes of :mod:`services.dossier.domain.model`."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import registry

from services.dossier.domain.model import Action, Dossier, Notice, PlanStep, Task
from shared.db import BigId, UTCDateTime, add_pipeline_tables
from shared.vocabulary import OVERDUE_CANDIDATES, Channel, ReturnMethod, Status

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


class PlanType(sa.types.TypeDecorator):
    """The dossier's step plan as JSON; the domain replaces the list on every change (never mutates)."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return []
        return [
            {
                "code": step.code,
                "name": step.name,
                "agency": step.agency,
                "allotment": step.allotment,
                "stage": step.stage,
                "due_at": step.due_at.isoformat() if step.due_at else None,
            }
            for step in value
        ]

    def process_result_value(self, value, dialect):
        return [
            PlanStep(**{**item, "due_at": datetime.fromisoformat(item["due_at"]) if item["due_at"] else None})
            for item in value or []
        ]


class NoticesType(sa.types.TypeDecorator):
    """The notices a dossier was given (forms 02-05) as JSON; replaced on every change, never mutated."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return [
            {
                "action": notice.action.value,
                "issued_at": notice.issued_at.isoformat(),
                "reason": notice.reason,
                "items": list(notice.items),
                "new_due_at": notice.new_due_at.isoformat() if notice.new_due_at else None,
            }
            for notice in value or []
        ]

    def process_result_value(self, value, dialect):
        return [
            Notice(
                action=Action(item["action"]),
                issued_at=datetime.fromisoformat(item["issued_at"]),
                reason=item["reason"],
                items=tuple(item.get("items") or ()),
                new_due_at=datetime.fromisoformat(item["new_due_at"]) if item.get("new_due_at") else None,
            )
            for item in value or []
        ]


class TasksType(sa.types.TypeDecorator):
    """The desk's open tasks on a dossier as JSON; replaced on every change, never mutated."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return [
            {"kind": t.kind, "cause": t.cause, "since": t.since.isoformat(), "shipment_id": t.shipment_id}
            for t in value or []
        ]

    def process_result_value(self, value, dialect):
        return [Task(**{**item, "since": datetime.fromisoformat(item["since"])}) for item in value or []]


# The statuses in which a dossier can be overdue (the overdue search's partial indexes).
_OPEN = ", ".join(str(int(status)) for status in sorted(OVERDUE_CANDIDATES))

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("code", sa.String(60), primary_key=True),
    sa.Column("procedure_code", sa.String(40), nullable=False),
    sa.Column("procedure_version", sa.Integer, nullable=False),
    sa.Column("procedure_field", sa.String(60), nullable=False),
    sa.Column("duration", sa.String(40), nullable=False),
    sa.Column("online_level", sa.String(10), nullable=True),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("handling_unit", sa.String(40), nullable=False),
    # Dot-joined unit paths (``79.26734``): jurisdiction filters become index-friendly prefix matches.
    sa.Column("receiving_path", sa.String(200), nullable=False),
    sa.Column("handling_path", sa.String(200), nullable=False),
    sa.Column("channel", IntEnumType(Channel), nullable=False),
    sa.Column("return_method", IntEnumType(ReturnMethod), nullable=False),
    sa.Column("status", IntEnumType(Status), nullable=False),
    sa.Column("applicant", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("submitted_by", sa.String(200), nullable=True),
    # Decision 766's intake counts and flag (docs/domain.md §12).
    sa.Column("components_digitised", sa.Integer, nullable=False, server_default="0"),
    sa.Column("components_reused", sa.Integer, nullable=False, server_default="0"),
    sa.Column("components_national", sa.Integer, nullable=False, server_default="0"),
    sa.Column("vneid_verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("registered_at", UTCDateTime, nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("original_due_at", UTCDateTime, nullable=True),
    sa.Column("clock_stopped_at", UTCDateTime, nullable=True),
    sa.Column("paused_seconds", sa.Float, nullable=False),
    sa.Column("supplement_count", sa.Integer, nullable=False),
    sa.Column("appraisal_count", sa.Integer, nullable=False),
    sa.Column("apology_count", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(10), nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("signed_at", UTCDateTime, nullable=True),
    sa.Column("stamped_at", UTCDateTime, nullable=True),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("returned_at", UTCDateTime, nullable=True),
    sa.Column("timeliness", sa.String(10), nullable=True),
    sa.Column("working_days", sa.Float, nullable=True),
    sa.Column("plan", PlanType, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("watch_flags", sa.JSON, nullable=False),
    sa.Column("notices", NoticesType, nullable=False),
    sa.Column("tasks", TasksType, nullable=False),
    # When the overdue watch next has something to say; NULL when the clock does not run.
    sa.Column("watch_at", UTCDateTime, nullable=True),
    sa.Column("event_sequence", sa.Integer, nullable=False),
    sa.Index("ix_dossiers_receiving_unit_received_at", "receiving_unit", "received_at"),
    # watch_at is set only while the clock runs: a partial index keeps the watch's scan small and
    # leaves no index led by ``status`` for the planner to AND into selective searches.
    sa.Index(
        "ix_dossiers_watch",
        "watch_at",
        postgresql_where=sa.text("watch_at IS NOT NULL"),
        sqlite_where=sa.text("watch_at IS NOT NULL"),
    ),
    # "This month in my subtree": an index-only count on PostgreSQL.
    sa.Index(
        "ix_dossiers_received_at_paths",
        "received_at",
        postgresql_include=["receiving_path", "handling_path"],
    ),
    # List pages, newest first.
    sa.Index("ix_dossiers_created_at_code", sa.text("created_at DESC"), sa.text("code DESC")),
    # "Overdue in my unit": only dossiers that can be overdue, by unit path.
    sa.Index(
        "ix_dossiers_open_receiving_path",
        "receiving_path",
        postgresql_ops={"receiving_path": "text_pattern_ops"},
        postgresql_where=sa.text(f"status IN ({_OPEN})"),
        sqlite_where=sa.text(f"status IN ({_OPEN})"),
    ),
    sa.Index(
        "ix_dossiers_open_handling_path",
        "handling_path",
        postgresql_ops={"handling_path": "text_pattern_ops"},
        postgresql_where=sa.text(f"status IN ({_OPEN})"),
        sqlite_where=sa.text(f"status IN ({_OPEN})"),
    ),
    sa.Index(
        "ix_dossiers_receiving_path",
        "receiving_path",
        "created_at",
        postgresql_ops={"receiving_path": "text_pattern_ops"},
    ),
    sa.Index(
        "ix_dossiers_handling_path",
        "handling_path",
        "created_at",
        postgresql_ops={"handling_path": "text_pattern_ops"},
    ),
    sa.Index("ix_dossiers_submitted_by", "submitted_by", "created_at"),
)

# Mã hồ sơ: a daily counter per agency identifier (the one in the code; the column is named ``unit``
# for history), incremented atomically inside the receipt's transaction.
dossier_code_counters = sa.Table(
    "dossier_code_counters",
    metadata,
    sa.Column("unit", sa.String(40), primary_key=True),
    sa.Column("day", sa.String(6), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

# Phiếu kiểm soát quá trình giải quyết hồ sơ: one row per hand-over, written once.
dossier_handovers = sa.Table(
    "dossier_handovers",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("dossier_code", sa.String(60), sa.ForeignKey("dossiers.code"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("from_unit", sa.String(40), nullable=False),
    sa.Column("to_unit", sa.String(40), nullable=True),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("step", sa.String(20), nullable=False),
    sa.Column("step_name", sa.String(500), nullable=False),
    sa.Column("step_due_at", UTCDateTime, nullable=True),
    sa.Column("timeliness", sa.String(10), nullable=True),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Index("ix_dossier_handovers_dossier", "dossier_code", "id"),
)

# The audit trail: who (token sub and roles), what, when, why, status before → after. Append-only:
# the migration adds triggers that refuse UPDATE and DELETE.
dossier_audit = sa.Table(
    "dossier_audit",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("dossier_code", sa.String(60), sa.ForeignKey("dossiers.code"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("status_before", sa.SmallInteger, nullable=True),
    sa.Column("status_after", sa.SmallInteger, nullable=False),
    sa.Column("request_id", sa.String(100), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_dossier_audit_dossier", "dossier_code", "id"),
)

# Tra cứu hồ sơ: what proves the right to look a dossier up (the receipt's secret, as an HMAC only) and
# the wrong guesses made for a code. Keyed by the code as typed, with no foreign key: a code with no
# dossier counts its guesses and locks out the same way, so the answers cannot tell the two apart.
dossier_lookups = sa.Table(
    "dossier_lookups",
    metadata,
    sa.Column("code", sa.String(60), primary_key=True),
    sa.Column("secret_hmac", sa.String(64), nullable=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", UTCDateTime, nullable=True),
)

mapper_registry = registry(metadata=metadata)


def start_mappers() -> None:
    """Map the plain Dossier onto its table, once per process. The repository calls it: importing the
    domain, or this module, changes no class (cosmicpython's ``start_mappers``)."""
    if any(mapper.class_ is Dossier for mapper in mapper_registry.mappers):
        return
    mapper_registry.map_imperatively(Dossier, dossiers)
    event.listen(Dossier, "load", _fresh_pending_lists)


def _fresh_pending_lists(dossier: Dossier, _context) -> None:
    # Loaded aggregates start with nothing pending (dataclass __init__ is not called on load).
    dossier.events = []
    dossier.handovers = []
