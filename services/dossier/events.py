"""From the dossier's domain events to the published events of CONTRACTS §1."""

from __future__ import annotations

from typing import Any

from services.dossier import schemas  # noqa: F401 - registers the event catalogue
from services.dossier.domain.events import DossierEvent
from services.dossier.domain.model import Dossier
from shared.events import Event, build_event
from shared.units import UnitRegistry


def envelopes(dossier: Dossier, units: UnitRegistry) -> list[Event]:
    """Take the dossier's pending domain events as envelopes, numbered by its event sequence.

    Called by the unit of work at commit (:class:`services.dossier.repository.Dossiers`), never by hand.
    """
    pending, dossier.events = list(dossier.events), []
    first = dossier.event_sequence - len(pending) + 1
    receiving = units.routing_path(dossier.receiving_unit)
    handling = units.routing_path(dossier.handling_unit)
    return [envelope(event, receiving, handling, first + offset) for offset, event in enumerate(pending)]


def envelope(
    event: DossierEvent,
    unit_path: str,
    handling_unit_path: str | None,
    sequence: int,
    **fixed: Any,
) -> Event:
    """One dossier event as published; the test simulators build theirs with it too (``fixed``: an
    ``id`` and ``time`` they choose), so a payload change here breaks the metrics tests."""
    return build_event(
        event.source,
        event.name,
        subject=event.facts.code,
        data=event.data,
        unit_path=unit_path,
        handling_unit_path=handling_unit_path,
        sequence=sequence,
        **fixed,
    )
