"""Decision 766's intake: components digitised, reused, from a national database; VNeID-verified

Dossiers filed before this revision count none (0, false): nobody said at their filing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTS = ("components_digitised", "components_reused", "components_national")


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (a NOT NULL column with a default needs no table rebuild): a
    # batch rebuild of ``dossiers`` on SQLite drops the table, which its referencing rows forbid.
    for name in COUNTS:
        op.add_column("dossiers", sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "dossiers", sa.Column("vneid_verified", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        for name in ("vneid_verified", *COUNTS):
            batch_op.drop_column(name)
