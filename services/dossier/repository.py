"""Storing and loading dossiers, and allocating their codes, inside a unit of work."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.dossier.domain.model import Dossier
from services.dossier.models import dossier_code_counters


def next_dossier_code(session: Session, *, unit: str, identifier: str, day: date) -> str:
    """Mã hồ sơ ``{agency identifier}-{YYMMDD}-{NNNN}``: a per-unit daily sequence.

    One atomic upsert per receipt: concurrent receipts at one desk serialise on the counter row,
    so no two dossiers ever share a code.
    """
    stamp = day.strftime("%y%m%d")
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(dossier_code_counters)
    statement = (
        insert.values(unit=unit, day=stamp, last=1)
        .on_conflict_do_update(
            index_elements=["unit", "day"], set_={"last": dossier_code_counters.c.last + 1}
        )
        .returning(dossier_code_counters.c.last)
    )
    number = session.execute(statement).scalar_one()
    return f"{identifier}-{stamp}-{number:04d}"


def get(session: Session, code: str, *, for_update: bool = False) -> Dossier | None:
    query = sa.select(Dossier).where(Dossier.code == code)
    if for_update:
        # Later events of one dossier must enter the outbox after earlier ones commit.
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def add(session: Session, dossier: Dossier) -> None:
    session.add(dossier)
    session.flush()
