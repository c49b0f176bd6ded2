"""Dossier codes (mã hồ sơ): a daily counter per agency identifier, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.dossier import service_layer
from services.dossier.dependencies import _shipped_catalogue, lifecycle_settings
from services.dossier.models import dossier_code_counters, pipeline
from services.dossier.repository import next_dossier_code
from shared.auth import Principal
from shared.db import create_engine
from shared.uow import UnitOfWorkFactory
from tests.support.fakes import CALENDAR, MONDAY, UNIT, UNITS

pytestmark = pytest.mark.integration
DAY = date(2026, 12, 1)


@pytest.fixture
def session(dossier_database):
    engine = sa.create_engine(dossier_database)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_two_units_with_one_identifier_never_share_a_code(session):
    # the unit map refuses this; the counter does not rely on it: it is keyed by the identifier
    first = next_dossier_code(session, unit="A", identifier="000.00.21.H29", day=DAY)
    second = next_dossier_code(session, unit="B", identifier="000.00.21.H29", day=DAY)
    assert (first, second) == ("000.00.21.H29-261201-0001", "000.00.21.H29-261201-0002")
    # another identifier and another day count on their own
    assert next_dossier_code(session, unit="A", identifier="26740", day=DAY) == "26740-261201-0001"
    assert (
        next_dossier_code(session, unit="A", identifier="26740", day=date(2026, 12, 2)) == "26740-261202-0001"
    )


def test_after_the_9999th_dossier_of_a_day_the_number_grows_a_digit(session):
    session.execute(sa.insert(dossier_code_counters).values(unit="26740", day="261201", last=9998))
    assert next_dossier_code(session, unit="26740", identifier="26740", day=DAY) == "26740-261201-9999"
    # the 10,000th: still unique, no longer the portal's four digits (docs/how-it-works.md)
    assert next_dossier_code(session, unit="26740", identifier="26740", day=DAY) == "26740-261201-10000"


def test_a_filing_takes_the_code_counter_last_so_its_lock_is_held_only_for_the_inserts(dossier_database):
    # The counter row stays locked from its upsert to the commit, and every filing of the unit's day
    # waits for it: after it, a receipt may only insert what it must (the dossier, its audit line, its
    # hand-overs, its events) and commit — no read, no update, no other work on the database.
    engine = create_engine(dossier_database)
    statements: list[list[str]] = []
    executions: list[str] = []  # what went to the database in one call (a round trip)

    def seen(_connection, _cursor, text, *_args) -> None:
        executions.append(text)
        # On PostgreSQL the writes after the counter go as one multi-statement query (shared/deferred.py).
        statements.extend(part.split()[:3] for part in text.split(";\n"))

    sa.event.listen(engine, "before_cursor_execute", seen)
    office = service_layer.Office(
        units=UNITS,
        calendar=CALENDAR,
        catalogue=_shipped_catalogue(),
        settings=lifecycle_settings({}),
        clock=lambda: MONDAY,
    )
    uow = UnitOfWorkFactory(engine, pipeline, None, "")
    body = {
        "procedure_code": "1.001193",
        "receiving_unit": UNIT,
        "channel": "counter",
        "return_method": "counter",
        "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234"},
    }
    desk = Principal(sub="desk", roles=frozenset({"desk_officer"}), units=(UNIT,))
    try:
        with uow.transaction() as tx:
            dossier = service_layer.receive(service_layer.Receive(desk, body, "req-1"), tx, office)
    finally:
        engine.dispose()
    assert dossier.code.endswith(f"-{MONDAY:%y%m%d}-0001")
    counter = next(
        i for i, words in enumerate(statements) if words[:3] == ["INSERT", "INTO", "dossier_code_counters"]
    )
    after = [" ".join(words[:3]) for words in statements[counter + 1 :]]
    assert after[0] == "INSERT INTO dossiers"
    assert set(after) <= {
        "INSERT INTO dossiers",
        "INSERT INTO dossier_audit",
        "INSERT INTO dossier_handovers",
        "INSERT INTO dossier_outbox",
    }, after
    assert "INSERT INTO dossier_outbox" in after
    if engine.dialect.name == "postgresql":
        # Issue 23: nothing reads what those inserts return, so they cost one round trip together.
        assert len(executions) == 2, executions  # the counter's upsert, then every insert at once
