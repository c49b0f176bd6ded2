"""``python -m shared.ops``: the operator's commands for dead letters, unrouted events, outboxes, projections.

    python -m shared.ops dead-letters                      # per queue: count; then each message
    python -m shared.ops show metrics.dossier-events <id>  # one dead letter, headers and body
    python -m shared.ops requeue metrics.dossier-events --id <id>
    python -m shared.ops requeue metrics.dossier-events --all [--reason TEXT] [--type TYPE]
    python -m shared.ops purge metrics.dossier-events      # asks to type the queue name
    python -m shared.ops replay-unrouted [--limit N]
    python -m shared.ops broker-setup                      # the alternate-exchange policy
    python -m shared.ops outbox dossier                    # backlog, oldest, relay leader
    python -m shared.ops leaders metrics                   # who leads: the relay, the SLA exporter
    python -m shared.ops rebuild metrics                   # rebuild a projection from its event log
    python -m shared.ops portal-parked                     # dossiers whose portal sync is parked, why
    python -m shared.ops portal-replay <code>... | --all   # send parked dossiers to the portal again
    python -m shared.ops portal-resync --unit 79 --from 2026-12-01 --to 2026-12-01  # a unit's dossiers again
    python -m shared.ops subscription-notices              # e-mail notices of dead deliveries, for the mailer

The broker comes from ``AMQP_URI`` (or ``--amqp-uri``); listing queues and setting the policy use the
management API at ``RABBITMQ_MANAGEMENT_URL`` (default: the broker's host, port 15672, same user).
A service's database comes from its ``config.yml`` (``DOSSIER_DATABASE_URL`` … in the environment).
Every command that moves a message removes the original only after the broker confirmed the copy, so a
crash in the middle leaves a duplicate at worst, which subscribers ignore (they de-duplicate by id).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlparse

import amqp
import requests
import sqlalchemy as sa

from shared.broker import MessageCopier, connect, declare_exchanges, declare_unrouted
from shared.domain import Invalid
from shared.events import EXCHANGE, UNROUTED_EXCHANGE, UNROUTED_QUEUE
from shared.leadership import ELECTED_JOBS, HELD_HERE, job_key
from shared.outbox import leader_lock_key

DEAD_LETTER_SUFFIX = ".dead-letter"
ALTERNATE_EXCHANGE_POLICY = "motcua-alternate-exchange"
SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
# Headers the consumer adds when it dead-letters (shared.consumer); dropped when a message is requeued.
DEAD_LETTER_HEADERS = (
    "x-motcua-reason",
    "x-motcua-queue",
    "x-motcua-original-routing-key",
    "x-motcua-attempts",
    "x-motcua-dead-lettered-at",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


class OpsError(RuntimeError):
    """A command cannot do what it was asked; the message says why."""


# -- the broker ---------------------------------------------------------------------------------------


def management_url(amqp_uri: str) -> str:
    explicit = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if explicit:
        return explicit.rstrip("/")
    parsed = urlparse(amqp_uri)
    user, password = parsed.username or "guest", parsed.password or "guest"
    return f"http://{user}:{password}@{parsed.hostname or '127.0.0.1'}:15672"


def vhost_of(amqp_uri: str) -> str:
    path = urlparse(amqp_uri).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class Management:
    """The few calls of RabbitMQ's management HTTP API the commands need."""

    def __init__(self, amqp_uri: str) -> None:
        parsed = urlparse(management_url(amqp_uri))
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        self.auth = (unquote(parsed.username or "guest"), unquote(parsed.password or "guest"))
        self.vhost = quote(vhost_of(amqp_uri), safe="")

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = requests.request(method, f"{self.base}/{path}", json=body, auth=self.auth, timeout=10)
        except requests.RequestException as exc:
            raise OpsError(f"cannot reach the RabbitMQ management API at {self.base}: {exc}") from exc
        if response.status_code >= 400:
            raise OpsError(f"management API {method} {path}: {response.status_code} {response.text[:200]}")
        return response.json() if response.content else None

    def queues(self) -> list[dict]:
        return self._call("GET", f"queues/{self.vhost}?columns=name,messages,consumers")

    def set_policy(self, name: str, pattern: str, definition: dict, apply_to: str) -> None:
        body = {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": 0}
        self._call("PUT", f"policies/{self.vhost}/{name}", body)

    def policy(self, name: str) -> dict | None:
        try:
            return self._call("GET", f"policies/{self.vhost}/{name}")
        except OpsError:
            return None


@contextmanager
def channel(amqp_uri: str) -> Iterator[amqp.Channel]:
    connection = connect(amqp_uri)
    try:
        chan = connection.channel()
        yield chan
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - closing is best effort; unacked messages return either way
            connection.collect()


@dataclass
class Letter:
    """One message taken (unacked) from a queue."""

    message: amqp.Message

    @property
    def headers(self) -> dict:
        return dict(self.message.headers or {})

    @property
    def id(self) -> str:
        """The message id, else the envelope's ``id`` (a publisher may leave message_id out)."""
        message_id = self.message.properties.get("message_id")
        if message_id:
            return str(message_id)
        try:
            return str(json.loads(self.message.body).get("id") or "")
        except (ValueError, AttributeError):
            return ""

    @property
    def type(self) -> str:
        return str(self.message.properties.get("type") or "")

    @property
    def routing_key(self) -> str:
        return str(
            self.headers.get("x-motcua-original-routing-key") or self.message.delivery_info["routing_key"]
        )

    def summary(self) -> dict:
        h = self.headers
        return {
            "id": self.id,
            "type": self.type,
            "routing_key": self.routing_key,
            "reason": h.get("x-motcua-reason", ""),
            "attempts": h.get("x-motcua-attempts"),
            "dead_lettered_at": h.get("x-motcua-dead-lettered-at", ""),
        }


def browse(chan: amqp.Channel, queue: str) -> Iterator[Letter]:
    """The messages in ``queue`` at this moment, unacked: whatever is not acked returns on close."""
    _name, count, _consumers = _declare_passive(chan, queue)
    for _ in range(count):
        message = chan.basic_get(queue, no_ack=False)
        if message is None:
            return
        yield Letter(message)


def _declare_passive(chan: amqp.Channel, queue: str) -> tuple[str, int, int]:
    try:
        return chan.queue_declare(queue, passive=True)
    except amqp.exceptions.NotFound as exc:
        raise OpsError(f"no queue {queue!r} on this broker (vhost)") from exc


class ConfirmedCopier:
    """Copies taken messages elsewhere, confirmed (:class:`shared.broker.MessageCopier`)."""

    def __init__(self, connection_channel: amqp.Channel) -> None:
        self.copier = MessageCopier(connection_channel.connection.channel())

    def copy(
        self, letter: Letter, exchange: str, routing_key: str, drop_headers: tuple[str, ...] = ()
    ) -> bool:
        """Publish a copy of ``letter``; True once the broker confirmed it and a queue took it."""
        headers = {k: v for k, v in letter.headers.items() if k not in drop_headers}
        return self.copier.copy(letter.message, exchange, routing_key, headers)


# -- commands -----------------------------------------------------------------------------------------


def dead_letter_queues(amqp_uri: str) -> list[dict]:
    return [q for q in Management(amqp_uri).queues() if q["name"].endswith(DEAD_LETTER_SUFFIX)]


def dead_letter_queue(queue: str) -> str:
    """``metrics.dossier-events`` or ``metrics.dossier-events.dead-letter``: the dead-letter queue."""
    return queue if queue.endswith(DEAD_LETTER_SUFFIX) else queue + DEAD_LETTER_SUFFIX


def list_dead_letters(amqp_uri: str, queue: str | None, out: TextIO) -> int:
    names = [dead_letter_queue(queue)] if queue else [q["name"] for q in dead_letter_queues(amqp_uri)]
    total = 0
    with channel(amqp_uri) as chan:
        for name in names:
            letters = [letter.summary() for letter in browse(chan, name)]
            total += len(letters)
            out.write(f"{name}: {len(letters)} message(s)\n")
            for s in letters:
                out.write(
                    f"  {s['id']}  {s['dead_lettered_at']}  attempts={s['attempts']}  {s['routing_key']}\n"
                    f"      {s['reason']}\n"
                )
    return total


def show_dead_letter(amqp_uri: str, queue: str, message_id: str, out: TextIO) -> None:
    with channel(amqp_uri) as chan:
        for letter in browse(chan, dead_letter_queue(queue)):
            if letter.id == message_id:
                body = letter.message.body
                try:
                    shown: Any = json.loads(body)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    shown = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
                record = {**letter.summary(), "headers": letter.headers, "body": shown}
                out.write(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")
                return
    raise OpsError(f"no message {message_id} in {dead_letter_queue(queue)}")


def requeue(
    amqp_uri: str,
    queue: str,
    *,
    message_id: str | None = None,
    reason: str | None = None,
    event_type: str | None = None,
    out: TextIO,
) -> int:
    """Move matching dead letters back to their original queue (not to every subscriber again)."""
    source = dead_letter_queue(queue)

    def wanted(letter: Letter) -> bool:
        return (
            (message_id is None or letter.id == message_id)
            and (reason is None or reason in str(letter.headers.get("x-motcua-reason", "")))
            and (event_type is None or letter.type == event_type)
        )

    moved = 0
    with channel(amqp_uri) as chan:
        copier = ConfirmedCopier(chan)
        for letter in browse(chan, source):
            if not wanted(letter):
                continue
            target = str(letter.headers.get("x-motcua-queue") or source.removesuffix(DEAD_LETTER_SUFFIX))
            # The default exchange routes to the queue named by the key: only the consumer that failed.
            if not copier.copy(letter, "", target, drop_headers=DEAD_LETTER_HEADERS):
                raise OpsError(f"queue {target} does not exist; {letter.id} stays in {source}")
            chan.basic_ack(letter.message.delivery_tag)
            moved += 1
    out.write(f"requeued {moved} message(s) from {source}\n")
    return moved


def purge_target(queue: str) -> str:
    """What ``purge`` empties: the unrouted queue, or a consumer queue's dead letters (never the queue)."""
    return queue if queue == UNROUTED_QUEUE else dead_letter_queue(queue)


def purge(amqp_uri: str, queue: str, *, confirm: Callable[[str], str], out: TextIO) -> int:
    name = purge_target(queue)
    with channel(amqp_uri) as chan:
        _name, count, _consumers = _declare_passive(chan, name)
        answer = confirm(f"purge {count} message(s) from {name}? type the queue name to confirm: ")
        if answer.strip() != name:
            out.write("not purged\n")
            return 0
        purged = chan.queue_purge(name) or 0
    out.write(f"purged {purged} message(s) from {name}\n")
    return purged


def replay_unrouted(amqp_uri: str, *, limit: int | None, out: TextIO) -> tuple[int, int]:
    """Publish what ``egov.events.unrouted`` holds to ``egov.events`` again, with the original routing
    key and CC header; returns (replayed, left in the queue afterwards).

    An event still nobody's is not lost: its copy lands in the unrouted queue again (behind the ones
    being replayed, so this run does not see it twice); should the policy be gone, the broker returns
    the copy and the original stays.
    """
    replayed = 0
    with channel(amqp_uri) as chan:
        declare_exchanges(chan)
        copier = ConfirmedCopier(chan)
        for index, letter in enumerate(browse(chan, UNROUTED_QUEUE)):
            if limit is not None and index >= limit:
                break
            if copier.copy(letter, EXCHANGE, letter.routing_key, drop_headers=("x-delivery-count",)):
                chan.basic_ack(letter.message.delivery_tag)
                replayed += 1
    with channel(amqp_uri) as chan:
        _name, left, _consumers = _declare_passive(chan, UNROUTED_QUEUE)
    out.write(f"replayed {replayed} event(s); {left} in {UNROUTED_QUEUE} now\n")
    return replayed, left


def broker_setup(amqp_uri: str, out: TextIO) -> None:
    """Declare the exchanges and the unrouted queue; make ``egov.events.unrouted`` the alternate
    exchange of ``egov.events`` by policy."""
    with channel(amqp_uri) as chan:
        declare_exchanges(chan)
        declare_unrouted(chan)
    Management(amqp_uri).set_policy(
        ALTERNATE_EXCHANGE_POLICY,
        "^" + EXCHANGE.replace(".", r"\.") + "$",
        {"alternate-exchange": UNROUTED_EXCHANGE},
        apply_to="exchanges",
    )
    out.write(f"policy {ALTERNATE_EXCHANGE_POLICY}: {EXCHANGE} -> alternate exchange {UNROUTED_EXCHANGE}\n")


def service_database_url(service: str) -> str:
    from shared.config import load_config

    config = SERVICES_DIR / service / "config.yml"
    if not config.exists():
        raise OpsError(f"no service {service!r} (no {config})")
    url = load_config(config).get("DATABASE_URL")
    if not url:
        raise OpsError(f"{config}: DATABASE_URL is not set")
    return str(url)


def outbox_status(service: str, database_url: str | None, out: TextIO) -> dict:
    url = database_url or service_database_url(service)
    engine = sa.create_engine(url)
    table = f"{service}_outbox"
    try:
        with engine.connect() as connection:
            pending, oldest, unroutable = connection.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE published_at IS NULL), "
                    "min(created_at) FILTER (WHERE published_at IS NULL), "
                    f"count(*) FILTER (WHERE unroutable) FROM {table}"
                )
            ).one()
            leader = _relay_leader(connection, service)
    finally:
        engine.dispose()
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    status = {
        "service": service,
        "pending": pending,
        "oldest_pending_seconds": round(age, 1),
        "flagged_unroutable": unroutable,
        "relay_leader": leader,
    }
    out.write(
        f"{service}: {pending} event(s) waiting, oldest {age:.0f} s; {unroutable} ever flagged unroutable\n"
        f"relay leader: {leader}\n"
    )
    return status


def _relay_leader(connection: sa.Connection, service: str) -> str:
    if connection.dialect.name != "postgresql":
        return "no election on SQLite: the one service process relays"
    return _holder(connection, leader_lock_key(service))


def leaders(service: str, database_url: str | None, out: TextIO) -> dict[str, str]:
    """Which process leads each elected job (shared/leadership.py) among the service's replicas."""
    url = database_url or service_database_url(service)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name != "postgresql":
                found = {job: "no election on SQLite: the one service process" for job in ELECTED_JOBS}
            else:
                found = {job: _holder(connection, job_key(job, service)) for job in ELECTED_JOBS}
    finally:
        engine.dispose()
    for job, holder in found.items():
        out.write(f"{job}: {holder}\n")
    return found


def _holder(connection: sa.Connection, key: int) -> str:
    row = connection.execute(
        sa.text(
            "SELECT a.pid, a.client_addr, a.application_name, a.backend_start FROM pg_locks l "
            f"JOIN pg_stat_activity a ON a.pid = l.pid WHERE {HELD_HERE}"
        ),
        {"key": key},
    ).first()
    if row is None:
        return "none (no replica holds the lock)"
    name = f" ({row.application_name})" if row.application_name else ""
    return (
        f"pid {row.pid}{name} from {row.client_addr or 'local socket'} "
        f"since {row.backend_start:%Y-%m-%d %H:%M:%S}"
    )


def rebuild_projection(service: str, database_url: str | None, out: TextIO) -> int:
    """A service with a projection has a ``services/<name>/rebuild.py`` with ``rebuild(url, timezone)``."""
    try:
        module = importlib.import_module(f"services.{service}.rebuild")
    except ModuleNotFoundError as exc:
        raise OpsError(f"service {service!r} has no projection to rebuild") from exc
    from shared.config import load_config
    from shared.workcalendar import WorkingCalendar

    config = load_config(SERVICES_DIR / service / "config.yml")
    timezone = WorkingCalendar.from_settings(config.get("CALENDAR") or None).timezone
    started = time.perf_counter()
    count = module.rebuild(database_url or service_database_url(service), timezone)
    out.write(f"{service}: projected {count} dossier(s) in {time.perf_counter() - started:.1f} s\n")
    return count


# -- the command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.ops", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-uri", default=os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("dead-letters", help="list dead letters per queue: reason, attempts, time")
    listing.add_argument("queue", nargs="?", help="one consumer queue (default: every dead-letter queue)")
    show = commands.add_parser("show", help="one dead letter in full")
    show.add_argument("queue")
    show.add_argument("id", help="the event id (message_id)")
    again = commands.add_parser("requeue", help="move dead letters back to their original queue")
    again.add_argument("queue")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="one event id")
    which.add_argument("--all", action="store_true", help="every dead letter matching the filters")
    again.add_argument("--reason", help="only those whose reason contains this text")
    again.add_argument("--type", help="only this event type, e.g. vn.motcua.dossier.received")
    wipe = commands.add_parser("purge", help="delete every dead letter of a queue (asks first)")
    wipe.add_argument("queue", help=f"a consumer queue, or {UNROUTED_QUEUE}")
    wipe.add_argument("--yes", action="store_true", help="do not ask")
    replay = commands.add_parser("replay-unrouted", help=f"publish {UNROUTED_QUEUE} to {EXCHANGE} again")
    replay.add_argument("--limit", type=int)
    commands.add_parser(
        "broker-setup", help=f"set the policy making {UNROUTED_EXCHANGE} the alternate exchange"
    )
    outbox = commands.add_parser("outbox", help="a service's outbox backlog and its relay leader")
    outbox.add_argument("service")
    outbox.add_argument("--database-url", help="default: the service's config.yml")
    leading = commands.add_parser("leaders", help="which replica leads each elected job (relay, SLA export)")
    leading.add_argument("service")
    leading.add_argument("--database-url", help="default: the service's config.yml")
    rebuild = commands.add_parser("rebuild", help="rebuild a service's projection from its event log")
    rebuild.add_argument("service")
    rebuild.add_argument("--database-url", help="default: the service's config.yml")
    for name, text in (
        ("portal-parked", "dossiers whose national portal sync is parked, and why"),
        ("portal-replay", "send parked dossiers to the national portal again"),
        ("portal-resync", "send a unit's dossiers received in a date range to the national portal again"),
        ("subscription-notices", "e-mail notices of dead webhook deliveries not yet taken, as JSON lines"),
    ):
        portal = commands.add_parser(name, help=text)
        portal.add_argument("--database-url", help="default: the outbound service's config.yml")
        portal.add_argument("--units-file", default=os.environ.get("UNITS_FILE") or None)
        if name == "portal-replay":
            which = portal.add_mutually_exclusive_group(required=True)
            which.add_argument("codes", nargs="*", default=[], help="dossier codes")
            which.add_argument("--all", action="store_true", help="every parked dossier")
        if name == "portal-resync":
            portal.add_argument("--unit", required=True, help="a unit code: its whole subtree")
            portal.add_argument("--from", dest="first", required=True, type=date.fromisoformat)
            portal.add_argument("--to", dest="last", required=True, type=date.fromisoformat)
    return parser


def _portal(args: argparse.Namespace, out: TextIO) -> None:
    """The outbound service's commands (services/outbound/ops.py), loaded only when asked for."""
    ops = importlib.import_module("services.outbound.ops")
    url = args.database_url or service_database_url("outbound")
    if args.command == "portal-parked":
        ops.parked(url, args.units_file, out)
    elif args.command == "subscription-notices":
        ops.mail_notices(url, args.units_file, out)
    elif args.command == "portal-replay":
        if not args.all and not args.codes:
            raise OpsError("name dossier codes, or --all")
        ops.replay(url, args.units_file, None if args.all else args.codes, out)
    else:
        try:
            ops.resync(url, args.units_file, args.unit, args.first, args.last, out)
        except Invalid as exc:
            raise OpsError(f"{exc.field}: {exc.message}") from exc


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, ask: Callable[[str], str] = input) -> int:
    args = _parser().parse_args(argv)
    uri = args.amqp_uri
    try:
        match args.command:
            case "dead-letters":
                list_dead_letters(uri, args.queue, out)
            case "show":
                show_dead_letter(uri, args.queue, args.id, out)
            case "requeue":
                requeue(
                    uri, args.queue, message_id=args.id, reason=args.reason, event_type=args.type, out=out
                )
            case "purge":
                confirm = (lambda _prompt: purge_target(args.queue)) if args.yes else ask
                purge(uri, args.queue, confirm=confirm, out=out)
            case "replay-unrouted":
                replay_unrouted(uri, limit=args.limit, out=out)
            case "broker-setup":
                broker_setup(uri, out)
            case "outbox":
                outbox_status(args.service, args.database_url, out)
            case "leaders":
                leaders(args.service, args.database_url, out)
            case "rebuild":
                rebuild_projection(args.service, args.database_url, out)
            case "portal-parked" | "portal-replay" | "portal-resync" | "subscription-notices":
                _portal(args, out)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
