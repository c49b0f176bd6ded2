"""Each service's migrations build exactly the tables its models describe, on both databases."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.migrate import alembic_config, upgrade

pytestmark = pytest.mark.integration
SERVICES = sorted(p.parent.name for p in Path("services").glob("*/migrations"))


def _differences(url: str, metadata: sa.MetaData) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    # Index expressions and operator classes are compared loosely by alembic; tables and columns are not.
    return [
        d
        for d in diff
        if not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index"))
        and not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name.startswith("alembic_version"))
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models_and_go_down_and_up(service, database_url):
    models = importlib.import_module(f"services.{service}.models")
    upgrade(service, database_url)
    assert _differences(database_url, models.metadata) == []
    command.downgrade(alembic_config(service, database_url), "base")
    upgrade(service, database_url)
    assert _differences(database_url, models.metadata) == []
