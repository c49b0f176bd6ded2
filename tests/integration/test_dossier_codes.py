"""Dossier codes (mã hồ sơ): a daily counter per agency identifier, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.dossier.models import dossier_code_counters
from services.dossier.repository import next_dossier_code

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
    # the 10,000th: still unique, no longer the portal's four digits (README, "Dossier codes")
    assert next_dossier_code(session, unit="26740", identifier="26740", day=DAY) == "26740-261201-10000"
