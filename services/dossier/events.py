"""From the dossier's domain events to the published events of docs/contracts.md §1 Events.

:class:`services.dossier.repository.Dossiers` calls :func:`envelope` at commit (never by hand); the
test simulators build theirs with it too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.dossier import schemas  # noqa: F401 - registers the event catalogue
from services.dossier.domain.events import DossierEvent
from shared.events import Event, build_event
from shared.units import UnitRegistry


def public_data(data: Mapping[str, Any], reason_code: str | None) -> dict[str, Any]:
    """What of a domain event's data may go on the bus: officers' free text becomes a code and a flag
    (a reason may name people; its text stays in the forms and the audit trail), a list of supplement
    items its length."""
    public = dict(data)
    if "reason" in public:
        text = public.pop("reason")
        public["has_reason_text"] = bool(text)
        public["reason_code"] = (reason_code or "other") if text else None
    if "items" in public:
        public["items_count"] = len(public.pop("items"))
    return public


def envelope(
    event: DossierEvent,
    unit_path: str,
    handling_unit_path: str | None,
    sequence: int,
    *,
    reason_code: str | None = None,
    **fixed: Any,
) -> Event:
    """One dossier event as published; the test simulators build theirs with it too (``fixed``: an
    ``id`` and ``time`` they choose), so a payload change here breaks the metrics tests."""
    return build_event(
        event.source,
        event.name,
        subject=event.facts.code,
        data=public_data(event.data, reason_code),
        unit_path=unit_path,
        handling_unit_path=handling_unit_path,
        sequence=sequence,
        **fixed,
    )


def departed_from(name: str, data: Mapping[str, Any], units: UnitRegistry) -> tuple[str, ...]:
    """A ``transferred`` event also goes to the unit that hands the dossier over (docs/contracts.md §1)."""
    if name != "transferred" or not data.get("from_unit"):
        return ()
    return (units.routing_path(data["from_unit"]),)
