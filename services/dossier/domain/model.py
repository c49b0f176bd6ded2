"""The dossier (hồ sơ) and its life, as plain Python: no framework, no SQL.

Statuses carry the national portal's codes (DOMAIN.md). Every change of state goes through a method
of :class:`Dossier`, which checks the rule and records a :class:`DomainEvent`; the service layer turns
those into published events through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    """The national portal's dossier statuses."""

    REGISTERED = 1  # Mới đăng ký
    RECEIVED = 2  # Được tiếp nhận
    REFUSED = 3  # Không được tiếp nhận
    PROCESSING = 4  # Đang xử lý
    SUPPLEMENT_REQUESTED = 5  # Yêu cầu bổ sung giấy tờ
    AWAITING_PAYMENT = 6  # Yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWN = 7  # Công dân yêu cầu rút hồ sơ
    STOPPED = 8  # Dừng xử lý
    RESOLVED = 9  # Đã xử lý xong
    RETURNED = 10  # Đã trả kết quả

    @property
    def label(self) -> str:
        return self.name.lower()


class Channel(IntEnum):
    """Kênh: how the dossier reached the desk."""

    COUNTER = 1
    ONLINE = 2
    POSTAL = 3


class ReturnMethod(IntEnum):
    """How the result goes back to the applicant."""

    COUNTER = 0
    POSTAL = 1


class DomainError(Exception):
    """A rule of the lifecycle forbids what was asked."""


@dataclass(frozen=True)
class DomainEvent:
    name: str
    data: dict[str, Any]


@dataclass
class Dossier:
    """A dossier received by a one-stop desk (receiving unit) and handled by an agency."""

    code: str
    procedure_code: str
    procedure_version: int
    procedure_field: str
    receiving_unit: str
    handling_unit: str
    channel: Channel
    return_method: ReturnMethod
    status: Status
    received_at: datetime
    due_at: datetime
    applicant: dict[str, Any]
    event_sequence: int = 0
    events: list[DomainEvent] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def receive(
        cls,
        *,
        code: str,
        procedure_code: str,
        procedure_version: int,
        procedure_field: str,
        receiving_unit: str,
        handling_unit: str,
        channel: Channel,
        return_method: ReturnMethod,
        received_at: datetime,
        due_at: datetime,
        applicant: dict[str, Any],
    ) -> Dossier:
        """Tiếp nhận: a complete, valid dossier is received with its appointment date (Form 01)."""
        if due_at <= received_at:
            raise DomainError("the appointment must come after the receipt")
        dossier = cls(
            code=code,
            procedure_code=procedure_code,
            procedure_version=procedure_version,
            procedure_field=procedure_field,
            receiving_unit=receiving_unit,
            handling_unit=handling_unit,
            channel=channel,
            return_method=return_method,
            status=Status.RECEIVED,
            received_at=received_at,
            due_at=due_at,
            applicant=applicant,
        )
        dossier._record("received")
        return dossier

    def _record(self, name: str, **extra: Any) -> None:
        self.event_sequence += 1
        if not hasattr(self, "events") or self.events is None:
            self.events = []
        self.events.append(DomainEvent(name, {**self.status_facts(), **extra}))

    def status_facts(self) -> dict[str, Any]:
        """The minimal, non-personal facts every status event carries (CONTRACTS §1)."""
        return {
            "code": self.code,
            "status": int(self.status),
            "status_name": self.status.label,
            "procedure_code": self.procedure_code,
            "procedure_version": self.procedure_version,
            "procedure_field": self.procedure_field,
            "receiving_unit": self.receiving_unit,
            "handling_unit": self.handling_unit,
            "channel": int(self.channel),
            "return_method": int(self.return_method),
            "received_at": self.received_at,
            "due_at": self.due_at,
        }
