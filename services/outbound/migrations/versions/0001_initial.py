"""portal sync queue, dossiers and the pipeline tables

Revision ID: 0001
Revises:
Create Date: 2026-12-07 20:38:51.842226
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
        "outbound_idempotency_keys",
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key"),
    )
    op.create_table(
        "outbound_inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "outbound_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("cc", sa.JSON(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unroutable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbound_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_outbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "outbound_portal_dossiers",
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("receiving_unit", sa.String(length=40), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("facts_sequence", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("synced_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("parked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("parked_reason", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("outbound_portal_dossiers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_portal_dossiers_unit_received", ["receiving_unit", "received_at"], unique=False
        )

    op.create_table(
        "outbound_portal_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=60), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("enqueued_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("synced_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_portal_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_portal_queue_pending",
            ["subject", "id"],
            unique=False,
            postgresql_where=sa.text("synced_at IS NULL"),
            sqlite_where=sa.text("synced_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_portal_queue", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbound_portal_queue_pending",
            postgresql_where=sa.text("synced_at IS NULL"),
            sqlite_where=sa.text("synced_at IS NULL"),
        )

    op.drop_table("outbound_portal_queue")
    with op.batch_alter_table("outbound_portal_dossiers", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_portal_dossiers_unit_received")

    op.drop_table("outbound_portal_dossiers")
    with op.batch_alter_table("outbound_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbound_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbound_outbox")
    op.drop_table("outbound_inbox")
    op.drop_table("outbound_idempotency_keys")
