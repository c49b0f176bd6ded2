"""What every service's domain shares: the domain event, recorded by an aggregate, published by the
unit of work. Plain Python, no framework (the domain imports nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """A fact an aggregate recorded. Subclasses are dataclasses whose fields are the event's data;
    ``name`` is the event name of CONTRACTS §1 (``received``), ``source`` the service (``dossier``).

    The aggregate appends it to its ``events``; the unit of work takes it from there at commit and
    writes it to the outbox, so no code path can forget one.
    """

    source: ClassVar[str]
    name: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        """The event's ``data`` members, in field order."""
        return {field.name: getattr(self, field.name) for field in fields(self)}
