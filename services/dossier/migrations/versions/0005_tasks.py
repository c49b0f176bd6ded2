"""the desk's open tasks on a dossier: a delivery of the result that failed must be answered

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, as 0004: a batch copy on SQLite would break the foreign keys to dossiers.
    op.add_column("dossiers", sa.Column("tasks", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    _backfill()


def _backfill() -> None:
    """Results sent back to the desk before this revision and still not returned (status 9): the task
    their ``returned_to_sender`` audit line stands for, the last one per dossier."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT a.dossier_code, a.at, a.details FROM dossier_audit a "
            "JOIN dossiers d ON d.code = a.dossier_code "
            "WHERE a.action = 'postal_returned_to_sender' AND d.status = 9 ORDER BY a.id"
        )
    ).all()
    tasks: dict[str, dict] = {}
    for row in rows:
        details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
        at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(str(row.at))
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        tasks[row.dossier_code] = {
            "kind": "return_result",
            "cause": "returned_to_sender",
            "since": at.isoformat(),
            "shipment_id": details.get("shipment_id", ""),
        }
    for code, task in tasks.items():
        connection.execute(
            sa.text("UPDATE dossiers SET tasks = :tasks WHERE code = :code"),
            {"tasks": json.dumps([task]), "code": code},
        )


def downgrade() -> None:
    op.execute("ALTER TABLE dossiers DROP COLUMN tasks")  # SQLite 3.35+ and PostgreSQL alike
