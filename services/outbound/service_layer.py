"""The outbound service's use cases, plain functions ``(command, uow, context)`` (shared/usecase.py).

HTTP subscriptions (docs/contracts.md §5): create, read, update, delete, the delivery log and manual
redelivery, each within the caller's own subscriptions; ``fan_out`` turns each consumed event into a
delivery per matching subscription, and ``deliver`` sends one subscription's due deliveries in order.

National portal sync:

* ``enqueue``: dossier events consumed from ``egov.events`` become rows of the dossier's durable queue
  (each event once: the inbox), in the consumer's transaction;
* ``sync_round``: the head of each dossier's queue goes to the portal — ``TraCuuHoSo`` decides insert or
  update, ``DongBoHoSoMC`` sends the dossier, ``CapNhatTienDoHoSoMC`` the step — one row at a time per
  dossier in its events' order; a failed try waits its back-off, and after the last the dossier is
  parked with the reason until an operator replays it;
* ``replay`` and ``resync``: the operator's (shared/ops.py ``portal-replay``, ``portal-resync``).

The portal calls run outside any transaction: a round reads the heads, calls, then records each outcome.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from services.outbound import repository
from services.outbound.domain.portal import (
    NOT_A_STEP,
    STEPS,
    History,
    Personal,
    RetryPolicy,
    record,
    remember,
    step,
)
from services.outbound.domain.subscription import (
    Backoff,
    ClientCredentials,
    Subscription,
    contact_channel,
    notice_due,
)
from services.outbound.portal import PortalUnavailable
from shared.auth import Principal
from shared.domain import Invalid, NotFound
from shared.events import Event
from shared.usecase import Context

log = logging.getLogger(__name__)
PORTAL_CONSUMER = "outbound.portal-sync"


class Portal(Protocol):
    """The adapter (services/outbound/portal.py), or a test's fake."""

    def knows(self, code: str) -> bool: ...

    def sync(self, record: dict[str, Any], *, updating: bool) -> None: ...

    def progress(self, steps: list[dict[str, Any]]) -> None: ...


class PersonalData(Protocol):
    """The dossier service's portal-record read (services/outbound/dossier_client.py)."""

    def personal(self, code: str) -> Personal: ...


@dataclass(frozen=True, kw_only=True)
class Courier(Context):
    """The outbound service's use-case context: besides the unit map, the calendar and the clock, the
    portal adapter, the dossier service's read, the retry policy and how long a gap in a dossier's
    sequence is waited for."""

    portal: Portal | None = None
    personal: PersonalData | None = None
    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy((5.0, 30.0, 120.0, 600.0), 6))
    gap_wait: timedelta = timedelta(seconds=30)
    batch: int = 200
    round: int = 50  # a subscription's deliveries sent before their tries are recorded together
    webhooks: Webhooks | None = None
    backoff: Backoff = field(default_factory=Backoff)
    # Runs a function over a round's deliveries, some at a time (the dispatcher's bounded pool per
    # subscription); one after the other when not given. Results in the deliveries' order.
    parallel: Callable[[Callable[[Any], Any], list[Any]], list[Any]] = field(
        default=lambda function, items: [function(item) for item in items]
    )
    # Records a round's tries, then runs a follow-up in the same transaction (``record_alone``, or the
    # dispatcher's transaction shared by the rounds that end together).
    record: Callable[..., Any] = field(default=lambda *args: record_alone(*args))


def enqueue(events: list[Event], uow: Any, context: Courier) -> list[bool]:
    """Queue each dossier event once for the portal (False for a redelivery, which changes nothing);
    the due-time warnings are not steps and are only remembered as seen."""
    answers = []
    now = context.clock()
    with uow.transaction() as tx:
        for event in events:
            if not tx.first_delivery(event, PORTAL_CONSUMER):
                answers.append(False)
                continue
            answers.append(True)
            name = event.type.rsplit(".", 1)[-1]
            data = dict(event.data)
            repository.remember_dossier(tx.session, data, event.sequence, now)
            if name in NOT_A_STEP or name not in STEPS:
                continue
            repository.enqueue(
                tx.session,
                subject=event.subject,
                sequence=event.sequence,
                event_id=event.id,
                name=name,
                data=data,
                now=now,
            )
    return answers


def _due(pending: repository.Pending, now: datetime, gap_wait: timedelta) -> bool:
    if pending.next_attempt_at > now:
        return False
    in_turn = pending.name == repository.RESYNC or pending.sequence <= pending.last_sequence + 1
    # An earlier event not here yet (its consumer still busy) is waited for, a while.
    return in_turn or pending.enqueued_at + gap_wait <= now


def _send(pending: repository.Pending, context: Courier) -> dict[str, Any]:
    """Send one row to the portal; the dossier's history after it."""
    names = {code: context.units.get(code).name for code in _units_of(pending, context)}
    zone = context.calendar.timezone
    personal = context.personal.personal(pending.subject)
    history = History.of(pending.history)
    if pending.name == repository.RESYNC:
        after, data, steps = history, pending.facts, history.steps
    else:
        data = pending.data or {}
        item = step(pending.name, data, history, names, zone)
        after, steps = remember(pending.name, data, history, item), [item]
    dossier = record(data, after, personal, names, zone)
    portal = context.portal
    known = portal.knows(pending.subject)
    try:
        portal.sync(dossier, updating=known)
    except Exception:
        # An insert refused because the portal has it after all (an earlier answer lost on the way):
        # asked again, not read from the message, and sent as an update.
        if known or not portal.knows(pending.subject):
            raise
        portal.sync(dossier, updating=True)
    if steps:
        portal.progress(steps)
    return after.as_dict()


def _units_of(pending: repository.Pending, context: Courier) -> set[str]:
    data = pending.data or pending.facts
    named = ("receiving_unit", "handling_unit", "from_unit", "to_unit")
    return {data[key] for key in named if data.get(key) and data[key] in context.units}


def sync_round(uow: Any, context: Courier) -> dict[str, int]:
    """Send the due head of every dossier's queue; what happened, counted (``held``: left due, the
    portal's or the dossier service's circuit being open)."""
    now = context.clock()
    with uow.transaction() as tx:
        heads = [p for p in repository.heads(tx.session, context.batch) if _due(p, now, context.gap_wait)]
    counts = {"synced": 0, "failed": 0, "parked": 0, "held": 0}
    for pending in heads:
        try:
            history = _send(pending, context)
        except PortalUnavailable as exc:
            if not exc.circuit_open:
                _failed(uow, context, pending, exc, counts)
                continue
            # The portal's (or the dossier service's) circuit is open: it is down for every dossier, so
            # no dossier's try is spent; the rows wait, due, for the round after the cool-down.
            counts["held"] = len(heads) - counts["synced"] - counts["failed"] - counts["parked"]
            log.warning("portal sync held: %s", exc)
            break
        except Exception as exc:  # whatever it was, the row waits its back-off and ends parked with it
            _failed(uow, context, pending, exc, counts)
            continue
        with uow.transaction() as tx:
            repository.synced(tx.session, pending, history, context.clock())
        counts["synced"] += 1
    return counts


def _failed(uow: Any, context: Courier, pending: repository.Pending, exc: Exception, counts: dict) -> None:
    """One try spent: the row waits its back-off, or is parked with the error after the last."""
    error = str(exc) or type(exc).__name__
    retry_at = context.policy.after_failure(pending.attempts + 1, context.clock())
    with uow.transaction() as tx:
        repository.failed(tx.session, pending, error, retry_at, context.clock())
    if retry_at is None:
        counts["parked"] += 1
        log.error("portal sync of %s parked after %d tries: %s", pending.subject, pending.attempts + 1, error)
    else:
        counts["failed"] += 1
        log.warning("portal sync of %s failed (%s); again at %s", pending.subject, error, retry_at)


@dataclass(frozen=True)
class Replay:
    """Dossiers to unpark: their codes, or None for every parked one."""

    codes: tuple[str, ...] | None


def replay(cmd: Replay, uow: Any, context: Courier) -> list[str]:
    with uow.transaction() as tx:
        return repository.replay(tx.session, cmd.codes, context.clock())


@dataclass(frozen=True)
class Resync:
    """Send again every dossier of a unit's subtree received in ``[first, last]`` (Vietnam dates)."""

    unit: str
    first: date
    last: date


def resync(cmd: Resync, uow: Any, context: Courier) -> list[str]:
    """Queue a full re-sync of each (the record as it stands, every step sent so far), ahead of the
    dossier's pending events, which follow it in order."""
    if cmd.unit not in context.units:
        raise Invalid("unit", f"unknown unit code {cmd.unit!r}")
    if cmd.last < cmd.first:
        raise Invalid("last", "must not be before first")
    zone = context.calendar.timezone
    start = datetime.combine(cmd.first, time(), zone)
    end = datetime.combine(cmd.last + timedelta(days=1), time(), zone)
    now = context.clock()
    with uow.transaction() as tx:
        codes = repository.dossiers_received(tx.session, context.units.descendants(cmd.unit), start, end)
        for code in codes:
            repository.enqueue(
                tx.session,
                subject=code,
                sequence=0,
                event_id=None,
                name=repository.RESYNC,
                data=None,
                now=now,
            )
    return codes


def backlog(uow: Any, refresh: Callable[[list[tuple[str, int, datetime | None, int]]], None]) -> None:
    with uow.transaction() as tx:
        refresh(repository.backlog(tx.session))


# --- HTTP subscriptions ------------------------------------------------------------------------------

SUBSCRIPTIONS_CONSUMER = "outbound.subscriptions"
SUBSCRIBER_ROLES = ("subscriber", "auditor", "admin")
TEST_EVENT_TYPE = "vn.motcua.outbound.subscription_test"


class Webhooks(Protocol):
    """The sender (services/outbound/webhooks.py): the address guard and one signed POST."""

    def check(self, url: str) -> None: ...

    def send(
        self,
        url: str,
        *,
        message_id: str,
        body: str,
        secrets: list[str],
        auth_header: str | None,
        oauth2: ClientCredentials | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class CreateSubscription:
    principal: Principal
    body: dict[str, Any]


@dataclass(frozen=True)
class UpdateSubscription:
    principal: Principal
    id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ReadSubscription:
    principal: Principal
    id: str


@dataclass(frozen=True)
class Redeliver:
    principal: Principal
    id: str
    delivery_id: int | None
    start: datetime | None
    end: datetime | None


def _credentials(value: dict[str, Any] | None) -> ClientCredentials | None:
    return None if not value else ClientCredentials(**value)


def _test_delivery(subscription: Subscription, context: Courier) -> None:
    """A signed test event to the callback (with a token, for OAuth2 credentials): anything but a 2xx
    refuses the subscription, with why."""
    urls = [("callback_url", subscription.callback_url)]
    if subscription.oauth2:
        urls.append(("oauth2", subscription.oauth2.token_url))
    if subscription.contact and contact_channel(subscription.contact) == "url":
        urls.append(("contact", subscription.contact))
    for name, url in urls:
        try:
            context.webhooks.check(url)
        except ValueError as exc:
            raise Invalid(name, str(exc)) from exc
    message_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": message_id,
            "source": "/motcua/outbound",
            "type": TEST_EVENT_TYPE,
            "subject": subscription.id,
            "time": context.clock().astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {"subscription": subscription.id},
        }
    )
    answer = context.webhooks.send(
        subscription.callback_url,
        message_id=message_id,
        body=body,
        secrets=subscription.secrets,
        auth_header=subscription.auth_header,
        oauth2=subscription.oauth2,
    )
    if not answer.ok:
        raise Invalid(
            "callback_url",
            f"the signed test delivery got {answer.describe()}; a subscription needs a 2xx answer",
        )


def create_subscription(
    cmd: CreateSubscription, tx: Any, context: Courier
) -> tuple[Subscription, str | None]:
    """A new subscription, within the caller's jurisdiction, once its callback answered a test delivery;
    the generated signing secret (shown once) when none was given."""
    principal, body = cmd.principal, cmd.body
    principal.require_role(*SUBSCRIBER_ROLES)
    principal.require_jurisdiction(context.units, body["unit"], field="unit")
    generated = None if body.get("secret") else "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    subscription = Subscription(
        id=str(uuid.uuid4()),
        owner=principal.sub,
        callback_url=body["callback_url"],
        unit=body["unit"],
        unit_path=context.units.routing_path(body["unit"]),
        event_types=list(body.get("event_types") or []),
        procedure=body.get("procedure"),
        field=body.get("field"),
        auth_header=body.get("auth_header"),
        oauth2=_credentials(body.get("oauth2")),
        secrets=[body.get("secret") or generated],
        contact=body.get("contact"),
    )
    _test_delivery(subscription, context)
    repository.add_subscription(tx.session, subscription, context.clock())
    return subscription, generated


def _owned(cmd: ReadSubscription | UpdateSubscription | Redeliver, tx: Any) -> Subscription:
    cmd.principal.require_role(*SUBSCRIBER_ROLES)
    subscription = repository.load_subscription(tx.session, cmd.id)
    if subscription is None or subscription.owner != cmd.principal.sub:
        raise NotFound(f"no subscription {cmd.id}")
    return subscription


def read_subscription(cmd: ReadSubscription, tx: Any, context: Courier) -> Subscription:
    return _owned(cmd, tx)


def list_subscriptions(principal: Principal, tx: Any, context: Courier) -> list[Subscription]:
    principal.require_role(*SUBSCRIBER_ROLES)
    return repository.owned_subscriptions(tx.session, principal.sub)


def update_subscription(cmd: UpdateSubscription, tx: Any, context: Courier) -> Subscription:
    """Change the callback, filters, auth header or contact; add or retire signing secrets (a rotation
    keeps several, and every one signs); re-enable a disabled subscription. A new callback, or a
    re-enabled one, must answer a test delivery again."""
    subscription, body = _owned(cmd, tx), cmd.body
    if "unit" in body:
        cmd.principal.require_jurisdiction(context.units, body["unit"], field="unit")
        subscription.unit, subscription.unit_path = body["unit"], context.units.routing_path(body["unit"])
    for name in ("callback_url", "event_types", "procedure", "field", "auth_header", "contact"):
        if name in body:
            setattr(subscription, name, body[name])
    if "oauth2" in body:
        subscription.oauth2 = _credentials(body["oauth2"])
    if subscription.oauth2 and subscription.auth_header:
        raise Invalid("oauth2", "an auth header or OAuth2 client credentials, not both")
    if body.get("add_secret") and body["add_secret"] not in subscription.secrets:
        subscription.secrets.append(body["add_secret"])
    if body.get("remove_secret"):
        if body["remove_secret"] not in subscription.secrets:
            raise Invalid("remove_secret", "not a secret of this subscription")
        if subscription.secrets == [body["remove_secret"]]:
            raise Invalid("remove_secret", "the last secret cannot be removed; add its successor first")
        subscription.secrets.remove(body["remove_secret"])
    reenabled = body.get("active") is True and not subscription.active
    if body.get("active") is False:
        subscription.active, subscription.disabled_reason = False, "disabled by its owner"
    if reenabled:
        subscription.active, subscription.disabled_reason = True, None
    if {"callback_url", "oauth2", "contact"} & body.keys() or reenabled:
        _test_delivery(subscription, context)
    repository.save_subscription(tx.session, subscription, context.clock())
    return subscription


def delete_subscription(cmd: ReadSubscription, tx: Any, context: Courier) -> None:
    repository.delete_subscription(tx.session, _owned(cmd, tx).id)


def delivery_log(cmd: ReadSubscription, tx: Any, context: Courier, limit: int = 100) -> list[dict[str, Any]]:
    return repository.delivery_log(tx.session, _owned(cmd, tx).id, limit)


def dead_letters(cmd: ReadSubscription, tx: Any, context: Courier, limit: int = 500) -> list[dict[str, Any]]:
    """The subscription's dead deliveries (every try failed), newest first, each with its tries; they
    stay until redelivered (``redeliver``) or the subscription is deleted."""
    return repository.delivery_log(tx.session, _owned(cmd, tx).id, limit, state="dead")


def redeliver(cmd: Redeliver, tx: Any, context: Courier) -> int:
    """Send one delivery again, or every delivery of a time range (by when it was enqueued)."""
    subscription = _owned(cmd, tx)
    if cmd.delivery_id is None and (cmd.start is None or cmd.end is None):
        raise Invalid("delivery_id", "name a delivery_id, or a range: from and to")
    count = repository.redeliver(
        tx.session,
        subscription.id,
        delivery_id=cmd.delivery_id,
        start=cmd.start,
        end=cmd.end,
        now=context.clock(),
    )
    if cmd.delivery_id is not None and count == 0:
        raise NotFound(f"no delivery {cmd.delivery_id} of subscription {subscription.id}")
    return count


def fan_out(
    events: list[Event], uow: Any, context: Courier, stored: Callable[[set[str]], None] | None = None
) -> list[bool]:
    """Each event once (inbox) into a delivery per active subscription it matches, as published;
    ``stored(subscription ids)`` once they are committed (the dispatcher's wake-up)."""
    answers = []
    now = context.clock()
    with uow.transaction() as tx:
        active = repository.active_subscriptions(tx.session)
        rows = []
        for event in events:
            if not tx.first_delivery(event, SUBSCRIPTIONS_CONSUMER):
                answers.append(False)
                continue
            answers.append(True)
            paths = [p for p in (event.unit_path, event.handling_unit_path, *event.also_unit_paths) if p]
            body = event.to_json()
            rows += [(s.id, event, body) for s in active if s.matches(event.type, paths, dict(event.data))]
        repository.add_deliveries(tx.session, rows, now)
    if rows and stored is not None:
        stored({subscription_id for subscription_id, _, _ in rows})
    return answers


def claim(subscription_ids: list[str], uow: Any, context: Courier) -> dict[str, tuple[Subscription, list]]:
    """The first round of each subscription (its due heads, as :func:`deliver` reads them), read for
    all of them in one transaction: what the dispatcher hands the subscriptions the consumer just gave
    deliveries to. Only active subscriptions with something due."""
    with uow.transaction() as tx:
        found = repository.load_subscriptions(tx.session, subscription_ids)
        active = [s for s in subscription_ids if s in found and found[s].active]
        heads = repository.due_deliveries_of(tx.session, active, context.clock(), context.round)
    return {s: (found[s], heads[s]) for s in active if heads[s]}


def deliver(
    subscription_id: str,
    uow: Any,
    context: Courier,
    observe: Callable[..., None],
    first: tuple[Subscription, list] | None = None,
) -> int:
    """Send the due deliveries of one subscription until none is due; what was sent.

    In rounds: the head of each dossier's pending deliveries that is due (:func:`repository.due_deliveries`,
    at most ``context.round``), sent ``context.parallel`` at a time — one per dossier, so each dossier's
    events still go one at a time in order, and a later one waits while an earlier one is retried —
    then every try of the round recorded in one transaction (``context.record``: the dispatcher's is
    shared by the subscriptions whose rounds end together), which reads the next round's heads when a
    delivered or dead head had a later delivery waiting behind it, or the round was full. New
    deliveries wake the dispatcher; retries come due on its timer. ``observe(outcome, lag_seconds)``
    counts each try. A 410 disables the subscription: no new try starts after it (those already on
    the way are recorded), and the round is the last.

    A crash between a 2xx and the round's commit sends that delivery again (at least once; receivers
    drop a repeated ``webhook-id``). ``first``: the first round, already read (:func:`claim`)."""
    sent = 0
    if first is not None:
        subscription, due = first
    else:
        with uow.transaction() as tx:
            subscription, due = _next_round(tx, subscription_id, context)
    while subscription is not None and subscription.active and due:
        attempts, sending = _send_round(subscription, due, context), subscription
        gone = next((a for a in attempts if a.state == "gone"), None)
        look_again = gone is None and (
            len(due) >= context.round
            or any(a.due.more and a.state in ("delivered", "dead") for a in attempts)
        )

        def follow_up(tx: Any, attempts=attempts, gone=gone, look_again=look_again, sending=sending):
            """In the recording transaction: a 410's disabling, the contact's notice, the next heads."""
            if gone is not None:
                sending.active = False
                sending.disabled_reason = f"the callback answered 410 Gone at {gone.at:%Y-%m-%d %H:%M:%S} UTC"
                repository.save_subscription(tx.session, sending, gone.at)
            notice = None
            for attempt in attempts:
                if attempt.state == "dead" and notice is None:
                    notice = _notice(tx, sending, attempt.due, attempt.describe(), attempt.at)
            following = _next_round(tx, subscription_id, context) if look_again else (None, [])
            return notice, following

        notice, (subscription, due) = context.record(uow, attempts, follow_up)
        if notice is not None:
            _send_notice(notice, sending, uow, context)
        for attempt in attempts:
            observe(_OUTCOMES[attempt.state], (attempt.at - attempt.due.enqueued_at).total_seconds())
            if attempt.state == "dead":
                log.error(
                    "subscription %s: delivery of %s is dead after %d tries: %s",
                    subscription_id,
                    attempt.due.event_id,
                    attempt.due.attempts + 1,
                    attempt.describe(),
                )
        sent += len(attempts)
        if gone is not None:
            log.warning("subscription %s disabled: %s", subscription_id, sending.disabled_reason)
    return sent


def record_alone(uow: Any, attempts: list[repository.Attempt], follow_up: Callable[[Any], Any]) -> Any:
    """A round's tries recorded in a transaction of its own, then ``follow_up(tx)`` in it: its result."""
    with uow.transaction() as tx:
        repository.record_attempts(tx.session, attempts)
        return follow_up(tx)


_OUTCOMES = {"delivered": "delivered", "gone": "gone", "pending": "failed", "dead": "dead"}


def _next_round(tx: Any, subscription_id: str, context: Courier) -> tuple[Subscription | None, list]:
    subscription = repository.load_subscription(tx.session, subscription_id)
    if subscription is None or not subscription.active:
        return subscription, []
    return subscription, repository.due_deliveries(
        tx.session, subscription_id, context.clock(), context.round
    )


def _send_round(
    subscription: Subscription, due: list[repository.Due], context: Courier
) -> list[repository.Attempt]:
    """Each due head sent (``context.parallel`` at a time), each try with its outcome; after a 410 no
    new try starts."""
    stopped: list[bool] = []

    def send(item: repository.Due) -> repository.Attempt | None:
        if stopped:
            return None
        answer = context.webhooks.send(
            subscription.callback_url,
            message_id=item.event_id,
            body=item.body,
            secrets=subscription.secrets,
            auth_header=subscription.auth_header,
            oauth2=subscription.oauth2,
        )
        now = context.clock()
        retry_at = None
        if answer.ok:
            state = "delivered"
        elif answer.status == 410:
            state = "gone"
            stopped.append(True)
        else:
            retry_at = context.backoff.next_try(item.attempts + 1, now, answer.retry_after)
            state = "pending" if retry_at else "dead"
        return repository.Attempt(item, now, answer.status, answer.error, answer.seconds, state, retry_at)

    return [attempt for attempt in context.parallel(send, due) if attempt is not None]


@dataclass(frozen=True)
class Notice:
    id: int
    channel: str
    body: str


def _notice(tx: Any, subscription: Subscription, item: Any, error: str, now: datetime) -> Notice | None:
    """A dead delivery told to the subscription's contact, unless it was told of one within a day."""
    if not subscription.contact or not notice_due(
        repository.last_notice_at(tx.session, subscription.id), now
    ):
        return None
    channel = contact_channel(subscription.contact)
    body = json.dumps(
        {
            "type": "vn.motcua.outbound.delivery_dead",
            "subscription": subscription.id,
            "callback_url": subscription.callback_url,
            "delivery": item.id,
            "event_id": item.event_id,
            "subject": item.subject,
            "error": error,
            "at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "detail": "Every try of this delivery failed. Further dead deliveries are not notified for a "
            "day: GET /api/v1/subscriptions/{id}/dead-letters lists them all, and POST "
            "/api/v1/subscriptions/{id}/redeliveries sends them again.",
        },
        ensure_ascii=False,
    )
    notice_id = repository.add_notice(tx.session, subscription.id, subscription.contact, channel, body, now)
    return Notice(notice_id, channel, body)


def _send_notice(notice: Notice, subscription: Subscription, uow: Any, context: Courier) -> None:
    """A URL contact is POSTed the notice once, signed with the subscription's secrets (the outcome is
    kept on the row); an e-mail contact's notice waits in the table for the operator's mailer."""
    if notice.channel != "url":
        log.warning(
            "subscription %s: dead-delivery notice %d waits for the mailer (python -m shared.ops "
            "subscription-notices)",
            subscription.id,
            notice.id,
        )
        return
    answer = context.webhooks.send(
        subscription.contact,
        message_id=f"notice-{notice.id}",
        body=notice.body,
        secrets=subscription.secrets,
        auth_header=None,
    )
    with uow.transaction() as tx:
        repository.notice_sent(
            tx.session,
            notice.id,
            sent_at=context.clock() if answer.ok else None,
            error=None if answer.ok else answer.describe(),
        )
    if not answer.ok:
        log.error("subscription %s: the notice to its contact failed: %s", subscription.id, answer.describe())


def take_mail_notices(uow: Any, context: Courier) -> list[dict[str, Any]]:
    """The e-mail notices for the operator's mailer (shared/ops.py ``subscription-notices``), each
    handed over once."""
    with uow.transaction() as tx:
        return repository.take_mail_notices(tx.session, context.clock())
