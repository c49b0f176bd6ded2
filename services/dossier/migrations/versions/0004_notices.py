"""notices on the dossier: what forms 02-05 say is domain state, not a copy of a request body

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: on SQLite a batch drops and recreates the table, which the
    # audit trail's and the hand-overs' foreign keys forbid.
    op.add_column("dossiers", sa.Column("notices", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    _backfill()


def _utc(value) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _backfill() -> None:
    """Dossiers given notices before this revision: their notices from the audit trail, in order.

    The audit rows keep each request body as it was sent (``items``, ``new_due_at``): this is the last
    place that reads those API field names, frozen as they were when this revision was written."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT dossier_code, at, action, reason, details FROM dossier_audit "
            "WHERE action IN ('request_supplement', 'refuse', 'apologize', 'stop') ORDER BY id"
        )
    ).all()
    notices: dict[str, list[dict]] = {}
    for row in rows:
        details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
        new_due_at = details.get("new_due_at") if row.action == "apologize" else None
        notices.setdefault(row.dossier_code, []).append(
            {
                "action": row.action,
                "issued_at": _utc(row.at).isoformat(),
                "reason": row.reason or "",
                "items": list(details.get("items") or []) if row.action == "request_supplement" else [],
                "new_due_at": _utc(new_due_at).isoformat() if new_due_at else None,
            }
        )
    for code, given in notices.items():
        connection.execute(
            sa.text("UPDATE dossiers SET notices = :notices WHERE code = :code"),
            {"notices": json.dumps(given, ensure_ascii=False), "code": code},
        )


def downgrade() -> None:
    op.execute("ALTER TABLE dossiers DROP COLUMN notices")  # SQLite 3.35+ and PostgreSQL alike
