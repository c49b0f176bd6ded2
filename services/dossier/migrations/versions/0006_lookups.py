"""the citizen's status lookup: the receipt's secret (as an HMAC) and the wrong guesses per code

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Dossiers filed before this revision have no row: no secret was printed on their receipt, so
    # they are looked up by the applicant's identity number (or the desk issues a secret).
    op.create_table(
        "dossier_lookups",
        sa.Column("code", sa.String(60), primary_key=True),
        sa.Column("secret_hmac", sa.String(64), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dossier_lookups")
