"""The notifier's use cases, plain functions ``(command, uow, context)`` (shared/usecase.py).

* ``enqueue``: a dossier event that calls for a message (domain ``kind_of``) becomes a notice, once
  (the inbox), in the consumer's transaction; nothing else happens there.
* ``send_round``: for each due notice, the dossier service's read says which channels the applicant
  consents to now and where to write; each channel's message (id ``{event id}:{channel}``, a unique key)
  is created once and sent unless the quiet hours defer it, the daily cap stops it or the consent to it
  was withdrawn; a gateway that does not answer is tried again with a backoff; a Zalo message to a
  non-follower goes by SMS. Gateway calls run outside any transaction; each outcome is recorded after.
* ``dossier_log``: the desk's view of a dossier's messages and every gateway call.

Nothing here changes the dossier service: the notifier reads it, and owns only its own tables.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.notifier import repository
from services.notifier.domain.messages import (
    EMAIL,
    FINAL,
    Answer,
    DailyCap,
    Kind,
    Outcome,
    QuietHours,
    RetryPolicy,
    Template,
    fallback,
    kind_of,
    local_day,
    render,
    send_at,
    values_of,
)
from services.notifier.dossier_client import Contact, DossierUnavailable, UnknownDossier
from services.notifier.gateways import Delivery, Gateway, Outgoing
from shared.auth import Principal
from shared.domain import NotFound
from shared.events import Event
from shared.usecase import Context

log = logging.getLogger(__name__)
CONSUMER = "notifier.dossier-events"
# Who reads a dossier's message log: the staff of its receiving unit's jurisdiction.
LOG_READERS = ("desk_officer", "auditor", "admin")


class ContactReader(Protocol):
    """The dossier service's notification-contact read (services/notifier/dossier_client.py)."""

    def contact(self, code: str) -> Contact: ...


@dataclass(frozen=True, kw_only=True)
class Herald(Context):
    """The notifier's use-case context: besides the unit map, the calendar (its zone is Vietnam's) and the
    clock, the dossier service's read, the gateways by channel, the templates and the delivery rules."""

    dossiers: ContactReader | None = None
    gateways: Mapping[str, Gateway] = field(default_factory=dict)
    templates: Mapping[Kind, Template] = field(default_factory=dict)
    quiet: QuietHours | None = None
    cap: DailyCap = field(default_factory=lambda: DailyCap(0))
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    unicode_sms: bool = False
    recipient_key: bytes = b""
    batch: int = 100
    observe: Callable[[str, str, str], None] = lambda _kind, _channel, _outcome: None  # a message's try
    called: Callable[[str, str], None] = lambda _gateway, _answer: None  # a gateway's answer


def enqueue(event: Event, uow: Any, context: Herald) -> bool:
    """A notice for an event that calls for a message; False for a redelivery (nothing changes)."""
    with uow.transaction() as tx:
        if not tx.first_delivery(event, CONSUMER):
            return False
        data = dict(event.data)
        kind = kind_of(event.type.rsplit(".", 1)[-1], data)
        if kind is not None:
            repository.add_notice(
                tx.session,
                event_id=event.id,
                code=event.subject,
                kind=kind.value,
                unit=data["receiving_unit"],
                data=data,
                now=context.clock(),
            )
    return True


def send_round(uow: Any, context: Herald) -> dict[str, int]:
    """Every due notice's due messages; what happened to them, counted."""
    with uow.transaction() as tx:
        due = repository.due_notices(tx.session, context.clock(), context.batch)
    counts: dict[str, int] = {}
    for notice in due:
        try:
            contact = context.dossiers.contact(notice.code)
        except UnknownDossier:
            log.warning(
                "notice %s for dossier %s: the dossier service does not know it", notice.kind, notice.code
            )
            with uow.transaction() as tx:
                repository.notice_unknown(tx.session, notice.event_id)
            continue
        except DossierUnavailable as exc:
            retry_at = context.policy.after_failure(notice.attempts + 1, context.clock())
            log.warning("notice %s for %s waits: %s", notice.kind, notice.code, exc)
            with uow.transaction() as tx:
                repository.notice_failed(tx.session, notice.event_id, str(exc), retry_at)
            continue
        for outcome in _send_notice(notice, contact, uow, context):
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _send_notice(notice: repository.Notice, contact: Contact, uow: Any, context: Herald) -> list[str]:
    now = context.clock()
    consented = [c for c in contact.channels if c in context.gateways]
    with uow.transaction() as tx:
        for channel in consented:
            repository.add_message(tx.session, notice, channel, now)
        found = repository.messages_of(tx.session, notice.event_id)
        for channel, message in found.items():
            # Withdrawn since: never sent, whatever it was waiting for.
            if channel not in consented and Outcome(message.state) not in FINAL:
                repository.update_message(tx.session, message.id, state=Outcome.WITHDRAWN.value)
                context.observe(notice.kind, channel, Outcome.WITHDRAWN.value)
    outcomes = []
    for channel in consented:
        message = found[channel]
        if Outcome(message.state) in FINAL or message.next_attempt_at > now:
            continue
        outcome = _send_message(notice, message, contact, consented, uow, context)
        context.observe(notice.kind, channel, outcome)
        outcomes.append(outcome)
    with uow.transaction() as tx:
        repository.settle_notice(tx.session, notice.event_id)
    return outcomes


def _send_message(
    notice: repository.Notice,
    message: repository.Message,
    contact: Contact,
    consented: list[str],
    uow: Any,
    context: Herald,
) -> str:
    template = context.templates[Kind(notice.kind)]
    zone = context.calendar.timezone
    now = context.clock()
    later = send_at(now, message.channel, template.urgent, context.quiet, zone) if context.quiet else None
    if later is not None:
        with uow.transaction() as tx:
            repository.update_message(
                tx.session, message.id, state=Outcome.DEFERRED.value, next_attempt_at=later
            )
        return Outcome.DEFERRED.value
    values = values_of(
        notice.data, procedure=contact.procedure_name, items=contact.supplement_items, zone=zone
    )
    recipient = _address(contact, message.channel)
    key = _recipient_key(context.recipient_key, recipient)
    start, end = local_day(now, zone)
    with uow.transaction() as tx:
        if not context.cap.allows(repository.sent_today(tx.session, key, start, end)):
            repository.update_message(tx.session, message.id, state=Outcome.CAPPED.value, recipient=key)
            log.info(
                "message %s not sent: the recipient's daily cap (%d) is reached",
                message.id,
                context.cap.limit,
            )
            return Outcome.CAPPED.value
    via, text = message.channel, render(template, message.channel, values, unicode_sms=context.unicode_sms)
    delivery = _call(context, via, message, recipient, text, template, values, uow, now)
    instead = fallback(message.channel, delivery.answer, consented)
    if delivery.answer is Answer.NOT_FOLLOWER and instead is None:
        outcome = Outcome.NOT_FOLLOWER
    elif instead is not None and contact.phone:
        via, text = instead, render(template, instead, values, unicode_sms=context.unicode_sms)
        delivery = _call(context, via, message, contact.phone, text, template, values, uow, now)
        outcome = None
    else:
        outcome = None
    return _record(message, via, text, key, delivery, outcome, uow, context, now)


def _call(
    context: Herald,
    via: str,
    message: repository.Message,
    to: str,
    text: str,
    template: Template,
    values: Mapping[str, str],
    uow: Any,
    now: datetime,
) -> Delivery:
    subject = template.subject.format_map(values) if via == EMAIL else ""
    # The id names the consented channel's message: a fallback SMS is the same message, sent once.
    request_id = message.id if via == message.channel else f"{message.id}>{via}"
    outgoing = Outgoing(request_id, to, text, subject)
    delivery = context.gateways[via].send(outgoing)
    context.called(via, delivery.answer.value)
    with uow.transaction() as tx:
        repository.record_attempt(
            tx.session,
            message_id=message.id,
            at=now,
            gateway=via,
            answer=delivery.answer.value,
            seconds=delivery.seconds,
            error=delivery.error,
        )
    return delivery


def _record(
    message: repository.Message,
    via: str,
    text: str,
    key: str,
    delivery: Delivery,
    outcome: Outcome | None,
    uow: Any,
    context: Herald,
    now: datetime,
) -> str:
    values: dict[str, Any] = {"via": via, "text": text, "recipient": key, "attempts": message.attempts + 1}
    if outcome is None:
        if delivery.answer is Answer.ACCEPTED:
            outcome = Outcome.SENT
            values |= {"sent_at": now, "gateway_reference": delivery.reference, "last_error": None}
        elif delivery.answer in (Answer.REJECTED, Answer.NOT_FOLLOWER):
            outcome = Outcome.REJECTED
        else:
            retry_at = context.policy.after_failure(message.attempts + 1, now)
            outcome = Outcome.PENDING if retry_at else Outcome.FAILED
            if retry_at:
                values["next_attempt_at"] = retry_at
                log.warning(
                    "message %s: %s unavailable (%s); again at %s", message.id, via, delivery.error, retry_at
                )
            else:
                log.error(
                    "message %s failed after %d tries: %s", message.id, message.attempts + 1, delivery.error
                )
    if delivery.error and outcome is not Outcome.SENT:
        values["last_error"] = delivery.error[:1000]
    with uow.transaction() as tx:
        repository.update_message(tx.session, message.id, state=outcome.value, **values)
    return outcome.value if outcome is not Outcome.PENDING else "retry"


def _address(contact: Contact, channel: str) -> str:
    return (contact.email if channel == EMAIL else contact.phone) or ""


def _recipient_key(key: bytes, address: str) -> str:
    """The recipient as the daily cap counts them: an HMAC, so the table holds no phone or address."""
    normalised = address.strip().lower()
    if normalised.startswith("+84"):
        normalised = "0" + normalised[3:]
    return hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ReadLog:
    principal: Principal
    code: str


def dossier_log(cmd: ReadLog, tx: Any, context: Herald) -> dict[str, list[dict[str, Any]]]:
    """A dossier's notices (the events that called for a message: pending, done, unknown) and messages,
    for the staff of its receiving unit's jurisdiction (404 for anyone else)."""
    cmd.principal.require_role(*LOG_READERS)
    noticed = repository.dossier_notices(tx.session, cmd.code)
    if noticed and not cmd.principal.covers(context.units, noticed[0]["receiving_unit"]):
        raise NotFound(f"no messages for dossier {cmd.code}")
    return {"notices": noticed, "results": repository.dossier_log(tx.session, cmd.code)}
