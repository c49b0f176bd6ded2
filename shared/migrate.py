"""Database migrations, per service: ``python -m shared.migrate dossier [revision]``.

Each service keeps its alembic scripts in ``services/<name>/migrations`` and its own version table
(``alembic_version_<name>``), so services can share one database and still migrate independently.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shared.config import ConfigurationError, load_config
from shared.db import MAINTENANCE_TIMEOUT_SECONDS, create_engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str) -> Config:
    folder = ROOT / "services" / service / "migrations"
    if not folder.is_dir():
        raise ConfigurationError(f"service {service!r} has no migrations folder at {folder}")
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, database_url), revision)


def run_migrations(context, metadata: sa.MetaData, service: str) -> None:
    """The body of every service's ``migrations/env.py``.

    On PostgreSQL an advisory lock serialises concurrent runs (two replicas' init containers starting
    together): the second waits, then finds nothing left to do.
    """
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, pool_size=1, timeout=MAINTENANCE_TIMEOUT_SECONDS)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            key = zlib.crc32(f"motcua-migrate-{service}".encode())
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=f"alembic_version_{service}",
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply a service's database migrations.")
    parser.add_argument("service")
    parser.add_argument("revision", nargs="?", default="head")
    parser.add_argument("--config", help="config.yml (default services/<service>/config.yml)")
    args = parser.parse_args(argv)
    config_path = args.config or ROOT / "services" / args.service / "config.yml"
    url = load_config(config_path).get("DATABASE_URL")
    if not url:
        parser.error(f"{config_path}: DATABASE_URL is not set")
    upgrade(args.service, url, args.revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
