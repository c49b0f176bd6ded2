"""From the dossier's domain events to the published events of CONTRACTS §1."""

from __future__ import annotations

from services.dossier import schemas  # noqa: F401 - registers the event catalogue
from services.dossier.domain.model import Dossier
from shared.events import Event, build_event
from shared.units import UnitRegistry


def collect(dossier: Dossier, units: UnitRegistry) -> list[Event]:
    """Take the dossier's pending domain events as envelopes, numbered by its event sequence."""
    pending, dossier.events = list(dossier.events), []
    first = dossier.event_sequence - len(pending) + 1
    receiving = units.routing_path(dossier.receiving_unit)
    handling = units.routing_path(dossier.handling_unit)
    return [
        build_event(
            "dossier",
            domain_event.name,
            subject=dossier.code,
            data=domain_event.data,
            unit_path=receiving,
            handling_unit_path=handling,
            also_unit_paths=departed_from(domain_event.name, domain_event.data, units),
            sequence=first + offset,
        )
        for offset, domain_event in enumerate(pending)
    ]


def departed_from(name: str, data: dict, units: UnitRegistry) -> tuple[str, ...]:
    """A ``transferred`` event also goes to the unit that hands the dossier over (CONTRACTS §1)."""
    if name != "transferred" or not data.get("from_unit"):
        return ()
    return (units.routing_path(data["from_unit"]),)
