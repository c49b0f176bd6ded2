"""subscriptions, deliveries and their attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 20:49:47.810564
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("enqueued_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("delivered_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_outbound_deliveries_event"),
    )
    with op.batch_alter_table("outbound_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_deliveries_pending",
            ["subscription_id", "subject", "sequence"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.create_table(
        "outbound_delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_delivery_attempts_delivery_id"), ["delivery_id"], unique=False
        )

    op.create_table(
        "outbound_subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("unit_path", sa.String(length=255), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("procedure", sa.String(length=40), nullable=True),
        sa.Column("field", sa.String(length=60), nullable=True),
        sa.Column("auth_header", sa.String(length=2000), nullable=True),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("contact", sa.String(length=254), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_subscriptions_owner", ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_subscriptions_owner")

    op.drop_table("outbound_subscriptions")
    with op.batch_alter_table("outbound_delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_delivery_attempts_delivery_id"))

    op.drop_table("outbound_delivery_attempts")
    with op.batch_alter_table("outbound_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbound_deliveries_pending",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.drop_table("outbound_deliveries")
