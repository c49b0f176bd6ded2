"""The outbound service's use cases, plain functions ``(command, uow, context)`` (shared/usecase.py).

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

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
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
from shared.domain import Invalid
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
    """Send the due head of every dossier's queue; what happened, counted."""
    now = context.clock()
    with uow.transaction() as tx:
        heads = [p for p in repository.heads(tx.session, context.batch) if _due(p, now, context.gap_wait)]
    counts = {"synced": 0, "failed": 0, "parked": 0}
    for pending in heads:
        try:
            history = _send(pending, context)
        except Exception as exc:  # whatever it was, the row waits its back-off and ends parked with it
            error = str(exc) or type(exc).__name__
            retry_at = context.policy.after_failure(pending.attempts + 1, context.clock())
            with uow.transaction() as tx:
                repository.failed(tx.session, pending, error, retry_at, context.clock())
            if retry_at is None:
                counts["parked"] += 1
                log.error(
                    "portal sync of %s parked after %d tries: %s",
                    pending.subject,
                    pending.attempts + 1,
                    error,
                )
            else:
                counts["failed"] += 1
                log.warning("portal sync of %s failed (%s); again at %s", pending.subject, error, retry_at)
            continue
        with uow.transaction() as tx:
            repository.synced(tx.session, pending, history, context.clock())
        counts["synced"] += 1
    return counts


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
