"""the register per issuing unit and Vietnam-local year; the esign events' sequence per dossier

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 20:00:00

Existing requests keep the number they were given at opening, in the register of the year they were
numbered in (the UTC year then); each register's counter resumes after its highest number. Each
dossier's event count resumes after the events its requests already published.
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REQUESTS = "esign_signing_requests"


def upgrade() -> None:
    op.create_table(
        "esign_document_counters",
        sa.Column("issuing_unit", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issuing_unit", "year"),
    )
    op.create_table(
        "esign_event_sequences",
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )
    with op.batch_alter_table(REQUESTS, schema=None) as batch_op:
        batch_op.add_column(sa.Column("register_year", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("register_number", sa.Integer(), nullable=True))
        batch_op.alter_column("document_number", existing_type=sa.String(length=80), nullable=True)
        batch_op.drop_constraint("uq_esign_document_number", type_="unique")

    connection = op.get_bind()
    requests = sa.table(
        REQUESTS,
        sa.column("id", sa.String),
        sa.column("dossier_code", sa.String),
        sa.column("issuing_unit", sa.String),
        sa.column("document_number", sa.String),
        sa.column("created_at", shared.db.UTCDateTime(timezone=True)),
        sa.column("event_sequence", sa.Integer),
        sa.column("register_year", sa.Integer),
        sa.column("register_number", sa.Integer),
    )
    counters: dict[tuple[str, int], int] = {}
    sequences: dict[str, int] = {}
    rows = connection.execute(
        sa.select(
            requests.c.id,
            requests.c.dossier_code,
            requests.c.issuing_unit,
            requests.c.document_number,
            requests.c.created_at,
            requests.c.event_sequence,
        )
    ).all()
    for row in rows:
        sequences[row.dossier_code] = sequences.get(row.dossier_code, 0) + row.event_sequence
        head = (row.document_number or "").split("/", 1)[0]
        if not head.isdigit():
            # not a register's number (a downgrade's placeholder): numbered at its seal
            connection.execute(requests.update().where(requests.c.id == row.id).values(document_number=None))
            continue
        year, number = row.created_at.astimezone(UTC).year, int(head)
        connection.execute(
            requests.update()
            .where(requests.c.id == row.id)
            .values(register_year=year, register_number=number)
        )
        key = (row.issuing_unit, year)
        counters[key] = max(counters.get(key, 0), number)
    if counters:
        op.bulk_insert(
            sa.table(
                "esign_document_counters", sa.column("issuing_unit"), sa.column("year"), sa.column("last")
            ),
            [{"issuing_unit": unit, "year": year, "last": last} for (unit, year), last in counters.items()],
        )
    if sequences:
        op.bulk_insert(
            sa.table("esign_event_sequences", sa.column("subject"), sa.column("last")),
            [{"subject": subject, "last": last} for subject, last in sequences.items() if last],
        )

    with op.batch_alter_table(REQUESTS, schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_esign_register_number", ["issuing_unit", "register_year", "register_number"]
        )
        batch_op.drop_column("event_sequence")


def downgrade() -> None:
    with op.batch_alter_table(REQUESTS, schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_sequence", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_esign_register_number", type_="unique")
    # A request not yet issued has no number; the old table required one.
    op.execute(f"UPDATE {REQUESTS} SET document_number = 'unnumbered-' || id WHERE document_number IS NULL")
    with op.batch_alter_table(REQUESTS, schema=None) as batch_op:
        batch_op.alter_column("document_number", existing_type=sa.String(length=80), nullable=False)
        batch_op.create_unique_constraint("uq_esign_document_number", ["issuing_unit", "document_number"])
        batch_op.drop_column("register_number")
        batch_op.drop_column("register_year")
    op.drop_table("esign_event_sequences")
    op.drop_table("esign_document_counters")
