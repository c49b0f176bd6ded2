"""The environment a service process gets in the end-to-end tests: the test's broker vhost and database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.auth import DEV_SECRET
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environment(rabbit_config, database_url):
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_POLL_SECONDS": "0.2",
    }
    env["DOSSIER_DATABASE_URL"] = database_url
    env["DOSSIER_ADDRESS"] = f"127.0.0.1:{free_port()}"
    return env
