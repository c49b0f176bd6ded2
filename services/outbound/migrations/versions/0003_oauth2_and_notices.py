"""OAuth2 client credentials of a subscription's callback; notices to its contact

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 23:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oauth2_token_url", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("oauth2_client_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("oauth2_client_secret", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("oauth2_scope", sa.String(length=500), nullable=True))
    op.create_table(
        "outbound_contact_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("contact", sa.String(length=2000), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_contact_notices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_contact_notices_subscription", ["subscription_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_contact_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_contact_notices_subscription")
    op.drop_table("outbound_contact_notices")
    with op.batch_alter_table("outbound_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("oauth2_scope")
        batch_op.drop_column("oauth2_client_secret")
        batch_op.drop_column("oauth2_client_id")
        batch_op.drop_column("oauth2_token_url")
