"""What a consumer checks before it believes an event (docs/security.md): nothing on the bus is trusted.

Broker permissions keep each service to its own routing keys (``dossier.*`` for the dossier service, …);
these checks make the consumer refuse what still does not add up, whoever published it:

* the routing key, the envelope's ``source`` and its ``type`` agree, and the type is in the catalogue;
* ``data`` validates against the catalogue's schema — the one the producer builds the event with — read
  tolerantly (docs/contracts.md §6): a field this version does not know is left out, not refused, so a
  newer producer's additive change does not dead-letter anything during a rolling upgrade;
* every unit named (the paths, and ``*_unit`` fields of ``data``) is a unit of the configured map, and each
  path is that unit's path.

A refused event is dead-lettered at once with the reason (:class:`EventRejected`), never retried and
never acked as if it had been handled. Handlers raise :class:`EventRejected` too, for what only they can
see: an event whose ``(subject, sequence)`` another event id already holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from functools import cache

from marshmallow import ValidationError

from shared.events import CATALOGUE, Event, EventType, read_data
from shared.units import UnitRegistry


class EventRejected(Exception):
    """An event this consumer will not act on; the message says why (it goes with the dead letter)."""


@cache
def catalogue() -> Mapping[str, EventType]:
    """Every service's event types, the producers' own schemas (imported once)."""
    from shared.asyncapi import load_catalogue

    load_catalogue()
    return CATALOGUE


def _check_units(event: Event, cc: Iterable[str], units: UnitRegistry) -> None:
    paths = [("unitpath", event.unit_path)]
    if event.handling_unit_path:
        paths.append(("handlingunitpath", event.handling_unit_path))
    prefix = f"{event.source}.{event.name}."
    for key in cc:
        if not key.startswith(prefix):
            raise EventRejected(f"CC routing key {key!r} is not one of {event.type} ({prefix}<unit path>)")
        paths.append(("CC", key.removeprefix(prefix)))
    for attribute, path in paths:
        code = path.rsplit(".", 1)[-1]
        if code not in units:
            raise EventRejected(f"{attribute} {path!r}: unknown unit {code!r}")
        if units.routing_path(code) != path:
            raise EventRejected(f"{attribute} {path!r} is not the path of unit {code} in this map")
    for key, value in event.data.items():
        if key.endswith("_unit") and isinstance(value, str) and value not in units:
            raise EventRejected(f"data.{key}: unknown unit {value!r}")


def verify_delivery(event: Event, routing_key: str, cc: Iterable[str], units: UnitRegistry) -> Event:
    """``event`` as its handler gets it (``data`` read as this version reads it, :func:`read_data`).

    Raise :class:`EventRejected` unless ``event``, delivered under ``routing_key``, adds up."""
    entry = catalogue().get(event.type)
    if entry is None:
        raise EventRejected(f"type {event.type} is not in the event catalogue")
    cc = list(cc)
    # RabbitMQ delivers a copy routed by a CC key under the message's own routing key; accept either.
    if routing_key != event.routing_key and routing_key not in cc:
        raise EventRejected(
            f"routing key {routing_key!r} does not match source {event.source!r}, type {event.type} "
            f"and unit path {event.unit_path!r} (expected {event.routing_key!r})"
        )
    try:
        event = dataclasses.replace(event, data=read_data(entry, event.data))
    except ValidationError as exc:
        raise EventRejected(f"data does not match the schema of {event.type}: {exc.messages}") from exc
    _check_units(event, cc, units)
    return event
