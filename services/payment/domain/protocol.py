"""The national payment platform's messages, as provincial systems integrate it (plain Python).

Every message carries ``MaXacThuc``: the SHA-256 (hex, lower case) of its fields' values joined with
``|`` in a fixed order, the partner's secret last (docs/payment.md gives each order). The partner
(``MaDoiTac``) signs its requests so; the platform signs its answers and its confirmations the same way
over their own fields. Times are ``yyyyMMddHHmmss`` on the 24-hour clock, Vietnam time (UTC+7 all
year): one public integration formats them with a 12-hour ``hh``, so 13:05 goes out as 01:05.

Nothing here knows HTTP: the adapter (services/payment/platform.py) and the simulator send these dicts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
VERSION = "2.0.0"  # PhienBan
SUCCESS = "00"  # MaLoi of a success, in every answer and confirmation

# What each message's checksum covers, in order (then the secret).
INIT_FIELDS = (
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "LoaiHinhThanhToan",
    "MaKenhThanhToan",
    "MaThietBi",
    "NgonNgu",
    "MaTienTe",
    "MaNganHang",
    "ThongTinGiaoDich",
    "ThoiGianGD",
    "Ip",
)
INIT_ANSWER_FIELDS = ("MaLoi", "MaThamChieu", "UrlThanhToan")
CONFIRMATION_FIELDS = (
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "MaGiaoDich",
    "SoTien",
    "MaLoi",
    "ThoiGianGD",
)
QUERY_FIELDS = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
QUERY_ANSWER_FIELDS = ("MaLoi", "MaThamChieu", "MaGiaoDich", "SoTien", "TrangThaiGD", "DuongDanBienLai")

# LoaiBanTin of each message.
INIT, CONFIRMATION, QUERY = "PAY", "NOTIFY", "QUERY"
# TrangThaiGD in a query's answer.
PAID, PENDING, FAILED = "1", "3", "4"


def checksum(message: Mapping[str, Any], order: Sequence[str], secret: str) -> str:
    """``MaXacThuc``: SHA-256 hex of the values of ``order`` and the secret, joined with ``|``.
    A missing field counts as empty, so a message without it still has one checksum to compare."""
    text = "|".join([*("" if message.get(name) is None else str(message[name]) for name in order), secret])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed(message: Mapping[str, Any], order: Sequence[str], secret: str) -> dict[str, Any]:
    """``message`` with its ``MaXacThuc``."""
    return {**message, "MaXacThuc": checksum(message, order, secret)}


def verified(message: Mapping[str, Any], order: Sequence[str], secret: str) -> bool:
    """Whether ``message``'s ``MaXacThuc`` is its checksum under ``secret`` (constant-time)."""
    given = str(message.get("MaXacThuc") or "").lower()
    return hmac.compare_digest(checksum(message, order, secret), given)


def timestamp(moment: datetime) -> str:
    """``yyyyMMddHHmmss``, 24-hour, Vietnam time."""
    return moment.astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def parse_timestamp(text: str) -> datetime:
    """A ``yyyyMMddHHmmss`` Vietnam time as an aware datetime; ValueError when it is not one."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"not a yyyyMMddHHmmss time: {text!r}")
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VIETNAM)
