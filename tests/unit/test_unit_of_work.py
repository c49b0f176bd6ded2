"""The unit of work publishes the domain events of the dossiers it has seen, and only what commits.

On the in-memory twin (tests/support/fakes.py), which keeps the real one's contract; the SQL unit of
work is held to the same contract in tests/integration/test_outbox.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from services.dossier.domain import events
from services.dossier.schemas import StatusEventSchema
from shared.events import CATALOGUE
from shared.vocabulary import Status
from tests.support.fakes import (
    CALENDAR,
    MONDAY,
    UNIT,
    UNITS,
    FakeDossiers,
    FakeUnitOfWork,
    received_at_counter,
)


def file_one(uow: FakeUnitOfWork) -> str:
    with uow.transaction() as tx:
        dossier = received_at_counter("")
        FakeDossiers(tx, UNITS, actor="desk@26740").add(dossier, identifier="H29", day=MONDAY.date())
    assert dossier.code == f"H29-{MONDAY:%y%m%d}-0001"
    return dossier.code


def test_an_added_dossier_publishes_its_event_at_commit_without_being_asked():
    uow = FakeUnitOfWork()
    code = file_one(uow)
    [event] = uow.published
    assert (event.type, event.subject, event.sequence) == ("vn.motcua.dossier.received", code, 1)
    # Routing by the receiving unit's path in the map: province 79, then the commune.
    assert event.routing_key == f"dossier.received.{UNITS.routing_path(UNIT)}"
    assert UNITS.routing_path(UNIT).startswith("79.")
    assert (event.data["status"], event.data["status_name"], event.data["channel"]) == (2, "received", 1)


def test_a_dossier_numbered_last_publishes_its_code_and_is_numbered_once():
    uow = FakeUnitOfWork()
    with uow.transaction() as tx:
        dossier = received_at_counter("")  # recorded ``received`` before it had a code
        FakeDossiers(tx, UNITS, actor="desk@26740").add(dossier, identifier="H29", day=MONDAY.date())
        with pytest.raises(ValueError, match="already has its code"):
            dossier.number("H29-260302-0002")
    [event] = uow.published
    assert event.subject == event.data["code"] == dossier.code == f"H29-{MONDAY:%y%m%d}-0001"


def test_a_loaded_dossier_publishes_what_happened_to_it_numbered_on():
    uow = FakeUnitOfWork()
    code = file_one(uow)
    with uow.transaction() as tx:
        dossier = FakeDossiers(tx, UNITS, actor="desk@26740").get(code)
        dossier.start_processing(now=MONDAY, calendar=CALENDAR)
        dossier.request_supplement(items=["Bản sao CCCD"], reason="thiếu", now=MONDAY)
    assert uow.published_names() == ["received", "processing_started", "supplement_requested"]
    assert [event.sequence for event in uow.published] == [1, 2, 3]


def test_a_failed_transaction_publishes_nothing_and_changes_nothing():
    uow = FakeUnitOfWork()
    code = file_one(uow)
    with pytest.raises(RuntimeError), uow.transaction() as tx:
        FakeDossiers(tx, UNITS, actor="desk@26740").get(code).start_processing(now=MONDAY, calendar=CALENDAR)
        raise RuntimeError("the audit line could not be written")
    assert uow.published_names() == ["received"]
    with uow.transaction() as tx:
        assert FakeDossiers(tx, UNITS, actor=None).get(code).status is Status.RECEIVED


def test_every_domain_event_is_a_catalogue_event_with_the_same_fields():
    """What the catalogue publishes is the event's fields, officers' free text turned into a code and
    a flag and the supplement's list into its length (event contract 2.0.0)."""
    public = {"reason": {"reason_code", "has_reason_text"}, "items": {"items_count"}}
    status_facts = list(StatusEventSchema().fields)
    for event in events.EVENTS:
        entry = CATALOGUE[f"vn.motcua.{event.source}.{event.name}"]
        own = [f.name for f in dataclasses.fields(event) if f.name != "facts"]
        published = set(status_facts).union(*(public.get(name, {name}) for name in own))
        assert list(entry.schema().fields)[: len(status_facts)] == status_facts, event.name
        assert set(entry.schema().fields) == published, event.name
    names = {event.name for event in events.EVENTS}
    assert names == {entry.name for entry in CATALOGUE.values() if entry.source == "dossier"}


def test_importing_the_service_maps_nothing_onto_the_domain():
    """The ORM is an adapter: the first repository maps the dossier, importing code does not."""
    import subprocess
    import sys

    probe = (
        "import services.dossier.service\n"
        "from services.dossier.domain.model import Dossier\n"
        "assert not hasattr(Dossier, '__mapper__'), 'mapped at import'\n"
        "from services.dossier.models import start_mappers\n"
        "start_mappers(); start_mappers()\n"
        "assert hasattr(Dossier, '__mapper__')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
