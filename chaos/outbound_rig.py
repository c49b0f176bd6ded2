"""The services behind chaos/outbound.py's scenarios, in this process: the dossier and outbound services
(nameko containers on the given broker and database), the national portal simulator (its own process)
behind a fault proxy, and local subscribers. ``python -m chaos.outbound_rig`` runs both scenarios with
the issue's durations (``make chaos``); the tests build the same rigs."""

from __future__ import annotations

if __name__ == "__main__":  # nameko containers run here: eventlet patches before any other import
    import eventlet

    eventlet.monkey_patch()

import argparse  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import requests  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402

from chaos.outbound import (  # noqa: E402
    HEADER,
    PortalRig,
    SubscriberRig,
    portal_outage,
    simulated_clock,
    subscriber_outage,
)
from chaos.proxy import FaultProxy  # noqa: E402
from services.dossier.domain.events import EVENTS  # noqa: E402
from services.dossier.events import envelope  # noqa: E402
from shared import clock  # noqa: E402
from shared.auth import DEV_SECRET, mint  # noqa: E402
from shared.broker import ConfirmingPublisher, Outgoing  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from shared.units import UnitRegistry  # noqa: E402
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts  # noqa: E402
from tests.support.portal import portal_simulator  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

PROVINCE, DESK, PROCEDURE = "79", "26740", "1.012767"
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079090001234", "phone": "0901234567"}


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _bearer(role: str, unit: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(DEV_SECRET, sub=f'{role}@{unit}', roles=[role], units=[unit])}"}


def _settings(amqp_uri: str, database_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "AMQP_URI": amqp_uri,
        "DATABASE_URL": database_url,
        "WEB_SERVER_ADDRESS": _free_address(),
        "JWT_SECRET": DEV_SECRET,
        "UNITS_FILE": "",
        "MOTCUA_ENV": "development",
        "OUTBOX_POLL_SECONDS": 0.2,
        "OUTBOX_BATCH_SIZE": 200,
        "EVENT_MAX_ATTEMPTS": 3,
        "max_workers": 10,
        **overrides,
    }


@contextmanager
def _running(service: type, config: dict[str, Any]) -> Iterator[str]:
    container = ServiceContainer(service, config)
    container.start()
    try:
        yield f"http://{config['WEB_SERVER_ADDRESS']}"
    finally:
        container.stop()


@contextmanager
def portal_rig(
    amqp_uri: str, database_url: str, advance: Callable[[timedelta], None], **overrides: Any
) -> Iterator[PortalRig]:
    """The dossier service files at a desk of province 79; the outbound service syncs to the simulator
    through a proxy the scenario cuts. Each failed sync waits a minute of the (simulated) clock, and
    a dossier is parked only after 60 tries: a ten-minute outage never parks one."""
    from services.dossier.service import DossierService
    from services.outbound.service import OutboundService

    upgrade("dossier", database_url)
    upgrade("outbound", database_url)
    with portal_simulator(hang_seconds=2, slow_seconds=0.2) as portal:
        target = urlsplit(portal.url)
        proxy = FaultProxy(target.hostname, target.port)
        dossier_config = _settings(amqp_uri, database_url)
        with _running(DossierService, dossier_config) as dossier_url:
            outbound_config = _settings(
                amqp_uri,
                database_url,
                PORTAL_URL=f"http://127.0.0.1:{proxy.port}",
                PORTAL_TIMEOUT_SECONDS=2,
                PORTAL_HTTP_RETRIES=0,
                PORTAL_RETRY_DELAYS="60",
                PORTAL_MAX_ATTEMPTS=60,
                PORTAL_SYNC_SECONDS=0.2,
                PORTAL_GAP_SECONDS=5,
                PORTAL_SYNC_UNITS=PROVINCE,
                DOSSIER_URL=dossier_url,
                **overrides,
            )
            desk = _bearer("desk_officer", DESK)

            def file() -> str:
                body = {"procedure_code": PROCEDURE, "receiving_unit": DESK, "applicant": APPLICANT}
                made = requests.post(f"{dossier_url}/api/v1/dossiers", json=body, headers=desk, timeout=20)
                made.raise_for_status()
                code = made.json()["code"]
                started = requests.post(
                    f"{dossier_url}/api/v1/dossiers/{code}/actions/start_processing",
                    json={},
                    headers=desk,
                    timeout=20,
                )
                started.raise_for_status()
                return code

            try:
                with _running(OutboundService, outbound_config):
                    yield PortalRig(file=file, received=portal.received, proxy=proxy, advance=advance)
            finally:
                proxy.close()


@contextmanager
def subscriber_rig(
    amqp_uri: str, database_url: str, advance: Callable[[timedelta], None], **overrides: Any
) -> Iterator[SubscriberRig]:
    """The outbound service with the production retry schedule (25·4ⁿ s, 7 tries) on the simulated
    clock; two subscribers of one commune's events."""
    from services.outbound.service import OutboundService

    upgrade("outbound", database_url)
    config = _settings(
        amqp_uri,
        database_url,
        PORTAL_URL="http://127.0.0.1:9",
        DOSSIER_URL="http://127.0.0.1:9",
        PORTAL_SYNC_SECONDS=3600,
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        WEBHOOK_TIMEOUT_SECONDS=2,
        WEBHOOK_POLL_SECONDS=0.1,
        **overrides,
    )
    registry = UnitRegistry.default()
    commune = registry.children(PROVINCE)[0].code
    down, healthy = Receiver(), Receiver()
    try:
        with _running(OutboundService, config) as base:
            for receiver in (down, healthy):
                made = requests.post(
                    f"{base}/api/v1/subscriptions",
                    json={"callback_url": receiver.url, "unit": commune},
                    headers=_bearer("subscriber", commune),
                    timeout=20,
                )
                made.raise_for_status()

            def publish(dossiers: int) -> dict[str, list[str]]:
                published: dict[str, list[str]] = {}
                events = []
                for _ in range(dossiers):
                    life = _life(registry, commune)
                    published[life[0].subject] = [e.id for e in life]
                    events += life
                _publish(amqp_uri, events)
                return published

            yield SubscriberRig(publish=publish, down=down, healthy=healthy, advance=advance)
    finally:
        down.close()
        healthy.close()


EVENT_CLASSES = {event.name: event for event in EVENTS}


def _life(registry: UnitRegistry, unit: str) -> list:
    """A dossier's received, processing_started and stopped events, as the dossier service publishes them."""
    code, now = f"{unit}-{uuid.uuid4().hex[:10]}", clock.now()
    facts = {
        "code": code,
        "procedure_code": PROCEDURE,
        "procedure_version": 1,
        "procedure_field": "civil_status",
        "receiving_unit": unit,
        "handling_unit": unit,
        "channel": Channel.COUNTER,
        "return_method": ReturnMethod.COUNTER,
        "online_level": None,
        "received_at": now,
        "due_at": now + timedelta(days=3),
        "original_due_at": now + timedelta(days=3),
    }
    path = registry.routing_path(unit)
    steps = (
        ("received", 2, {}),
        ("processing_started", 4, {"step": "appraise"}),
        ("stopped", 8, {"reason": "other"}),
    )
    return [
        envelope(
            EVENT_CLASSES[name](
                facts=StatusFacts(**facts, status=Status(status), occurred_at=datetime.now(UTC)), **extra
            ),
            path,
            path,
            sequence,
        )
        for sequence, (name, status, extra) in enumerate(steps, start=1)
    ]


def _publish(amqp_uri: str, events: list) -> None:
    publisher = ConfirmingPublisher(amqp_uri)
    try:
        outcomes = publisher.publish(
            [
                Outgoing(
                    message_id=e.id,
                    event_type=e.type,
                    routing_key=e.routing_key,
                    body=e.to_json().encode(),
                    cc=e.cc,
                )
                for e in events
            ]
        )
    finally:
        publisher.close()
    if not all(o.confirmed and not o.unroutable for o in outcomes):
        raise RuntimeError("the broker did not confirm every event")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The outbound service's chaos rows: the portal and a subscriber down."
    )
    parser.add_argument("--portal-minutes", type=float, default=10)
    parser.add_argument("--subscriber-minutes", type=float, default=60)
    parser.add_argument("--dossiers", type=int, default=8)
    parser.add_argument("--database-url", help="default: a SQLite file of the run's own")
    args = parser.parse_args(argv)
    from chaos.run import Settings, Vhost

    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="motcua-chaos-outbound-"))
    print(f"chaos: databases in {workdir}", file=sys.stderr)
    vhost = Vhost(Settings())  # a throw-away vhost on the local broker: no other stack's queues
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost.name}"
    with simulated_clock(workdir / "clock") as advance:
        url = args.database_url or f"sqlite:///{workdir / 'portal.sqlite3'}"
        with portal_rig(amqp_uri, url, advance) as rig:
            rows.append(portal_outage(rig, minutes=args.portal_minutes, dossiers=args.dossiers))
        url = args.database_url or f"sqlite:///{workdir / 'subscriber.sqlite3'}"
        with subscriber_rig(amqp_uri, url, advance) as rig:
            rows.append(subscriber_outage(rig, minutes=args.subscriber_minutes, dossiers=args.dossiers))
    vhost.delete()
    print(HEADER)
    for row in rows:
        print(row.line())
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
