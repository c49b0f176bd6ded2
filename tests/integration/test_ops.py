"""The operator's CLI (``python -m shared.ops``) against the real broker and real databases.

Dead letters are made the way production makes them: a consumer whose handler keeps failing. Unrouted
events are made by publishing what no queue is bound for. Each command's effect is checked on the
broker itself (queue depths, what a subscriber receives), not only on what the command prints.
"""

from __future__ import annotations

import io
import json
import time

import pytest
import requests
import sqlalchemy as sa

from services.dossier.service import DossierService
from shared import ops
from shared.consumer import event_consumer
from shared.db import add_pipeline_tables, create_engine
from shared.events import EXCHANGE, UNROUTED_QUEUE, Event
from shared.migrate import upgrade
from shared.outbox import OutboxRelay, record
from shared.uow import UnitOfWork
from tests.conftest import bearer
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber, depth, probe_event, publish, wait_for

pytestmark = pytest.mark.integration

QUEUE = "opsprobe.dossier-events"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, "opsprobe")
handled = sa.Table(
    "opsprobe_handled",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
)
BROKEN: set[str] = set()  # ids of events the handler cannot handle yet (a bug not fixed yet)


class OpsProbeService:
    name = "opsprobe"
    uow = UnitOfWork(pipeline, relay=False)

    @event_consumer(QUEUE, ["dossier.#"], verify=False)
    def on_event(self, event: Event):
        if event.id in BROKEN:
            raise RuntimeError(f"cannot handle {event.subject} yet")
        with self.uow.transaction() as tx:
            if not tx.first_delivery(event, QUEUE):
                return False
            tx.session.execute(handled.insert().values(event_id=event.id))
        return True


def run(*argv: str, uri: str, ask=lambda _prompt: "") -> str:
    out = io.StringIO()
    assert ops.main(["--amqp-uri", uri, *argv], out=out, ask=ask) == 0
    return out.getvalue()


@pytest.fixture
def consumer(rabbit_config, tmp_path, container_factory):
    url = f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    engine = create_engine(url)
    metadata.create_all(engine)
    config = {
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "DATABASE_URL": url,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "JWT_SECRET": "x" * 32,
        "OUTBOX_POLL_SECONDS": 1,
        "OUTBOX_BATCH_SIZE": 10,
        "EVENT_MAX_ATTEMPTS": 2,
        "EVENT_RETRY_DELAYS": "0.05",
    }
    container_factory(OpsProbeService, config).start()
    yield engine
    engine.dispose()


def handled_ids(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(handled.c.event_id)).scalars())


def test_dead_letters_listed_shown_requeued_and_purged(consumer, rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    dead = f"{QUEUE}.dead-letter"
    poison = [probe_event(n) for n in (1, 2, 3)]
    BROKEN.update(e.id for e in poison)
    publish(uri, *(e.to_json().encode() for e in poison), b"{not an event")
    assert wait_for(lambda: depth(uri, dead) == 4, timeout=20)

    listing = run("dead-letters", uri=uri)
    assert f"{dead}: 4 message(s)" in listing
    assert all(e.id in listing for e in poison)
    assert listing.count("attempts=2") == 3 and "RuntimeError: cannot handle D-1 yet" in listing
    assert "unparseable" in listing
    assert depth(uri, dead) == 4  # listing takes nothing away

    shown = json.loads(run("show", QUEUE, poison[0].id, uri=uri))
    assert shown["reason"] == "RuntimeError: cannot handle D-1 yet" and shown["attempts"] == 2
    assert shown["body"]["id"] == poison[0].id and shown["routing_key"] == "dossier.received.79.26740"

    BROKEN.clear()  # the fix is deployed
    assert run("requeue", QUEUE, "--id", poison[0].id, uri=uri) == f"requeued 1 message(s) from {dead}\n"
    assert wait_for(lambda: handled_ids(consumer) == {poison[0].id})
    assert depth(uri, dead) == 3

    assert "requeued 2 message(s)" in run("requeue", QUEUE, "--all", "--reason", "RuntimeError", uri=uri)
    assert wait_for(lambda: handled_ids(consumer) == {e.id for e in poison})
    assert depth(uri, dead) == 1  # the unparseable one did not match the filter

    assert run("purge", QUEUE, uri=uri, ask=lambda _prompt: "yes") == "not purged\n"
    assert depth(uri, dead) == 1
    assert run("purge", QUEUE, uri=uri, ask=lambda _prompt: dead) == f"purged 1 message(s) from {dead}\n"
    assert depth(uri, dead) == 0


def test_an_event_nobody_was_bound_for_is_kept_and_replayed(rabbit_config, service_config, container_factory):
    """Through the dossier service's relay: the receipt's event has no queue yet; a subscriber that binds
    later still gets it, once, after the operator replays the unrouted."""
    uri = rabbit_config["AMQP_URI"]
    alternate_exchange_in_force(uri)
    container_factory(DossierService, service_config).start()
    base = f"http://{service_config['WEB_SERVER_ADDRESS']}"
    body = {"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": "26740", "applicant": APPLICANT}
    created = requests.post(
        f"{base}/api/v1/dossiers", json=body, headers=bearer("desk_officer", "26740"), timeout=10
    )
    assert created.status_code == 201, created.text
    assert wait_for(lambda: depth(uri, UNROUTED_QUEUE) >= 1)
    kept = depth(uri, UNROUTED_QUEUE)

    subscriber = Subscriber(uri, "dossier.#")
    try:
        assert run("replay-unrouted", uri=uri) == f"replayed {kept} event(s); 0 in {UNROUTED_QUEUE} now\n"
        envelopes = {e["id"]: e for e in (json.loads(m.body) for m in subscriber.drain(expect=kept))}
    finally:
        subscriber.close()
    assert len(subscriber.messages) == kept == len(envelopes)
    assert {e["subject"] for e in envelopes.values()} == {created.json()["code"]}
    assert depth(uri, UNROUTED_QUEUE) == 0


def alternate_exchange_in_force(uri: str) -> None:
    """``broker-setup``, then wait until the broker applies the policy (it does so asynchronously)."""
    run("broker-setup", uri=uri)
    probe = probe_event(99).to_json().encode()
    assert wait_for(
        lambda: publish(uri, probe, routing_key="dossier.received.01") or depth(uri, UNROUTED_QUEUE)
    )
    run("purge", UNROUTED_QUEUE, "--yes", uri=uri)


def test_broker_setup_makes_the_unrouted_queue_the_alternate_exchange(rabbit_config):
    """Any publisher's unroutable event (not only our relay's) is kept once the policy is set; a replay
    while still nobody is bound keeps it."""
    uri = rabbit_config["AMQP_URI"]
    assert "alternate exchange egov.events.unrouted" in run("broker-setup", uri=uri)
    event = probe_event(1)
    # RabbitMQ applies a new policy asynchronously: publish until one copy is kept.
    assert wait_for(lambda: publish(uri, event.to_json().encode()) or depth(uri, UNROUTED_QUEUE) >= 1)
    kept = depth(uri, UNROUTED_QUEUE)
    assert run("replay-unrouted", uri=uri) == f"replayed {kept} event(s); {kept} in {UNROUTED_QUEUE} now\n"
    subscriber = Subscriber(uri, "dossier.received.#")
    try:
        run("replay-unrouted", uri=uri)
        messages = subscriber.drain(expect=kept)
    finally:
        subscriber.close()
    assert [json.loads(m.body)["id"] for m in messages] == [event.id] * kept
    assert messages[0].delivery_info["exchange"] == EXCHANGE
    assert depth(uri, UNROUTED_QUEUE) == 0


def test_outbox_backlog_and_relay_leader(database_url, rabbit_config):
    upgrade("dossier", database_url)
    from services.dossier.models import pipeline as dossier_pipeline

    engine = create_engine(database_url)
    with engine.begin() as connection:
        record(connection, dossier_pipeline.outbox, [probe_event(1), probe_event(2)])
    relay = OutboxRelay(engine, dossier_pipeline.outbox, rabbit_config["AMQP_URI"], service="dossier")
    try:
        assert relay._acquire_leadership()
        time.sleep(0.2)
        out = io.StringIO()
        status = ops.outbox_status("dossier", database_url, out)
    finally:
        relay.stop()
        engine.dispose()
    assert status["pending"] == 2 and status["oldest_pending_seconds"] >= 0
    if engine.dialect.name == "postgresql":
        assert status["relay_leader"].startswith("pid ")
    else:
        assert status["relay_leader"].startswith("no election")
    assert "dossier: 2 event(s) waiting" in out.getvalue()


def test_leaders_names_the_process_leading_each_elected_job(database_url):
    """`leaders metrics`: the SLA exporter's holder, by its session's application name; the relay none."""
    from services.metrics.dependencies import SLA_EXPORTER_LOCK
    from shared.leadership import Leadership

    named = {"connect_args": {"application_name": "metrics-7f9c"}} if "postgresql" in database_url else {}
    engine = sa.create_engine(database_url, **named)
    exporter = Leadership(engine, SLA_EXPORTER_LOCK, "SLA exporter of metrics")
    try:
        assert exporter.hold()
        out = io.StringIO()
        found = ops.leaders("metrics", database_url, out)
    finally:
        exporter.release()
        engine.dispose()
    if database_url.startswith("sqlite"):
        assert set(found.values()) == {"no election on SQLite: the one service process"}
        return
    assert found["SLA exporter"].startswith("pid ") and "(metrics-7f9c)" in found["SLA exporter"]
    assert found["outbox relay"].startswith("none")
    assert f"SLA exporter: {found['SLA exporter']}" in out.getvalue()


def test_rebuild_a_projection(database_url):
    upgrade("metrics", database_url)
    out = io.StringIO()
    assert ops.main(["rebuild", "metrics", "--database-url", database_url], out=out) == 0
    assert out.getvalue().startswith("metrics: projected 0 dossier(s)")
    assert ops.main(["rebuild", "dossier", "--database-url", database_url], out=io.StringIO()) == 1


def test_leaders_looks_only_at_the_services_own_database():
    """Advisory locks are per database, while pg_locks lists the whole server's: a replica of another
    environment on the same server holding the same job's key is not this database's leader."""
    from shared.leadership import Leadership, job_key
    from tests.conftest import DATABASES, _postgres_database

    if "postgresql" not in DATABASES:
        pytest.skip("PostgreSQL only: SQLite has no election")
    ours, theirs = _postgres_database(), _postgres_database()
    ours_url, theirs_url = next(ours), next(theirs)
    engine = sa.create_engine(theirs_url, connect_args={"application_name": "staging-dossier"})
    elsewhere = Leadership(engine, job_key("outbox relay", "dossier"), "outbox relay of dossier")
    try:
        assert elsewhere.hold()
        assert ops.leaders("dossier", theirs_url, io.StringIO())["outbox relay"].startswith("pid ")
        assert ops.leaders("dossier", ours_url, io.StringIO())["outbox relay"].startswith("none")
    finally:
        elsewhere.release()
        engine.dispose()
        for generator in (ours, theirs):
            generator.close()
