"""Decision 766/QĐ-TTg: what the digitisation and online groups count, per dossier

Components digitised at the desk, reused, or taken from a national database (counts); an account
verified with VNeID, fees paid and paid online, the result issued digitally (flags). Facts folded
before this migration have zeros until ``python -m services.metrics.rebuild`` replays the event log
(the events published before event contract 3.2 carry none of it anyway).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COUNTS = ("components_digitised", "components_reused", "components_national")
FLAGS = ("vneid_verified", "paid", "paid_online", "result_digital")


def upgrade() -> None:
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        for name in COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        for name in FLAGS:
            batch_op.add_column(sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        for name in (*FLAGS, *COUNTS):
            batch_op.drop_column(name)
