"""Fixtures shared by the integration and end-to-end tests: real databases, a real broker."""

from __future__ import annotations

import os
import shutil
import socket
import uuid

import pytest
import sqlalchemy as sa

from shared.auth import DEV_SECRET, mint
from shared.migrate import upgrade

# The tests run services in development mode (HS256 tokens minted here), as `make test` says too.
os.environ.setdefault("MOTCUA_ENV", "development")

POSTGRES_ADMIN_URL = os.environ.get("MOTCUA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = [d.strip() for d in os.environ.get("MOTCUA_TEST_DATABASES", "sqlite,postgresql").split(",")]


def pytest_collection_modifyitems(config, items):
    """Pair a module's variants with one database kind each (its ``DATABASE_FOR_VARIANT``: variant ->
    database), so that every variant and every database runs once instead of every combination. The
    end-to-end flows that start whole processes do this (the key store, the unit map): their variants do
    not touch the database, and every combination would add minutes to ``make test``.
    ``MOTCUA_TEST_ALL_PAIRS=1`` runs every combination; a variant whose database is not being tested
    (``MOTCUA_TEST_DATABASES``) runs on those that are."""
    if os.environ.get("MOTCUA_TEST_ALL_PAIRS"):
        return
    kept, dropped = [], []
    for item in items:
        pairs = getattr(item.module, "DATABASE_FOR_VARIANT", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        database = params.get("database_url")
        paired = [
            pairs[value] for value in params.values() if pairs and isinstance(value, str) and value in pairs
        ]
        if database and paired and paired[0] in DATABASES and paired[0] != database:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _postgres_database():
    name = f"motcua_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """An empty database of each kind the integration tests run against."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
    elif request.param == "postgresql":
        yield from _postgres_database()
    else:
        raise ValueError(f"unknown test database kind {request.param!r}")


@pytest.fixture
def dossier_database(database_url):
    upgrade("dossier", database_url)
    return database_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_settings(amqp_uri: str, database_url: str, **overrides) -> dict:
    """What every service's configuration holds in a test: a free port, the development key, the default
    unit map, an outbox relay that polls often, few delivery attempts; ``overrides`` on top."""
    return {
        "AMQP_URI": amqp_uri,
        "DATABASE_URL": database_url,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "JWT_SECRET": DEV_SECRET,
        "UNITS_FILE": "",
        "OUTBOX_POLL_SECONDS": 0.2,
        "OUTBOX_BATCH_SIZE": 200,
        "EVENT_MAX_ATTEMPTS": 3,
        "max_workers": 10,
        **overrides,
    }


def metrics_settings(amqp_uri: str, database_url: str, **overrides) -> dict:
    """The metrics service's configuration for a test, on a free port."""
    return service_settings(
        amqp_uri,
        database_url,
        METRICS_UNIT_DEPTH=2,
        SATISFACTION_WINDOW_DAYS=30,
        METRICS_DUE_SOON_HOURS=24,
        **overrides,
    )


@pytest.fixture
def service_config(rabbit_config, dossier_database):
    return service_settings(rabbit_config["AMQP_URI"], dossier_database, MOTCUA_ENV="development")


def bearer(role: str, *units: str, sub: str | None = None) -> dict[str, str]:
    token = mint(DEV_SECRET, sub=sub or f"{role}@{'+'.join(units)}", roles=[role], units=units)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's promtool: missing, it fails the run on CI and skips the test elsewhere."""
    path = shutil.which("promtool")
    if path is None:
        message = "install Debian's prometheus package for promtool"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
