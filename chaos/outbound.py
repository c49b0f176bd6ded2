"""The outbound service's chaos rows: the national portal down for 10 minutes, a subscriber down for an
hour, on the simulated clock (shared/clock.py: a file moves "now"), so an hour passes in a minute.

Each scenario counts what the far side holds against what was published: lost (an event it never got)
and duplicated (an event it got twice; a subscriber drops those by ``webhook-id``, the portal by its
record's ``MaHoSo`` — a repeated step would be a duplicate it cannot drop, so none may come).

    python -m chaos.outbound_rig                     # the issue's durations; a table row per scenario
    python -m chaos.outbound_rig --portal-minutes 2 --subscriber-minutes 10

The same scenario functions run, shorter, in tests/integration/test_outbound_chaos.py; the services they
run against are chaos/outbound_rig.py's.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chaos.proxy import FaultProxy
from shared import clock

# The portal's answer to every event of a dossier's short life at the desk: received, processing.
DESK_LIFE = ("start_processing",)


@dataclass
class Row:
    scenario: str
    parameters: str
    published: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def line(self) -> str:
        cells = (
            self.scenario,
            self.parameters,
            self.published,
            self.received,
            self.lost,
            self.duplicated,
            self.note,
        )
        return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| scenario | parameters | events | received | lost | duplicated | notes |\n|---|---|---|---|---|---|---|"
)


@contextmanager
def simulated_clock(path: Path) -> Iterator[Callable[[timedelta], None]]:
    """This process's clock follows the file at ``path`` (as MOTCUA_CLOCK_FILE would make it); yields
    ``advance(delta)``, which moves it on."""
    previous = clock._CLOCK
    clock.move_to(path, datetime.now(UTC))
    clock._CLOCK = clock.FileClock(path)

    def advance(delta: timedelta) -> None:
        clock.move_to(path, clock.now() + delta)

    try:
        yield advance
    finally:
        clock._CLOCK = previous


def _wait(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def _pass(advance: Callable[[timedelta], None], total: timedelta, step: timedelta, pause: float) -> None:
    """Let ``total`` of simulated time pass in steps, each followed by ``pause`` real seconds (the
    service's timers run meanwhile)."""
    passed = timedelta(0)
    while passed < total:
        advance(step)
        passed += step
        time.sleep(pause)


# --- the national portal down --------------------------------------------------------------------


@dataclass
class PortalRig:
    """A dossier service (``file``: a dossier's code after a filing and its desk life), the outbound
    service syncing to the portal simulator (``received()``) through ``proxy``."""

    file: Callable[[], str]
    received: Callable[[], dict]
    proxy: FaultProxy
    advance: Callable[[timedelta], None]


def portal_outage(
    rig: PortalRig,
    *,
    minutes: float = 10,
    dossiers: int = 6,
    step: timedelta = timedelta(minutes=1),
    pause: float = 0.3,
) -> Row:
    """Dossiers filed before, during and after the portal is unreachable for ``minutes`` of simulated
    time; afterwards every event is at the portal once, in order."""
    row = Row("national portal down", f"{minutes:g} min (simulated clock), {dossiers} dossiers")
    codes = [rig.file()]  # one before
    rig.proxy.cut()
    during = max(1, dossiers - 2)
    per_step = max(1, during * step // timedelta(minutes=minutes))
    passed = timedelta(0)
    while passed < timedelta(minutes=minutes):
        for _ in range(per_step):
            if len(codes) < 1 + during:
                codes.append(rig.file())
        rig.advance(step)
        passed += step
        time.sleep(pause)
    while len(codes) < 1 + during:
        codes.append(rig.file())
    rig.proxy.restore()
    codes.append(rig.file())  # one after
    expected = len(DESK_LIFE) + 1  # each dossier: received, then its desk life

    def complete() -> bool:
        steps = rig.received()["steps"]
        return all(len(steps.get(code, [])) >= expected for code in codes)

    # The failed rows wait their back-off (simulated): move on until every dossier is through.
    for _ in range(60):
        if _wait(complete, timeout=3):
            break
        rig.advance(timedelta(minutes=5))
    steps = rig.received()["steps"]
    row.published = expected * len(codes)
    got = [(code, s["ThoiDiemXuLy"], s["NoiDungXuLy"]) for code in codes for s in steps.get(code, [])]
    counts = Counter(got)
    row.received = len(got)
    row.lost = sum(max(0, expected - len(steps.get(code, []))) for code in codes)
    row.duplicated = sum(n - 1 for n in counts.values())
    in_order = all([s["TrangThai"] for s in steps.get(code, [])][:expected] == [2, 4] for code in codes)
    refused = [c for c in rig.received()["calls"] if c.get("answer", {}).get("error_code") not in (0, None)]
    row.note = f"in order per dossier: {'yes' if in_order else 'NO'}; portal refusals: {len(refused)}"
    if not in_order:
        row.lost += 1  # out of order is a failure, counted where it shows
    return row


# --- a subscriber down -----------------------------------------------------------------------------


@dataclass
class SubscriberRig:
    """The outbound service with two subscriptions of the same events: ``down`` (the one that goes down)
    and ``healthy``; ``publish(n)`` publishes n dossiers' events and answers their ids, per dossier, in
    order."""

    publish: Callable[[int], dict[str, list[str]]]
    down: object  # tests/support/receiver.py Receiver
    healthy: object
    advance: Callable[[timedelta], None]


def subscriber_outage(
    rig: SubscriberRig,
    *,
    minutes: float = 60,
    dossiers: int = 4,
    step: timedelta = timedelta(minutes=5),
    pause: float = 0.3,
    settle_step: timedelta = timedelta(minutes=10),
) -> Row:
    """The subscriber answers 503 for ``minutes`` of simulated time while events come; then it is back.
    Every event reaches it (the 25·4ⁿ s schedule: the tries still going after an hour), each dossier's
    in order; a duplicate would carry the same webhook-id, for it to drop."""
    row = Row("subscriber down", f"{minutes:g} min (simulated clock), {dossiers} dossiers, 25·4ⁿ s backoff")
    rig.down.always = (503, {})
    published = rig.publish(dossiers // 2)
    _pass(rig.advance, timedelta(minutes=minutes) / 2, step, pause)
    published |= rig.publish(dossiers - dossiers // 2)
    _pass(rig.advance, timedelta(minutes=minutes) / 2, step, pause)
    ids = {event_id for events in published.values() for event_id in events}

    def healthy() -> set[str]:
        return {d["event"]["id"] for d in rig.healthy.delivered()} & ids

    # Still down: the other subscriber of the same events has them all meanwhile (or within 30 s).
    _wait(lambda: healthy() == ids, timeout=30)
    had = healthy()
    rig.down.always = None

    def delivered() -> list[dict]:
        return [d for d in rig.down.delivered() if d["event"]["id"] in ids]

    for _ in range(80):  # the next tries come up to 1.5·6400 s later: move on until all are in
        if _wait(lambda: {d["event"]["id"] for d in delivered()} >= ids, timeout=2):
            break
        rig.advance(settle_step)
    got = delivered()
    seen = [d["event"]["id"] for d in got]
    row.published, row.received = len(ids), len(seen)
    row.lost = len(ids - set(seen))
    row.duplicated = len(seen) - len(set(seen))
    order: dict[str, list[str]] = defaultdict(list)
    for d in got:
        if d["event"]["id"] not in order[d["event"]["subject"]]:
            order[d["event"]["subject"]].append(d["event"]["id"])
    in_order = all(order[subject] == events for subject, events in published.items())
    refused = sum(1 for r in rig.down.received if r["status"] == 503)
    row.note = (
        f"in order per dossier: {'yes' if in_order else 'NO'}; {refused} tries refused while down; "
        f"the healthy subscriber had {len(had)} of {len(ids)} during the outage"
    )
    if not in_order:
        row.lost += 1
    return row
