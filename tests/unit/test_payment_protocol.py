"""The payment platform's messages (services/payment/domain/protocol.py), checked against what
docs/payment.md says, worked by hand here: the string each MaXacThuc is the SHA-256 of, written out
field by field in the documented order, and the times on the 24-hour Vietnam clock."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from services.payment.domain import protocol

SECRET = "partner-secret-0123456789"
INIT = {
    "LoaiBanTin": "PAY",
    "PhienBan": "2.0.0",
    "MaDoiTac": "MOTCUA",
    "MaThamChieu": "MC20261207130500ABCD1234",
    "SoTien": 150000,
    "LoaiHinhThanhToan": "PAY",
    "MaKenhThanhToan": "1",
    "MaThietBi": "1",
    "NgonNgu": "vi",
    "MaTienTe": "VND",
    "MaNganHang": "",
    "ThongTinGiaoDich": "Nop phi, le phi ho so 26740-261207-0001",
    "ThoiGianGD": "20261207130500",
    "Ip": "203.0.113.7",
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_init_checksum_is_the_sha256_of_the_documented_fields_then_the_secret():
    by_hand = sha256(
        "PAY|2.0.0|MOTCUA|MC20261207130500ABCD1234|150000|PAY|1|1|vi|VND||"
        "Nop phi, le phi ho so 26740-261207-0001|20261207130500|203.0.113.7|partner-secret-0123456789"
    )
    assert protocol.checksum(INIT, protocol.INIT_FIELDS, SECRET) == by_hand
    assert protocol.signed(INIT, protocol.INIT_FIELDS, SECRET)["MaXacThuc"] == by_hand


def test_the_confirmation_and_query_checksums_follow_their_own_documented_orders():
    confirmation = {
        "LoaiBanTin": "NOTIFY",
        "PhienBan": "2.0.0",
        "MaDoiTac": "MOTCUA",
        "MaThamChieu": "MC1",
        "MaGiaoDich": "GD9",
        "SoTien": 150000,
        "MaLoi": "00",
        "ThoiGianGD": "20261207130500",
    }
    assert protocol.checksum(confirmation, protocol.CONFIRMATION_FIELDS, "s") == sha256(
        "NOTIFY|2.0.0|MOTCUA|MC1|GD9|150000|00|20261207130500|s"
    )
    query = {
        "LoaiBanTin": "QUERY",
        "PhienBan": "2.0.0",
        "MaDoiTac": "MOTCUA",
        "MaThamChieu": "MC1",
        "ThoiGianGD": "1",
    }
    assert protocol.checksum(query, protocol.QUERY_FIELDS, "s") == sha256("QUERY|2.0.0|MOTCUA|MC1|1|s")
    answer = {
        "MaLoi": "00",
        "MaThamChieu": "MC1",
        "MaGiaoDich": "GD9",
        "SoTien": 150000,
        "TrangThaiGD": "1",
        "DuongDanBienLai": "http://p/receipts/MC1",
    }
    assert protocol.checksum(answer, protocol.QUERY_ANSWER_FIELDS, "s") == sha256(
        "00|MC1|GD9|150000|1|http://p/receipts/MC1|s"
    )
    assert protocol.checksum(
        {"MaLoi": "00", "MaThamChieu": "MC1", "UrlThanhToan": "u"}, protocol.INIT_ANSWER_FIELDS, "s"
    ) == sha256("00|MC1|u|s")


def test_a_message_verifies_only_with_its_own_fields_and_the_right_secret():
    signed = protocol.signed(INIT, protocol.INIT_FIELDS, SECRET)
    assert protocol.verified(signed, protocol.INIT_FIELDS, SECRET)
    assert protocol.verified(
        {**signed, "MaXacThuc": signed["MaXacThuc"].upper()}, protocol.INIT_FIELDS, SECRET
    )
    assert not protocol.verified(signed, protocol.INIT_FIELDS, "another secret")
    assert not protocol.verified({**signed, "SoTien": 1}, protocol.INIT_FIELDS, SECRET)
    assert not protocol.verified(
        {k: v for k, v in signed.items() if k != "MaXacThuc"}, protocol.INIT_FIELDS, SECRET
    )
    # A field outside the checksum (the receipt's information) does not change it.
    assert protocol.verified({**signed, "ThongTinBienLai": {"MaHoSo": "x"}}, protocol.INIT_FIELDS, SECRET)


def test_times_are_24_hour_vietnam_time():
    # 06:05 UTC is 13:05 in Vietnam (UTC+7): "13", never the 12-hour clock's "01".
    assert protocol.timestamp(datetime(2026, 12, 7, 6, 5, 0, tzinfo=UTC)) == "20261207130500"
    # 17:30 UTC is 00:30 the next day in Vietnam.
    assert protocol.timestamp(datetime(2026, 12, 31, 17, 30, 0, tzinfo=UTC)) == "20270101003000"
    back = protocol.parse_timestamp("20261207130500")
    assert back.astimezone(UTC) == datetime(2026, 12, 7, 6, 5, 0, tzinfo=UTC)
