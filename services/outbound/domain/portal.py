"""What the national portal is told about a dossier, field by field (docs/portal-and-subscriptions.md).

Plain Python: a dossier event's status facts, the few personal fields the dossier service lends for
the portal (never carried on an event), and what this service remembers of the dossier's life become
the adapter's ``DongBoHoSoMC`` record and ``CapNhatTienDoHoSoMC`` step. The status code is the
vocabulary's own (shared/vocabulary.py ``Status`` holds the portal's codes 1-10), never rewritten:
a stopped dossier is 8, a resolved one 9. Dates are ``yyyyMMddHHmmss``, 24-hour, Vietnam local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from shared.vocabulary import ReturnMethod, Status

PORTAL_DATE = "%Y%m%d%H%M%S"
# The events the portal hears of: each is one processing step. The due-time warnings change nothing.
NOT_A_STEP = frozenset({"due_soon", "overdue"})
DESK, AGENCY, LEADER, CLERK = "Cán bộ tiếp nhận", "Chuyên viên xử lý", "Lãnh đạo", "Văn thư"
# NoiDungXuLy and ChucDanh of each step; the side says whose unit acted (the receiving unit's desk
# or the handling agency).
STEPS: dict[str, tuple[str, str, str]] = {
    event: (content, title, side)
    for event, content, title, side in (
        ("registered", "Đăng ký hồ sơ trực tuyến", DESK, "receiving"),
        ("received", "Tiếp nhận hồ sơ", DESK, "receiving"),
        ("refused", "Từ chối tiếp nhận hồ sơ", DESK, "receiving"),
        ("processing_started", "Chuyển hồ sơ xử lý", DESK, "receiving"),
        ("supplement_requested", "Yêu cầu bổ sung hồ sơ", AGENCY, "handling"),
        ("supplemented", "Công dân bổ sung hồ sơ", DESK, "receiving"),
        ("payment_requested", "Yêu cầu thực hiện nghĩa vụ tài chính", AGENCY, "handling"),
        ("paid", "Đã thực hiện nghĩa vụ tài chính", DESK, "receiving"),
        ("appraised", "Thẩm định hồ sơ", AGENCY, "handling"),
        ("transferred", "Chuyển xử lý liên thông", AGENCY, "handling"),
        ("decided", "Phê duyệt kết quả", LEADER, "handling"),
        ("signed", "Ký kết quả", LEADER, "handling"),
        ("stamped", "Đóng dấu kết quả", CLERK, "handling"),
        ("sent_back_for_appraisal", "Trả lại thẩm định", LEADER, "handling"),
        ("resolved", "Đã xử lý xong", AGENCY, "handling"),
        ("returned", "Trả kết quả", DESK, "receiving"),
        ("withdrawn", "Công dân rút hồ sơ", DESK, "receiving"),
        ("stopped", "Dừng xử lý", AGENCY, "handling"),
        ("resumed", "Tiếp tục xử lý", AGENCY, "handling"),
        ("apologized", "Gửi thư xin lỗi, hẹn lại ngày trả", LEADER, "handling"),
    )
}
CITIZEN = "1"  # LoaiDoiTuong: công dân (the applicant files with a citizen ID)
FINANCIAL_OBLIGATION = "Nghĩa vụ tài chính"  # a payment the handling agency asked for
RESULT_TITLES = {"approved": "Kết quả giải quyết", "rejected": "Văn bản từ chối giải quyết"}


def portal_date(moment: datetime | str | None, zone: tzinfo) -> str:
    """``yyyyMMddHHmmss`` on the 24-hour clock in ``zone``; empty when there is no such date."""
    if moment in (None, ""):
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(zone).strftime(PORTAL_DATE)


@dataclass(frozen=True)
class Personal:
    """What the dossier service lends for the portal (its portal-record read), never on an event: the
    applicant's contact, the procedure's names, the documents and fees the receipt lists, the payments
    asked for (``amount_vnd``, ``requested_at``, ``paid_at``) and the sealed result (``decision``,
    ``number``, ``issued_at``)."""

    full_name: str
    phone: str | None
    email: str | None
    procedure_name: str
    field_name: str
    documents: tuple[dict[str, Any], ...] = ()
    fees: tuple[dict[str, Any], ...] = ()
    payments: tuple[dict[str, Any], ...] = ()
    results: tuple[dict[str, Any], ...] = ()


@dataclass
class History:
    """What this service remembers of a dossier between its events: the dates the portal shows after
    the event that set them, the supplements' appointments, the steps sent (for a full re-sync)."""

    resolved_at: str | None = None
    returned_at: str | None = None
    last_step_at: str | None = None
    supplements: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> History:
        return cls(**(stored or {}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "resolved_at": self.resolved_at,
            "returned_at": self.returned_at,
            "last_step_at": self.last_step_at,
            "supplements": list(self.supplements),
            "steps": list(self.steps),
        }


def unit_name(names: dict[str, str], code: str) -> str:
    return names.get(code, code)


def step(name: str, data: dict[str, Any], history: History, names: dict[str, str], zone: tzinfo) -> dict:
    """The ``CapNhatTienDoHoSoMC`` item of one event (a step begins where the previous one ended)."""
    content, title, side = STEPS[name]
    # A transfer is done by the unit handing the dossier over; the event names the one taking it.
    unit = data["receiving_unit"] if side == "receiving" else data.get("from_unit") or data["handling_unit"]
    started = history.last_step_at or data.get("received_at") or data["occurred_at"]
    return {
        "MaHoSo": data["code"],
        "NguoiXuLy": unit_name(names, unit),
        "ChucDanh": title,
        "ThoiDiemXuLy": portal_date(data["occurred_at"], zone),
        "PhongBanXuLy": unit_name(names, unit),
        "NoiDungXuLy": content,
        "TrangThai": int(Status(data["status"])),
        "NgayBatDau": portal_date(started, zone),
        "NgayKetThucTheoQuyDinh": portal_date(data.get("step_due_at") or data.get("due_at"), zone),
    }


def remember(name: str, data: dict[str, Any], history: History, item: dict[str, Any] | None) -> History:
    """The history after the event (its dates and supplement appointments), ``item`` its step."""
    after = History.of(history.as_dict())
    if name == "resolved":
        after.resolved_at = data.get("resolved_at") or data["occurred_at"]
    elif name == "returned":
        after.returned_at = data.get("returned_at") or data["occurred_at"]
    elif name == "supplement_requested":
        after.supplements.append({"requested_at": data["occurred_at"], "due_before": data.get("due_at")})
    elif name == "supplemented" and after.supplements:
        after.supplements[-1] = {**after.supplements[-1], "due_after": data.get("due_at")}
    if item is not None:
        after.last_step_at = data["occurred_at"]
        after.steps.append(item)
    return after


def record(
    data: dict[str, Any], history: History, personal: Personal, names: dict[str, str], zone: tzinfo
) -> dict[str, Any]:
    """The ``DongBoHoSoMC`` item: the dossier as it stands after the event ``data`` describes."""
    return {
        "MaHoSo": data["code"],
        "MaTTHC": data["procedure_code"],
        "TenTTHC": personal.procedure_name,
        "MaLinhVuc": data["procedure_field"],
        "TenLinhVuc": personal.field_name,
        "KenhThucHien": int(data["channel"]),  # 1 trực tiếp, 2 trực tuyến, 3 qua bưu chính
        "ChuHoSo": personal.full_name,
        "LoaiDoiTuong": CITIZEN,
        "MaDoiTuong": "",
        "ThongTinKhac": "",
        "Email": personal.email or "",
        "Fax": "",
        "SoDienThoai": personal.phone or "",
        "TrichYeuHoSo": personal.procedure_name,
        "NgayTiepNhan": portal_date(data.get("received_at"), zone),
        "NgayHenTra": portal_date(data.get("due_at"), zone),
        "TrangThaiHoSo": int(Status(data["status"])),
        "NgayTra": portal_date(history.returned_at, zone),
        "ThongTinTra": "",
        # 1: the result goes back by post; 0: at the desk.
        "HinhThuc": int(ReturnMethod(int(data["return_method"]))),
        "NgayKetThucXuLy": portal_date(history.resolved_at, zone),
        "DonViXuLy": unit_name(names, data["handling_unit"]),
        "GhiChu": "",
        "TaiLieuNop": submitted_documents(personal),
        "DanhSachLePhi": fees(personal, zone),
        "DanhSachHoSoBoSung": [
            {
                "NgayYeuCauBoSung": portal_date(s["requested_at"], zone),
                "NgayHenTraTruoc": portal_date(s.get("due_before"), zone),
                "NgayHenTraMoi": portal_date(s.get("due_after"), zone),
            }
            for s in history.supplements
        ],
        "DanhSachGiayToKetQua": result_documents(personal, zone),
    }


def submitted_documents(personal: Personal) -> list[dict[str, Any]]:
    """``TaiLieuNop``: the documents the receipt (Form 01) lists, with how many originals and copies."""
    return [
        {"TenTaiLieu": doc["name"], "SoBanChinh": doc["original"], "SoBanSao": doc["copies"]}
        for doc in personal.documents
    ]


def fees(personal: Personal, zone: tzinfo) -> list[dict[str, Any]]:
    """``DanhSachLePhi``: the catalogue's fees (no dates), then each payment the handling agency asked
    for, when it asked and when it was paid (empty until then)."""
    listed = [
        {"TenPhiLePhi": fee["name"], "MucPhi": fee["amount_vnd"], "NgayYeuCau": "", "NgayThanhToan": ""}
        for fee in personal.fees
    ]
    asked = [
        {
            "TenPhiLePhi": FINANCIAL_OBLIGATION,
            "MucPhi": payment["amount_vnd"],
            "NgayYeuCau": portal_date(payment["requested_at"], zone),
            "NgayThanhToan": portal_date(payment.get("paid_at"), zone),
        }
        for payment in personal.payments
    ]
    return listed + asked


def result_documents(personal: Personal, zone: tzinfo) -> list[dict[str, Any]]:
    """``DanhSachGiayToKetQua``: the sealed result (or reasoned refusal), its number and date of issue."""
    return [
        {
            "TenGiayTo": f"{RESULT_TITLES.get(result['decision'], RESULT_TITLES['approved'])}: "
            f"{personal.procedure_name}",
            "SoKyHieu": result.get("number") or "",
            "NgayBanHanh": portal_date(result["issued_at"], zone),
        }
        for result in personal.results
    ]


@dataclass(frozen=True)
class RetryPolicy:
    """How often a dossier's failing sync is tried again before it is parked for an operator."""

    delays: tuple[float, ...]
    max_attempts: int

    def after_failure(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failed tries; None: park the dossier."""
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delays[min(attempts, len(self.delays)) - 1])
