"""judge overdue against the original appointment: apologies counted, in-process index on original_due_at

An apology (Form 04) moves ``due_at`` but the dossier still counts as late (docs/domain.md §6), so the
overdue and due-soon figures read ``original_due_at``; the index the gauges scan follows. Facts
folded before this migration have ``apologies = 0`` until ``python -m services.metrics.rebuild``
(only the fallback judgement of ``resolved`` events without ``timeliness`` reads it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IN_PROCESS = "status IN (2, 4, 5, 6, 8) AND received_at IS NOT NULL"
INDEX = "ix_metrics_dossier_facts_in_process"


def _index(batch_op, due_column: str) -> None:
    batch_op.create_index(
        INDEX,
        ["receiving_unit", "procedure_field", due_column, "clock_stopped_at"],
        unique=False,
        postgresql_where=sa.text(IN_PROCESS),
        sqlite_where=sa.text(IN_PROCESS),
    )


def upgrade() -> None:
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("apologies", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_index(INDEX, postgresql_where=sa.text(IN_PROCESS), sqlite_where=sa.text(IN_PROCESS))
        _index(batch_op, "original_due_at")


def downgrade() -> None:
    with op.batch_alter_table("metrics_dossier_facts", schema=None) as batch_op:
        batch_op.drop_index(INDEX, postgresql_where=sa.text(IN_PROCESS), sqlite_where=sa.text(IN_PROCESS))
        _index(batch_op, "due_at")
        batch_op.drop_column("apologies")
