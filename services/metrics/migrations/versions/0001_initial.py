"""event log, dossier facts, totals, ratings and the pipeline tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:27:07.761580
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metrics_dossier_facts",
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("receiving_unit", sa.String(length=40), nullable=False),
        sa.Column("handling_unit", sa.String(length=40), nullable=False),
        sa.Column("procedure_code", sa.String(length=40), nullable=False),
        sa.Column("procedure_field", sa.String(length=60), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("return_method", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("online_level", sa.String(length=10), nullable=True),
        sa.Column("received_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("due_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("original_due_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("clock_stopped_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("timeliness", sa.String(length=10), nullable=True),
        sa.Column("working_days", sa.Float(), nullable=True),
        sa.Column("returned_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("returned_by", sa.String(length=10), nullable=True),
        sa.Column("withdrawn_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("supplements", sa.Integer(), nullable=False),
        sa.Column("clock_stops", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metrics_dossier_facts_in_process",
            ["receiving_unit", "procedure_field", "due_at", "clock_stopped_at"],
            unique=False,
            postgresql_where=sa.text("status IN (2, 4, 5, 6, 8) AND received_at IS NOT NULL"),
            sqlite_where=sa.text("status IN (2, 4, 5, 6, 8) AND received_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_metrics_dossier_facts_unit_received_on", ["receiving_unit", "received_on"], unique=False
        )

    op.create_table(
        "metrics_event_log",
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("time", shared.db.UTCDateTime(), nullable=False),
        sa.Column("unit_path", sa.String(length=255), nullable=False),
        sa.Column("handling_unit_path", sa.String(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("waiting", sa.Boolean(), nullable=False),
        sa.Column("logged_at", shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "sequence"),
    )
    with op.batch_alter_table("metrics_event_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metrics_event_log_waiting",
            ["subject", "sequence"],
            unique=False,
            postgresql_where=sa.text("waiting"),
            sqlite_where=sa.text("waiting"),
        )

    op.create_table(
        "metrics_idempotency_keys",
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key"),
    )
    op.create_table(
        "metrics_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "metrics_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("cc", sa.JSON(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(), nullable=True),
        sa.Column("unroutable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("metrics_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metrics_outbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "metrics_ratings",
        sa.Column("dossier_code", sa.String(length=60), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("rating", sa.String(length=20), nullable=False),
        sa.Column("rated_at", shared.db.UTCDateTime(), nullable=False),
        sa.Column("rated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("dossier_code"),
    )
    op.create_table(
        "metrics_totals",
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("procedure_field", sa.String(length=60), nullable=False),
        sa.Column("channel", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("resolved_early", sa.BigInteger(), nullable=False),
        sa.Column("resolved_on_time", sa.BigInteger(), nullable=False),
        sa.Column("resolved_late", sa.BigInteger(), nullable=False),
        sa.Column("resolution_count", sa.BigInteger(), nullable=False),
        sa.Column("resolution_microdays", sa.BigInteger(), nullable=False),
        sa.Column("resolution_le_1", sa.BigInteger(), nullable=False),
        sa.Column("resolution_le_3", sa.BigInteger(), nullable=False),
        sa.Column("resolution_le_5", sa.BigInteger(), nullable=False),
        sa.Column("resolution_le_10", sa.BigInteger(), nullable=False),
        sa.Column("resolution_le_20", sa.BigInteger(), nullable=False),
        sa.Column("returned_counter", sa.BigInteger(), nullable=False),
        sa.Column("returned_postal", sa.BigInteger(), nullable=False),
        sa.Column("supplements", sa.BigInteger(), nullable=False),
        sa.Column("rated_satisfied", sa.BigInteger(), nullable=False),
        sa.Column("rated_normal", sa.BigInteger(), nullable=False),
        sa.Column("rated_not_satisfied", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("unit", "procedure_field", "channel"),
    )


def downgrade() -> None:
    op.drop_table("metrics_totals")
    op.drop_table("metrics_ratings")
    with op.batch_alter_table("metrics_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_metrics_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("metrics_outbox")
    op.drop_table("metrics_inbox")
    op.drop_table("metrics_idempotency_keys")
    with op.batch_alter_table("metrics_event_log", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_metrics_event_log_waiting",
            postgresql_where=sa.text("waiting"),
            sqlite_where=sa.text("waiting"),
        )

    op.drop_table("metrics_event_log")
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        batch_op.drop_index("ix_metrics_dossier_facts_unit_received_on")
        batch_op.drop_index(
            "ix_metrics_dossier_facts_in_process",
            postgresql_where=sa.text("status IN (2, 4, 5, 6, 8) AND received_at IS NOT NULL"),
            sqlite_where=sa.text("status IN (2, 4, 5, 6, 8) AND received_at IS NOT NULL"),
        )

    op.drop_table("metrics_dossier_facts")
