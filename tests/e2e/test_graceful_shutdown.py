"""SIGTERM, as Kubernetes sends it before it stops a pod: the service stops taking new work, finishes
what it has in hand, settles it, and exits 0.

Each test holds a lock in the service's database so that a handler is provably mid-flight (it waits on
the lock), sends SIGTERM, then lets the handler go. Nothing may be lost or handled twice:
- an event being handled is acked by the process that handled it: after the exit its queue holds no
  message (an unacked one would be back in the queue, to be delivered again) and the projection
  counted the event once;
- an HTTP request being answered gets its answer, and what it wrote is there.
Real processes (``python -m shared.runner``), the real broker, PostgreSQL. Not SQLite: there a writer
waits for a lock inside sqlite3's C code, which holds the whole (eventlet) process, so no handler can be
mid-flight while the process takes SIGTERM; the scenario cannot be staged (it was tried: the result
depended on whether the handler had reached the lock before the signal).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import amqp
import pytest
import requests
import sqlalchemy as sa

from shared.broker import connect
from shared.events import Event
from tests.conftest import bearer, free_port
from tests.e2e.test_processes import start, wait_live
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.integration.test_metrics_service import Dossier
from tests.support.broker import publish, wait_for

pytestmark = pytest.mark.e2e
QUEUE = "metrics.dossier-events"


def skip_on_sqlite(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("a lock wait on SQLite holds the whole process: no handler is mid-flight at SIGTERM")


@contextlib.contextmanager
def write_lock(database_url: str, table: str) -> Iterator[None]:
    """Hold writers to ``table`` off until the block ends (SQLite: the whole database)."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(sa.text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()
    engine.dispose()


def queue_state(amqp_uri: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of ``queue``; an unacked message is ready again once its channel is
    gone."""
    connection = connect(amqp_uri)
    try:
        _, ready, consumers = connection.channel().queue_declare(queue, passive=True)
    except amqp.exceptions.NotFound:
        return 0, 0  # not declared yet
    finally:
        with contextlib.suppress(OSError, amqp.exceptions.AMQPError):
            connection.close()
    return ready, consumers


def waiting_on_a_lock(database_url: str) -> bool:
    """A session of the service waits on the test's lock: its handler is provably mid-flight."""
    statement = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return count(database_url, statement) > 0


def take_all(amqp_uri: str, queue: str) -> list[amqp.Message]:
    connection = connect(amqp_uri)
    channel = connection.channel()
    found = []
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        found.append(message)
    connection.close()
    return found


def count(database_url: str, statement: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(statement)).scalar_one()
    finally:
        engine.dispose()


def stopped(process, seconds: float = 30) -> str:
    """Wait for the exit; the process's output, for the assertion messages."""
    try:
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"still running {seconds} s after SIGTERM:\n{output}") from None
    return output


def test_an_event_in_flight_at_sigterm_is_handled_acked_once_and_not_delivered_again(
    environment, rabbit_config, database_url
):
    skip_on_sqlite(database_url)
    amqp_uri = rabbit_config["AMQP_URI"]
    environment["METRICS_DATABASE_URL"] = database_url
    environment["METRICS_ADDRESS"] = f"127.0.0.1:{free_port()}"
    now = datetime.now(UTC)
    first, second = (
        Dossier("26740", received_at=now, due_at=now + timedelta(days=5)).event("received", 2, now)
        for _ in range(2)
    )
    process = start("metrics", environment)
    try:
        wait_live(f"http://{environment['METRICS_ADDRESS']}", process)
        assert wait_for(lambda: queue_state(amqp_uri, QUEUE)[1] == 1), "the metrics service consumes"
        with write_lock(database_url, "metrics_inbox"):
            publish(amqp_uri, first.to_json())
            # Delivered, and its handler waits on the lock.
            assert wait_for(lambda: waiting_on_a_lock(database_url)), "the handler reached the lock"
            process.send_signal(signal.SIGTERM)
            if not database_url.startswith("sqlite"):  # SQLite's lock wait holds the whole process
                # Consuming stops at once: an event published now stays in the queue for another
                # replica, while the process still waits for the handler in flight.
                time.sleep(3)
                publish(amqp_uri, second.to_json())
                time.sleep(1)
                assert queue_state(amqp_uri, QUEUE)[0] == 1, "delivered to a process that is stopping:\n" + (
                    stopped(process) if process.poll() is not None else "(still running)"
                )
                assert process.poll() is None, "the process waits for the handler in flight"
            else:
                publish(amqp_uri, second.to_json())
        output = stopped(process)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
    # The first event was acked by the process that handled it; what is left in the queue is the
    # second alone (an unacked first would be back in the queue beside it).
    assert queue_state(amqp_uri, QUEUE) == (1, 0), output
    assert [Event.from_json(message.body).id for message in take_all(amqp_uri, QUEUE)] == [second.id]
    assert queue_state(amqp_uri, f"{QUEUE}.dead-letter")[0] == 0
    # Handled once; the second not yet.
    assert count(database_url, f"SELECT count(*) FROM metrics_inbox WHERE event_id = '{first.id}'") == 1
    assert count(database_url, f"SELECT count(*) FROM metrics_inbox WHERE event_id = '{second.id}'") == 0
    assert count(database_url, "SELECT count(*) FROM metrics_event_log") == 1


def test_a_request_in_flight_at_sigterm_gets_its_answer(environment, dossier_database):
    skip_on_sqlite(dossier_database)
    url = f"http://{environment['DOSSIER_ADDRESS']}"
    environment["DOSSIER_DATABASE_URL"] = dossier_database
    process = start("dossier", environment)
    answers: list[requests.Response | Exception] = []

    def file_dossier() -> None:
        try:
            answers.append(
                requests.post(
                    f"{url}/api/v1/dossiers",
                    headers=bearer("desk_officer", "26740"),
                    json={
                        "procedure_code": COMMUNE_PROCEDURE,
                        "receiving_unit": "26740",
                        "applicant": APPLICANT,
                    },
                    timeout=60,
                )
            )
        except Exception as exc:  # the assertion below reports it
            answers.append(exc)

    try:
        wait_live(url, process)
        client = threading.Thread(target=file_dossier)
        with write_lock(dossier_database, "dossiers"):
            client.start()
            assert wait_for(lambda: waiting_on_a_lock(dossier_database)), "the handler reached the lock"
            assert not answers
            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert process.poll() is None, "the process waits for the request in flight"
        client.join(timeout=60)
        output = stopped(process)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
    (answer,) = answers
    assert isinstance(answer, requests.Response), f"{answer!r}\n{output}"
    assert answer.status_code == 201, answer.text
    code = answer.json()["code"]
    assert count(dossier_database, f"SELECT count(*) FROM dossiers WHERE code = '{code}'") == 1
    # and its event is in the outbox, to be published by the next relay that runs
    assert count(dossier_database, f"SELECT count(*) FROM dossier_outbox WHERE subject = '{code}'") == 1
