"""attempts from the operator's reports, loss and cancel causes, redelivery cause, reason codes,
operator calls; a created shipment has no operator time yet

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 20:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("postal_shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_reports", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("loss_cause", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("compensation_vnd", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("redelivery_cause", sa.String(length=30), nullable=True))
    with op.batch_alter_table("postal_handover_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=40), nullable=True))
    with op.batch_alter_table("postal_returns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", shared.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "postal_operator_calls",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("shipment_id", sa.String(length=36), nullable=False),
        sa.Column("call", sa.String(length=20), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("done_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["shipment_id"], ["postal_shipments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shipment_id", "call", name="uq_postal_operator_calls"),
    )
    with op.batch_alter_table("postal_operator_calls", schema=None) as batch_op:
        batch_op.create_index("ix_postal_operator_calls_pending", ["done_at"], unique=False)
    # The order's time was this service's clock; a shipment's status time is the operator's only.
    op.execute("UPDATE postal_shipments SET status_at = NULL WHERE status = 'created'")


def downgrade() -> None:
    with op.batch_alter_table("postal_operator_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_postal_operator_calls_pending")
    op.drop_table("postal_operator_calls")
    with op.batch_alter_table("postal_returns", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
    with op.batch_alter_table("postal_handover_items", schema=None) as batch_op:
        batch_op.drop_column("reason_code")
    with op.batch_alter_table("postal_shipments", schema=None) as batch_op:
        batch_op.drop_column("redelivery_cause")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("compensation_vnd")
        batch_op.drop_column("loss_cause")
        batch_op.drop_column("attempt_reports")
