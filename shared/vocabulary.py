"""The contract vocabulary: the codes and words that every service, every event and every test shares.

One module, so that a status code, a channel or a timeliness value is written down once (docs/domain.md,
docs/contracts.md §1). The dossier service's domain decides *when* a dossier changes status; this module only
says what the statuses, channels, return methods, timeliness values, ratings and duration units *are*,
and what every dossier status event carries (:class:`StatusFacts`). Plain Python: no framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any


class Status(IntEnum):
    """The national portal's dossier statuses (docs/domain.md §5)."""

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
        """The ``status_name`` of events and responses: ``supplement_requested`` …"""
        return self.name.lower()

    @property
    def vietnamese(self) -> str:
        """The name the national portal shows a citizen (trạng thái hồ sơ)."""
        return STATUS_NAMES_VI[self]


STATUS_NAMES_VI = {
    Status.REGISTERED: "Mới đăng ký",
    Status.RECEIVED: "Được tiếp nhận",
    Status.REFUSED: "Không được tiếp nhận",
    Status.PROCESSING: "Đang xử lý",
    Status.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung giấy tờ",
    Status.AWAITING_PAYMENT: "Yêu cầu thực hiện nghĩa vụ tài chính",
    Status.WITHDRAWN: "Công dân yêu cầu rút hồ sơ",
    Status.STOPPED: "Dừng xử lý",
    Status.RESOLVED: "Đã xử lý xong",
    Status.RETURNED: "Đã trả kết quả",
}
S = Status
FINAL = frozenset({S.REFUSED, S.WITHDRAWN, S.RETURNED})
# The clock runs only here; supplement, payment and stop freeze it (docs/domain.md §7 Time).
CLOCK_RUNNING = frozenset({S.RECEIVED, S.PROCESSING})
CLOCK_STOPPED = frozenset({S.SUPPLEMENT_REQUESTED, S.AWAITING_PAYMENT, S.STOPPED})
# Received and still being handled: not resolved, returned, withdrawn or refused.
IN_PROCESS = CLOCK_RUNNING | CLOCK_STOPPED
# Can be past the appointment: the clock runs, or it was stopped (payment, stop) after the due time.
# A supplement request is not here: the supplement resets the appointment.
OVERDUE_CANDIDATES = CLOCK_RUNNING | {S.AWAITING_PAYMENT, S.STOPPED}
del S


class Channel(IntEnum):
    """Kênh: how the dossier reached the desk. Events carry the code, the API the label."""

    COUNTER = 1
    ONLINE = 2
    POSTAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> Channel:
        return cls[label.upper()]


class ReturnMethod(IntEnum):
    """How the result goes back to the applicant. Events carry the code, the API the label."""

    COUNTER = 0
    POSTAL = 1

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> ReturnMethod:
        return cls[label.upper()]


CHANNELS = tuple(channel.label for channel in Channel)
RETURN_METHODS = tuple(method.label for method in ReturnMethod)


class Timeliness(StrEnum):
    """How a due time was met, judged on Vietnam local dates (docs/domain.md §10)."""

    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


TIMELINESS = tuple(member.value for member in Timeliness)


class Decision(StrEnum):
    """Phê duyệt: the competent person's decision on the result."""

    APPROVED = "approved"
    REJECTED = "rejected"


DECISIONS = tuple(member.value for member in Decision)


class Rating(StrEnum):
    """The desk tablet's satisfaction rating of a returned dossier."""

    SATISFIED = "satisfied"
    NORMAL = "normal"
    NOT_SATISFIED = "not_satisfied"


RATINGS = tuple(member.value for member in Rating)


class OnlineLevel(StrEnum):
    """Dịch vụ công trực tuyến toàn trình / một phần (Decree 42/2022)."""

    FULL = "full"
    PARTIAL = "partial"


ONLINE_LEVELS = tuple(member.value for member in OnlineLevel)


class NotificationChannel(StrEnum):
    """How the applicant agreed to be told (at filing, kept with the dossier's personal data): an SMS
    under the province's brand name, a Zalo Official Account message (to the phone), an e-mail."""

    SMS = "sms"
    ZALO = "zalo"
    EMAIL = "email"


NOTIFICATION_CHANNELS = tuple(member.value for member in NotificationChannel)


# Mã hồ sơ as the API accepts it: ``{agency identifier}-{YYMMDD}-{NNNN}`` made of these characters.
DOSSIER_CODE_PATTERN = r"^[A-Za-z0-9._-]{1,60}$"

# Why an officer refused, stopped, asked for more, rejected or apologised, as a code: this goes out on
# events; the officer's own words stay behind the authorised API (forms, audit trail) — they may name people.
REASON_CODES = (
    "incomplete_dossier",  # hồ sơ chưa đầy đủ
    "invalid_documents",  # giấy tờ không hợp lệ
    "outside_competence",  # không thuộc thẩm quyền
    "conditions_not_met",  # không đủ điều kiện
    "verification_needed",  # cần xác minh
    "awaiting_other_agency",  # chờ cơ quan khác
    "applicant_request",  # theo đề nghị của người nộp
    "workload",  # quá tải, chậm xử lý
    "other",
)
# Why a report of the postal service closed a dossier that never reached the desk: codes its event
# carries like an officer's (never chosen by an officer, so not in REASON_CODES).
POSTAL_REASON_CODES = (
    "pickup_lost",  # the operator lost the dossier on its way to the desk
    "pickup_cancelled",  # the pickup order was cancelled before the dossier reached the desk
)
EVENT_REASON_CODES = REASON_CODES + POSTAL_REASON_CODES


class DurationUnit(StrEnum):
    """How a procedure's duration and its steps' allotments are counted (``5 working_days`` …)."""

    WORKING_DAYS = "working_days"
    WORKING_HOURS = "working_hours"
    SAME_DAY = "same_day"


DURATION_UNITS = tuple(member.value for member in DurationUnit)


@dataclass(frozen=True, kw_only=True)
class StatusFacts:
    """What every dossier status event carries (docs/contracts.md §1): codes, statuses, units, dates, no
    personal data. The dossier service builds it from a dossier; the test simulators build it from
    their own truth, so both put the same payload on the wire."""

    code: str
    status: Status
    procedure_code: str
    procedure_version: int
    procedure_field: str
    receiving_unit: str
    handling_unit: str
    channel: Channel
    return_method: ReturnMethod
    online_level: str | None
    received_at: datetime | None
    due_at: datetime | None
    original_due_at: datetime | None
    occurred_at: datetime

    def as_data(self) -> dict[str, Any]:
        """The event's ``data`` members in the published order (codes as integers)."""
        return {
            "code": self.code,
            "status": int(self.status),
            "status_name": Status(self.status).label,
            "procedure_code": self.procedure_code,
            "procedure_version": self.procedure_version,
            "procedure_field": self.procedure_field,
            "receiving_unit": self.receiving_unit,
            "handling_unit": self.handling_unit,
            "channel": int(self.channel),
            "return_method": int(self.return_method),
            "online_level": self.online_level,
            "received_at": self.received_at,
            "due_at": self.due_at,
            "original_due_at": self.original_due_at,
            "occurred_at": self.occurred_at,
        }
