"""``make run REPLICAS=n`` (scripts/run.py): replicas share a database, so they run on PostgreSQL."""

from __future__ import annotations

import socket

import pytest

from scripts.run import RunError, answering, database_urls, replica_count

NAMES = ["dossier", "postal", "esign", "metrics"]


def test_one_process_per_service_keeps_the_embedded_defaults():
    assert replica_count({}) == 1
    assert database_urls(NAMES, 1, {"DOSSIER_DATABASE_URL": "sqlite:///data/dossier.sqlite3"}) == {}


def test_replicas_get_a_local_postgresql_database_per_service_unless_one_is_given():
    given = "postgresql://motcua@db.example:5432/dossier"
    urls = database_urls(NAMES, 2, {"DOSSIER_DATABASE_URL": given})
    assert urls == {
        "DOSSIER_DATABASE_URL": given,
        "POSTAL_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/motcua_run_postal",
        "ESIGN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/motcua_run_esign",
        "METRICS_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/motcua_run_metrics",
    }
    elsewhere = database_urls(["metrics"], 3, {"MOTCUA_RUN_POSTGRES": "postgresql://pg@10.0.0.5:6432/"})
    assert elsewhere == {"METRICS_DATABASE_URL": "postgresql://pg@10.0.0.5:6432/motcua_run_metrics"}


def test_replicas_on_sqlite_are_refused_in_one_line_naming_the_setting():
    with pytest.raises(RunError) as refused:
        database_urls(NAMES, 2, {"METRICS_DATABASE_URL": "sqlite:///data/metrics.sqlite3"})
    message = str(refused.value)
    assert "METRICS_DATABASE_URL" in message and "PostgreSQL" in message and "\n" not in message


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_replica_count_that_is_not_a_whole_number_of_processes_is_refused(value):
    with pytest.raises(RunError, match="REPLICAS"):
        replica_count({"MOTCUA_REPLICAS": value})
    assert replica_count({"MOTCUA_REPLICAS": "3"}) == 3


def test_a_port_something_listens_on_is_seen_as_taken():
    """SO_REUSEPORT would let a second `make run` join the first on its ports: it checks first."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert answering(f"http://127.0.0.1:{port}")
    assert not answering(f"http://127.0.0.1:{port}")
