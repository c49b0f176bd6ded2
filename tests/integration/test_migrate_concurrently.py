"""Two replicas migrating one PostgreSQL database at once: one waits for the other, both succeed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_migrations_on_postgresql(database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("the race only exists on a shared server database")
    config = tmp_path / "config.yml"
    config.write_text(f"DATABASE_URL: {database_url}\n")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.migrate", "dossier", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version_dossier")).all()
    engine.dispose()
    assert len(versions) == 1
