"""dossiers, code counters and the pipeline tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:14:37.107842
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
        "dossier_code_counters",
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=6), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unit", "day"),
    )
    op.create_table(
        "dossier_idempotency_keys",
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
        "dossier_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "dossier_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
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
    with op.batch_alter_table("dossier_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dossier_outbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "dossiers",
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("procedure_code", sa.String(length=40), nullable=False),
        sa.Column("procedure_version", sa.Integer(), nullable=False),
        sa.Column("procedure_field", sa.String(length=60), nullable=False),
        sa.Column("receiving_unit", sa.String(length=40), nullable=False),
        sa.Column("handling_unit", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("return_method", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(), nullable=False),
        sa.Column("due_at", shared.db.UTCDateTime(), nullable=False),
        sa.Column("applicant", sa.JSON(), nullable=False),
        sa.Column("event_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dossiers_receiving_unit_received_at",
            ["receiving_unit", "received_at"],
            unique=False,
        )
        batch_op.create_index("ix_dossiers_status_due_at", ["status", "due_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        batch_op.drop_index("ix_dossiers_status_due_at")
        batch_op.drop_index("ix_dossiers_receiving_unit_received_at")

    op.drop_table("dossiers")
    with op.batch_alter_table("dossier_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_dossier_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("dossier_outbox")
    op.drop_table("dossier_inbox")
    op.drop_table("dossier_idempotency_keys")
    op.drop_table("dossier_code_counters")
