"""The shared base every service's writes go through (shared/domain.py, shared/uow.py, shared/auth.py):
an aggregate records typed events, the tracking repository publishes them at commit numbered per
dossier, the domain's errors have one HTTP mapping, and the jurisdiction check has one shape.

On a toy aggregate and the in-memory unit of work (tests/support/fakes.py), so that what a service's
repository inherits is proven without any service's rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import sqlalchemy as sa

from shared.auth import Principal
from shared.domain import Aggregate, Conflict, DomainError, DomainEvent, Forbidden, Invalid, NotFound
from shared.events import Event
from shared.http import problem_for
from tests.support.fakes import UNIT, UNITS, FakeRepository, FakeTransaction, FakeUnitOfWork

PROVINCE = "79"
PATH = "79.26740"  # the commune's routing path: under its province in the default map


@dataclass(frozen=True, kw_only=True)
class Moved(DomainEvent):
    source: ClassVar[str] = "toy"
    name: ClassVar[str] = "moved"
    to: str


@dataclass(kw_only=True)
class Parcel(Aggregate):
    id: str
    dossier_code: str
    unit: str = UNIT
    events: list[DomainEvent] = field(default_factory=list)
    event_sequence: int = 0

    @property
    def subject(self) -> str:
        return self.dossier_code

    @property
    def routing_units(self) -> tuple[str, str | None]:
        return self.unit, None

    def move(self, to: str) -> None:
        self.record(Moved(to=to))


class Parcels(FakeRepository[Parcel]):
    """A repository whose aggregates number their own events (the dossier's way)."""

    def __init__(self, tx: FakeTransaction) -> None:
        super().__init__(tx, UNITS)
        self.stored: list[tuple[str, int]] = []

    def identity(self, parcel: Parcel) -> str:
        return parcel.id

    def get(self, parcel_id: str) -> Parcel | None:
        parcel = self.seen.get(parcel_id) or self.state.table("parcels").get(parcel_id)
        return None if parcel is None else self.track(parcel)

    def add(self, parcel: Parcel) -> None:
        self.track(parcel)

    def envelope(self, parcel: Parcel, event: DomainEvent, sequence: int) -> Event:
        # A toy event type is in no catalogue: the envelope is made here, the routing as the base does it.
        unit, _ = parcel.routing_units
        return Event(
            source=event.source,
            name=event.name,
            subject=parcel.subject,
            data=event.data,
            unit_path=self.units.routing_path(unit),
            sequence=sequence,
        )

    def store(self, parcel: Parcel) -> None:
        self.stored.append((parcel.id, len(parcel.events)))  # events are taken before the store
        self.state.table("parcels")[parcel.id] = parcel


class CountedParcels(Parcels):
    """The same, numbering events in a per-dossier counter table (the postal service's way): several
    aggregates of one dossier share one sequence."""

    sequences = sa.Table("toy_event_sequences", sa.MetaData(), sa.Column("subject"), sa.Column("last"))


def published(uow: FakeUnitOfWork) -> list[tuple[str, str, int, str]]:
    return [(e.subject, e.data["to"], e.sequence, e.unit_path) for e in uow.published]


def test_what_every_tracked_aggregate_recorded_is_published_at_commit_in_order():
    uow = FakeUnitOfWork()
    with uow.transaction() as tx:
        parcels = Parcels(tx)
        first = Parcel(id="p1", dossier_code="D-1")
        parcels.add(first)
        first.move("desk")
        first.move("agency")
        assert uow.published == []  # nothing leaves before the commit
    assert published(uow) == [("D-1", "desk", 1, PATH), ("D-1", "agency", 2, PATH)]
    with uow.transaction() as tx:
        parcels = Parcels(tx)
        parcels.get("p1").move("applicant")
        parcels.get("p1").move("back")  # one object per identity: numbered on, not twice
    assert published(uow)[2:] == [("D-1", "applicant", 3, PATH), ("D-1", "back", 4, PATH)]
    assert uow.state.table("parcels")["p1"].events == []


def test_the_store_runs_after_the_events_are_taken_and_for_aggregates_without_events():
    uow = FakeUnitOfWork()
    with uow.transaction() as tx:
        parcels = Parcels(tx)
        parcels.add(Parcel(id="quiet", dossier_code="D-1"))
        loud = Parcel(id="loud", dossier_code="D-1")
        parcels.add(loud)
        loud.move("desk")
    assert parcels.stored == [("quiet", 0), ("loud", 0)]
    assert published(uow) == [("D-1", "desk", 1, PATH)]


def test_a_counter_table_numbers_the_events_of_all_aggregates_of_a_dossier_as_one_sequence():
    uow = FakeUnitOfWork()
    with uow.transaction() as tx:
        parcels = CountedParcels(tx)
        for parcel_id in ("a", "b"):
            parcels.add(Parcel(id=parcel_id, dossier_code="D-1"))
            parcels.get(parcel_id).move(parcel_id)
        other = Parcel(id="c", dossier_code="D-2", unit=PROVINCE)
        parcels.add(other)
        other.move("c")
    with uow.transaction() as tx:
        CountedParcels(tx).get("b").move("b again")
    assert published(uow) == [
        ("D-1", "a", 1, PATH),
        ("D-1", "b", 2, PATH),
        ("D-2", "c", 1, "79"),
        ("D-1", "b again", 3, PATH),
    ]


def test_a_failed_transaction_publishes_nothing_and_keeps_no_number():
    uow = FakeUnitOfWork()
    with pytest.raises(RuntimeError), uow.transaction() as tx:
        parcels = CountedParcels(tx)
        parcels.add(Parcel(id="a", dossier_code="D-1"))
        parcels.get("a").move("desk")
        raise RuntimeError("the change failed")
    with uow.transaction() as tx:
        CountedParcels(tx).add(parcel := Parcel(id="a", dossier_code="D-1"))
        parcel.move("desk")
    assert published(uow) == [("D-1", "desk", 1, PATH)]


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (NotFound("no dossier X"), 404, "not-found"),
        (Forbidden("unit 79 is outside your jurisdiction"), 403, "forbidden"),
        (Conflict("already rated"), 409, "conflict"),
        (DomainError("a rule"), 409, "conflict"),
        (Invalid("unit", "unknown unit code 'x'"), 422, "validation-error"),
    ],
)
def test_each_domain_error_has_one_problem(error, status, slug):
    problem = problem_for(error)
    assert (problem.status, problem.slug) == (status, slug)
    if isinstance(error, Invalid):
        assert problem.errors == [{"pointer": "/unit", "detail": "unknown unit code 'x'"}]


def test_the_jurisdiction_check_has_one_shape():
    desk = Principal("desk@26740", frozenset({"desk_officer"}), (UNIT,))
    desk.require_jurisdiction(UNITS, UNIT, field="unit")  # its own unit: nothing to say
    with pytest.raises(Invalid) as unknown:
        desk.require_jurisdiction(UNITS, "no-such-unit", field="receiving_unit")
    assert unknown.value.field == "receiving_unit"
    with pytest.raises(Forbidden, match="unit 79 is outside your jurisdiction"):
        desk.require_jurisdiction(UNITS, PROVINCE, field="unit")
    # A unit the caller did not name (a dossier's) that the map no longer knows: covered by nobody.
    with pytest.raises(Forbidden):
        desk.require_jurisdiction(UNITS, "no-such-unit")
