"""the full lifecycle: registration, clock stops, decisions, step plan, hand-overs, audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

import os

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = shared.db.UTCDateTime()
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NEW_COLUMNS = (
    sa.Column("duration", sa.String(length=40), nullable=False, server_default="same_day"),
    sa.Column("online_level", sa.String(length=10), nullable=True),
    sa.Column("receiving_path", sa.String(length=200), nullable=False, server_default=""),
    sa.Column("handling_path", sa.String(length=200), nullable=False, server_default=""),
    sa.Column("created_at", UTC_DATETIME, nullable=True),
    sa.Column("submitted_by", sa.String(length=200), nullable=True),
    sa.Column("registered_at", UTC_DATETIME, nullable=True),
    sa.Column("original_due_at", UTC_DATETIME, nullable=True),
    sa.Column("clock_stopped_at", UTC_DATETIME, nullable=True),
    sa.Column("paused_seconds", sa.Float(), nullable=False, server_default="0"),
    sa.Column("supplement_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("appraisal_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("apology_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("decision", sa.String(length=10), nullable=True),
    sa.Column("decision_reason", sa.Text(), nullable=True),
    sa.Column("signed_at", UTC_DATETIME, nullable=True),
    sa.Column("stamped_at", UTC_DATETIME, nullable=True),
    sa.Column("resolved_at", UTC_DATETIME, nullable=True),
    sa.Column("returned_at", UTC_DATETIME, nullable=True),
    sa.Column("timeliness", sa.String(length=10), nullable=True),
    sa.Column("working_days", sa.Float(), nullable=True),
    sa.Column("plan", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("stage", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("watch_flags", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("watch_at", UTC_DATETIME, nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        for column in NEW_COLUMNS:
            batch_op.add_column(column.copy())
        # Registered (online, postal) dossiers have no filing time or appointment before receipt.
        batch_op.alter_column("received_at", existing_type=UTC_DATETIME, nullable=True)
        batch_op.alter_column("due_at", existing_type=UTC_DATETIME, nullable=True)

    _backfill()

    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        batch_op.alter_column("created_at", existing_type=UTC_DATETIME, nullable=False)
        batch_op.create_index("ix_dossiers_watch", ["status", "watch_at"], unique=False)
        batch_op.create_index(
            "ix_dossiers_receiving_path",
            ["receiving_path", "created_at"],
            unique=False,
            postgresql_ops={"receiving_path": "text_pattern_ops"},
        )
        batch_op.create_index(
            "ix_dossiers_handling_path",
            ["handling_path", "created_at"],
            unique=False,
            postgresql_ops={"handling_path": "text_pattern_ops"},
        )
        batch_op.create_index("ix_dossiers_submitted_by", ["submitted_by", "created_at"], unique=False)

    op.create_table(
        "dossier_handovers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("dossier_code", sa.String(length=60), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("from_unit", sa.String(length=40), nullable=False),
        sa.Column("to_unit", sa.String(length=40), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("step_name", sa.String(length=500), nullable=False),
        sa.Column("step_due_at", UTC_DATETIME, nullable=True),
        sa.Column("timeliness", sa.String(length=10), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["dossier_code"], ["dossiers.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dossier_handovers_dossier", "dossier_handovers", ["dossier_code", "id"])

    op.create_table(
        "dossier_audit",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("dossier_code", sa.String(length=60), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status_before", sa.SmallInteger(), nullable=True),
        sa.Column("status_after", sa.SmallInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dossier_code"], ["dossiers.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dossier_audit_dossier", "dossier_audit", ["dossier_code", "id"])
    _append_only("dossier_audit")


def _backfill() -> None:
    """Rows of 0001 were all received at the counter: derive what they lacked."""
    op.execute("UPDATE dossiers SET created_at = received_at, original_due_at = due_at")
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT code, procedure_code, procedure_version, receiving_unit, handling_unit FROM dossiers")
    ).all()
    if not rows:
        return
    # Imported here: a fresh database (the usual case) needs neither the unit map nor the catalogue.
    from services.dossier.catalogue import UnknownProcedure
    from services.dossier.catalogue_files import load_catalogue
    from shared.units import UnitRegistry, UnknownUnit

    units = UnitRegistry.from_settings(os.environ.get("UNITS_FILE") or None)
    catalogue = load_catalogue()
    for row in rows:
        values = {"code": row.code}
        try:
            values["receiving_path"] = units.routing_path(row.receiving_unit)
            values["handling_path"] = units.routing_path(row.handling_unit)
        except UnknownUnit:
            values["receiving_path"] = values["handling_path"] = row.receiving_unit
        try:
            procedure = catalogue.get_version(row.procedure_code, row.procedure_version)
            values["duration"], values["online_level"] = procedure.duration, procedure.online_level
        except UnknownProcedure:
            values["duration"], values["online_level"] = "same_day", None
        connection.execute(
            sa.text(
                "UPDATE dossiers SET receiving_path = :receiving_path, handling_path = :handling_path, "
                "duration = :duration, online_level = :online_level WHERE code = :code"
            ),
            values,
        )


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dossier_audit_append_only ON dossier_audit")
        op.execute("DROP FUNCTION IF EXISTS dossier_audit_append_only()")
    op.drop_index("ix_dossier_audit_dossier", table_name="dossier_audit")
    op.drop_table("dossier_audit")
    op.drop_index("ix_dossier_handovers_dossier", table_name="dossier_handovers")
    op.drop_table("dossier_handovers")
    # Registered dossiers cannot live in the 0001 shape.
    op.execute("DELETE FROM dossiers WHERE received_at IS NULL")
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        for name in ("ix_dossiers_submitted_by", "ix_dossiers_handling_path", "ix_dossiers_receiving_path"):
            batch_op.drop_index(name)
        batch_op.drop_index("ix_dossiers_watch")
        batch_op.alter_column("received_at", existing_type=UTC_DATETIME, nullable=False)
        batch_op.alter_column("due_at", existing_type=UTC_DATETIME, nullable=False)
        for column in reversed(NEW_COLUMNS):
            batch_op.drop_column(column.name)
