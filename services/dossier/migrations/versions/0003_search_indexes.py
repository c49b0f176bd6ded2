"""search indexes for a million dossiers: overdue by unit, a subtree's month, newest first

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = "status IN (2, 4, 6, 8)"  # OVERDUE_CANDIDATES when this revision was written


def upgrade() -> None:
    op.drop_index("ix_dossiers_status_due_at", table_name="dossiers")
    op.drop_index("ix_dossiers_watch", table_name="dossiers")
    op.create_index(
        "ix_dossiers_watch",
        "dossiers",
        ["watch_at"],
        postgresql_where=sa.text("watch_at IS NOT NULL"),
        sqlite_where=sa.text("watch_at IS NOT NULL"),
    )
    op.create_index(
        "ix_dossiers_received_at_paths",
        "dossiers",
        ["received_at"],
        postgresql_include=["receiving_path", "handling_path"],
    )
    op.create_index(
        "ix_dossiers_created_at_code", "dossiers", [sa.text("created_at DESC"), sa.text("code DESC")]
    )
    for column in ("receiving_path", "handling_path"):
        op.create_index(
            f"ix_dossiers_open_{column}",
            "dossiers",
            [column],
            postgresql_ops={column: "text_pattern_ops"},
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    for column in ("receiving_path", "handling_path"):
        op.drop_index(f"ix_dossiers_open_{column}", table_name="dossiers")
    op.drop_index("ix_dossiers_created_at_code", table_name="dossiers")
    op.drop_index("ix_dossiers_received_at_paths", table_name="dossiers")
    op.drop_index("ix_dossiers_watch", table_name="dossiers")
    op.create_index("ix_dossiers_watch", "dossiers", ["status", "watch_at"])
    op.create_index("ix_dossiers_status_due_at", "dossiers", ["status", "due_at"])
