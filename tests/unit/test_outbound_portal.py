"""What the national portal is told (services/outbound/domain/portal.py), derived by hand: Vietnam is
UTC+7 all year, so a portal date is the UTC instant plus seven hours on the 24-hour clock."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.outbound.domain.portal import (
    History,
    Personal,
    RetryPolicy,
    portal_date,
    record,
    remember,
    step,
)
from services.outbound.domain.subscription import (
    Backoff,
    Subscription,
    contact_channel,
    notice_due,
    refused_address,
)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NAMES = {"26740": "Phường Bến Nghé", "79": "Thành phố Hồ Chí Minh"}
PERSONAL = Personal("Trần Thị Bình", "0912345678", None, "Đăng ký khai sinh", "Hộ tịch")


def facts(status: int, occurred_at: str, **extra) -> dict:
    return {
        "code": "D-1",
        "status": status,
        "procedure_code": "1.001193",
        "procedure_field": "civil_status",
        "receiving_unit": "26740",
        "handling_unit": "79",
        "channel": 2,
        "return_method": 1,
        "received_at": "2026-03-02T01:30:00+00:00",
        "due_at": "2026-03-04T09:00:00+00:00",
        "occurred_at": occurred_at,
        **extra,
    }


def test_portal_dates_are_vietnam_time_on_the_24_hour_clock():
    assert portal_date(datetime(2026, 3, 2, 1, 30, tzinfo=UTC), ZONE) == "20260302083000"
    assert portal_date("2026-03-02T08:05:07+00:00", ZONE) == "20260302150507"  # 15, not 03
    assert portal_date("2026-03-02T18:00:00+00:00", ZONE) == "20260303010000"  # the next local day
    assert portal_date(None, ZONE) == ""


def test_the_status_is_the_events_own_code_a_stopped_dossier_stays_8():
    history = History()
    stopped = facts(8, "2026-03-03T02:00:00+00:00")
    item = step("stopped", stopped, history, NAMES, ZONE)
    assert item["TrangThai"] == 8 and item["NoiDungXuLy"] == "Dừng xử lý"
    assert item["PhongBanXuLy"] == "Thành phố Hồ Chí Minh"  # the handling agency stopped it
    assert record(stopped, history, PERSONAL, NAMES, ZONE)["TrangThaiHoSo"] == 8


def test_the_record_carries_the_personal_read_and_the_remembered_dates():
    history = History()
    for name, status, at, extra in (
        ("received", 2, "2026-03-02T01:30:00+00:00", {}),
        ("supplement_requested", 5, "2026-03-02T03:00:00+00:00", {}),
        ("supplemented", 4, "2026-03-02T07:00:00+00:00", {"due_at": "2026-03-05T09:00:00+00:00"}),
        ("resolved", 9, "2026-03-03T10:00:00+00:00", {"resolved_at": "2026-03-03T10:00:00+00:00"}),
    ):
        data = facts(status, at, **extra)
        history = remember(name, data, history, step(name, data, history, NAMES, ZONE))
    final = record(data, history, PERSONAL, NAMES, ZONE)
    assert (
        final["ChuHoSo"] == "Trần Thị Bình" and final["SoDienThoai"] == "0912345678" and final["Email"] == ""
    )
    assert final["TenTTHC"] == "Đăng ký khai sinh" and final["TenLinhVuc"] == "Hộ tịch"
    assert final["KenhThucHien"] == 2 and final["HinhThuc"] == 1  # online; the result goes back by post
    assert final["NgayTiepNhan"] == "20260302083000" and final["NgayKetThucXuLy"] == "20260303170000"
    assert final["NgayTra"] == ""  # not returned yet
    assert final["DanhSachHoSoBoSung"] == [
        {
            "NgayYeuCauBoSung": "20260302100000",
            "NgayHenTraTruoc": "20260304160000",
            "NgayHenTraMoi": "20260305160000",
        }
    ]
    # Each step begins where the previous one ended; the first at the filing.
    assert [s["NgayBatDau"] for s in history.steps] == [
        "20260302083000",
        "20260302083000",
        "20260302100000",
        "20260302140000",
    ]


def test_the_records_lists_documents_fees_and_the_sealed_result_from_the_read():
    lent = Personal(
        "Trần Thị Bình",
        None,
        None,
        "Đăng ký khai sinh",
        "Hộ tịch",
        documents=({"name": "Tờ khai đăng ký khai sinh", "original": 1, "copies": 0},),
        fees=({"name": "Lệ phí đăng ký khai sinh", "amount_vnd": 0},),
        payments=(
            {
                "amount_vnd": 525000,
                "requested_at": "2026-03-02T03:00:00+00:00",
                "paid_at": "2026-03-02T17:15:00+00:00",
            },
            {"amount_vnd": 30000, "requested_at": "2026-03-03T02:00:00+00:00", "paid_at": None},
        ),
        results=(
            {"decision": "approved", "number": "07/KQ-26740", "issued_at": "2026-03-03T09:45:30+00:00"},
        ),
    )
    final = record(facts(4, "2026-03-03T10:00:00+00:00"), History(), lent, NAMES, ZONE)
    assert final["TaiLieuNop"] == [
        {"TenTaiLieu": "Tờ khai đăng ký khai sinh", "SoBanChinh": 1, "SoBanSao": 0}
    ]
    # The catalogue's fee has no dates; each payment asked for has its request's date and, once paid,
    # the payment's (17:15 UTC is 00:15 the next day in Vietnam).
    assert final["DanhSachLePhi"] == [
        {"TenPhiLePhi": "Lệ phí đăng ký khai sinh", "MucPhi": 0, "NgayYeuCau": "", "NgayThanhToan": ""},
        {
            "TenPhiLePhi": "Nghĩa vụ tài chính",
            "MucPhi": 525000,
            "NgayYeuCau": "20260302100000",
            "NgayThanhToan": "20260303001500",
        },
        {
            "TenPhiLePhi": "Nghĩa vụ tài chính",
            "MucPhi": 30000,
            "NgayYeuCau": "20260303090000",
            "NgayThanhToan": "",
        },
    ]
    assert final["DanhSachGiayToKetQua"] == [
        {
            "TenGiayTo": "Kết quả giải quyết: Đăng ký khai sinh",
            "SoKyHieu": "07/KQ-26740",
            "NgayBanHanh": "20260303164530",
        }
    ]
    # Nothing lent (the read of an older dossier service): empty lists, still well-formed.
    bare = record(facts(2, "2026-03-02T01:30:00+00:00"), History(), PERSONAL, NAMES, ZONE)
    assert bare["TaiLieuNop"] == bare["DanhSachLePhi"] == bare["DanhSachGiayToKetQua"] == []


def test_a_failing_sync_is_tried_again_after_its_delays_then_parked():
    policy, now = RetryPolicy((10.0, 60.0), 4), datetime(2026, 3, 2, tzinfo=UTC)
    assert policy.after_failure(1, now) == now + timedelta(seconds=10)
    assert policy.after_failure(2, now) == now + timedelta(seconds=60)
    assert policy.after_failure(3, now) == now + timedelta(seconds=60)  # the last delay repeats
    assert policy.after_failure(4, now) is None  # parked


# --- subscriptions (services/outbound/domain/subscription.py) ---------------------------------------


class Low:
    uniform = staticmethod(lambda low, high: low)


class High:
    uniform = staticmethod(lambda low, high: high)


class Middle:
    """The jitter's middle: uniform(0.5, 1.5) -> 1.0."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return (low + high) / 2


def test_the_retry_schedule_is_25_times_4_to_the_n_with_jitter_then_dead():
    backoff, now = Backoff(), datetime(2026, 3, 2, tzinfo=UTC)
    # 25, 100, 400, 1600, 6400, 25600 s before tries 2 to 7: about 9.5 hours in all, then dead.
    waits = [(backoff.next_try(n, now, rng=Middle) - now).total_seconds() for n in range(1, 7)]
    assert waits == [25, 100, 400, 1600, 6400, 25600]
    assert backoff.next_try(7, now) is None
    # ±50 %: the second retry (100 s) comes between 50 and 150 s.
    assert [(backoff.next_try(2, now, rng=r) - now).total_seconds() for r in (Low, High)] == [50, 150]
    # Retry-After is honoured when it asks for longer, never shortens the schedule, and is capped at a day.
    assert (backoff.next_try(1, now, 120, rng=Middle) - now).total_seconds() == 120
    assert (backoff.next_try(3, now, 5, rng=Middle) - now).total_seconds() == 400
    assert (backoff.next_try(1, now, 10**9, rng=Middle) - now).total_seconds() == 86400


def test_the_guard_refuses_internal_addresses_unless_allowed():
    assert "loopback" in refused_address("127.0.0.1", ())
    assert "private" in refused_address("10.1.2.3", ()) and "private" in refused_address("192.168.1.5", ())
    assert "link-local" in refused_address("169.254.169.254", ())  # the cloud metadata endpoint
    assert refused_address("fd00:ec2::254", ()) is not None
    assert refused_address("203.113.131.1", ()) is None
    assert refused_address("127.0.0.1", (ipaddress.ip_network("127.0.0.1/32"),)) is None


def test_a_subscription_sees_its_subtree_as_an_amqp_binding_would():
    subscription = Subscription(id="s", owner="o", callback_url="https://x", unit="760", unit_path="79.760")
    assert subscription.matches("vn.motcua.dossier.received", ["79.760.26740"], {})
    assert subscription.matches("vn.motcua.dossier.received", ["79.761.26800", "79.760"], {})  # the CC path
    assert not subscription.matches(
        "vn.motcua.dossier.received", ["79.7600"], {}
    )  # a prefix is not a subtree
    assert not subscription.matches("vn.motcua.dossier.received", ["79"], {})
    subscription.event_types, subscription.procedure = ["vn.motcua.dossier.returned"], "1.001193"
    assert not subscription.matches("vn.motcua.dossier.received", ["79.760"], {"procedure_code": "1.001193"})
    assert subscription.matches("vn.motcua.dossier.returned", ["79.760"], {"procedure_code": "1.001193"})
    assert not subscription.matches("vn.motcua.dossier.returned", ["79.760"], {"procedure_code": "2.000"})


def test_a_contact_hears_of_dead_deliveries_at_most_once_a_day():
    told = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert notice_due(None, told)  # never told: now
    assert not notice_due(told, told + timedelta(hours=23, minutes=59, seconds=59))
    assert notice_due(told, told + timedelta(days=1))  # 24 hours later: again
    assert contact_channel("mot-cua@phuong.gov.vn") == "email"
    assert contact_channel("https://phuong.gov.vn/thong-bao") == "url"
