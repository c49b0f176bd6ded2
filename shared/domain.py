"""What every service's domain shares: the domain event, recorded by an aggregate, published by the
unit of work. Plain Python, no framework (the domain imports nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """A fact an aggregate recorded. Subclasses are dataclasses whose fields are the event's data;
    ``name`` is the event name of docs/contracts.md §1 (``received``), ``source`` the service (``dossier``).

    The aggregate appends it to its ``events``; the unit of work takes it from there at commit and
    writes it to the outbox, so no code path can forget one.
    """

    source: ClassVar[str]
    name: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        """The event's ``data`` members, in field order."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


class DomainError(Exception):
    """A rule of the domain forbids what was asked; nothing changed. The API answers 409 with
    ``facts`` as members of the problem (shared/http.py maps every domain error, in one place)."""

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class InvalidArgument(DomainError):
    """A value given breaks a rule of the domain; ``field`` names it. The API answers 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message
