"""The national portal sync end to end: the dossier service on the real broker and both databases, the
outbound service consuming its events, the portal simulator in its own process, faults injected.

Expected dates are derived by hand: Vietnam is UTC+7 all year (no daylight saving), so a portal date
is the event's UTC instant plus seven hours, written ``yyyyMMddHHmmss`` on the 24-hour clock.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import requests

from services.dossier.service import DossierService
from services.outbound.service import OutboundService
from shared import ops
from shared.migrate import upgrade
from shared.units import EXAMPLE_3LEVEL_FILE
from tests.conftest import service_settings
from tests.support.broker import Subscriber, wait_for
from tests.support.land_dossier import (
    DESK,
    DESK_OFFICER,
    LAND,
    LIFE,
)
from tests.support.portal import portal_simulator

pytestmark = pytest.mark.integration

APPLICANT = {"full_name": "Lê Thị Hồng Nhung", "id_number": "089190004567", "phone": "0912345678"}
NAMES = {"89": "Tỉnh An Giang", "30280": "Phường Mỹ Bình", "89-CT": "Cục Thuế tỉnh An Giang"}
# The portal's status after each event of that life: received 2, processing 4, awaiting payment 6,
# processing again 4 until resolved 9 and returned 10 (docs/domain.md's table of national codes).
STATUSES = [2, 4, 4, 6, 4, 4, 4, 4, 4, 4, 9, 10]


def vn(instant: str | None) -> str:
    if not instant:
        return ""
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC) + timedelta(hours=7)
    return moment.strftime("%Y%m%d%H%M%S")


@pytest.fixture
def world(rabbit_config, database_url, container_factory):
    upgrade("dossier", database_url)
    upgrade("outbound", database_url)
    amqp = rabbit_config["AMQP_URI"]
    units = str(EXAMPLE_3LEVEL_FILE)
    dossier_config = service_settings(amqp, database_url, UNITS_FILE=units, MOTCUA_ENV="development")
    container_factory(DossierService, dossier_config).start()
    dossier_url = f"http://{dossier_config['WEB_SERVER_ADDRESS']}"
    with portal_simulator(hang_seconds=5, slow_seconds=0.5) as portal:
        outbound_config = service_settings(
            amqp,
            database_url,
            UNITS_FILE=units,
            MOTCUA_ENV="development",
            PORTAL_URL=portal.url,
            PORTAL_DSTCODE="79",
            PORTAL_USERNAME="motcua",
            PORTAL_PASSWORD="motcua-development-password",
            PORTAL_UNIT_CODE="000.00.00.H89",
            PORTAL_TIMEOUT_SECONDS=2.5,
            PORTAL_ATTEMPTS=3,
            PORTAL_RETRY_DELAYS="0.3",
            PORTAL_MAX_ATTEMPTS=4,
            PORTAL_SYNC_SECONDS=0.2,
            PORTAL_GAP_SECONDS=5,
            PORTAL_SYNC_UNITS="89",
            DOSSIER_URL=dossier_url,
        )
        container_factory(OutboundService, outbound_config).start()
        yield dossier_url, portal, outbound_config


def live_a_life(dossier_url: str, steps=LIFE) -> str:
    body = {"procedure_code": LAND, "receiving_unit": DESK, "applicant": APPLICANT}
    response = requests.post(f"{dossier_url}/api/v1/dossiers", json=body, headers=DESK_OFFICER, timeout=10)
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    for action, headers, body in steps:
        response = requests.post(
            f"{dossier_url}/api/v1/dossiers/{code}/actions/{action}", json=body, headers=headers, timeout=10
        )
        assert response.status_code == 200, (action, response.text)
    return code


def test_a_dossiers_whole_life_reaches_the_portal_in_order_through_faults(world, rabbit_config):
    dossier_url, portal, _ = world
    # Each fault on the first call it fits: the session refused, an insert the portal says it has,
    # a 503, an update that times out, a step refused with error_code 99, a slow answer.
    portal.inject(
        "expired_session",
        "exists@DongBoHoSoMC",
        "5xx",
        "timeout@DongBoHoSoMC",
        "error@CapNhatTienDoHoSoMC",
        "slow",
    )
    wire = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    try:
        code = live_a_life(dossier_url)
        wire.drain(expect=12)
    finally:
        wire.close()
    events = wire.envelopes
    assert [int(e["sequence"]) for e in events] == list(range(1, 13))

    def all_steps():
        # The hung call is stored only when its hang ends, which can be after the retry has synced the rest.
        received = portal.received()
        hung_call_answered = any(c["fault"] == "timeout" for c in received["calls"])
        return received if len(received["steps"].get(code, [])) >= 12 and hung_call_answered else None

    received = wait_for(all_steps, timeout=60)
    assert received, portal.received()["steps"].get(code)
    assert received["faults_pending"] == []
    steps = received["steps"][code]
    # Each event once, in order, with its status and its time.
    assert [s["TrangThai"] for s in steps] == STATUSES
    assert [s["ThoiDiemXuLy"] for s in steps] == [vn(e["data"]["occurred_at"]) for e in events]
    assert steps[0]["NoiDungXuLy"] == "Tiếp nhận hồ sơ" and steps[-1]["NoiDungXuLy"] == "Trả kết quả"
    assert steps[0]["NgayBatDau"] == vn(events[0]["data"]["received_at"])
    assert [s["NgayBatDau"] for s in steps[1:]] == [s["ThoiDiemXuLy"] for s in steps[:-1]]
    assert steps[0]["PhongBanXuLy"] == NAMES[DESK] and steps[1]["PhongBanXuLy"] == NAMES[DESK]
    # The appraisal by the province; each transfer by the unit handing over: 89 to 89-CT, then back.
    assert [steps[i]["PhongBanXuLy"] for i in (2, 5, 6)] == [NAMES["89"], NAMES["89"], NAMES["89-CT"]]
    assert all(len(s["ThoiDiemXuLy"]) == 14 for s in steps)

    final, resolved, returned = events[-1]["data"], events[-2]["data"], events[-1]["data"]
    record = received["dossiers"][code]
    assert record["MaHoSo"] == code and record["MaTTHC"] == LAND and record["KenhThucHien"] == 1
    assert record["ChuHoSo"] == APPLICANT["full_name"] and record["SoDienThoai"] == APPLICANT["phone"]
    assert record["Email"] == "" and record["TenTTHC"] and record["TenLinhVuc"]
    assert record["TrangThaiHoSo"] == 10 and record["HinhThuc"] == 0  # returned, at the desk
    assert record["NgayTiepNhan"] == vn(final["received_at"]) and record["NgayHenTra"] == vn(final["due_at"])
    assert record["NgayKetThucXuLy"] == vn(resolved["resolved_at"])
    assert record["NgayTra"] == vn(returned["returned_at"])
    assert record["DonViXuLy"] == NAMES[final["handling_unit"]]
    # The lists, from the dossier service's read: the documents and fees of 1.012797 as land.yaml lists
    # them (four originals, no copies; 25 000 and 500 000 đồng), the 525 000 asked for at the
    # payment_requested event and paid at the paid event, and the result sealed at the stamped event —
    # stamped on paper, so with no register number.
    assert record["TaiLieuNop"] == [
        {"TenTaiLieu": name, "SoBanChinh": 1, "SoBanSao": 0}
        for name in (
            "Đơn đăng ký biến động đất đai, tài sản gắn liền với đất (theo mẫu)",
            "Hợp đồng, văn bản chuyển nhượng, tặng cho hoặc văn bản thừa kế đã công chứng, chứng thực",
            "Giấy chứng nhận đã cấp",
            "Tờ khai thuế thu nhập cá nhân, tờ khai lệ phí trước bạ",
        )
    ]
    by_name = {e["type"].rsplit(".", 1)[-1]: e["data"] for e in events}
    assert record["DanhSachLePhi"] == [
        {"TenPhiLePhi": name, "MucPhi": amount, "NgayYeuCau": "", "NgayThanhToan": ""}
        for name, amount in (
            ("Lệ phí cấp Giấy chứng nhận quyền sử dụng đất", 25000),
            ("Phí thẩm định hồ sơ cấp Giấy chứng nhận", 500000),
        )
    ] + [
        {
            "TenPhiLePhi": "Nghĩa vụ tài chính",
            "MucPhi": 525000,
            "NgayYeuCau": vn(by_name["payment_requested"]["occurred_at"]),
            "NgayThanhToan": vn(by_name["paid"]["occurred_at"]),
        }
    ]
    assert record["DanhSachGiayToKetQua"] == [
        {
            "TenGiayTo": f"Kết quả giải quyết: {record['TenTTHC']}",
            "SoKyHieu": "",
            "NgayBanHanh": vn(by_name["stamped"]["occurred_at"]),
        }
    ]

    calls = [
        c for c in received["calls"] if c["body"].get("mahoso", code) == code or c["service"] != "TraCuuHoSo"
    ]
    # The first insert was refused as "already there": the portal was asked again, then updated.
    syncs = [
        (c["body"]["isUpdating"], c["answer"].get("error_code"))
        for c in calls
        if c["service"] == "DongBoHoSoMC" and c["status"] == 200
    ]
    assert syncs[0] == (False, -1) and syncs[1] == (True, 0)
    # The update that timed out was sent again by the transport's retry, and nothing was lost.
    assert [c["status"] for c in calls if c["fault"] == "timeout"] == [504]
    assert all(updating for updating, _ in syncs[1:])
    assert received["logins"] == 2  # the refused session was renewed once
    # Personal data reached the portal through the authorised read, never through an event.
    assert APPLICANT["full_name"] not in str(events) and APPLICANT["phone"] not in str(events)


def test_a_dossier_that_keeps_failing_is_parked_alerted_and_replayed(world):
    dossier_url, portal, config = world
    portal.inject(*["error@DongBoHoSoMC"] * 4)
    code = live_a_life(dossier_url, LIFE[:1])
    metrics_url = f"http://{config['WEB_SERVER_ADDRESS']}/metrics"

    def parked() -> bool:
        return f'motcua_portal_sync_parked{{unit="{DESK}"}} 1.0' in requests.get(metrics_url, timeout=5).text

    assert wait_for(parked, timeout=30)
    page = requests.get(metrics_url, timeout=5).text
    assert f'motcua_portal_sync_backlog{{unit="{DESK}"}} 2.0' in page  # both events wait behind the first
    assert 'motcua_portal_answers_total{outcome="refused"} ' in page
    out = io.StringIO()
    assert ops.main(["portal-parked", "--database-url", config["DATABASE_URL"]], out=out) == 0
    assert code in out.getvalue() and "received #1" in out.getvalue() and "error_code 99" in out.getvalue()
    assert portal.received()["steps"].get(code) is None

    out = io.StringIO()
    assert ops.main(["portal-replay", code, "--database-url", config["DATABASE_URL"]], out=out) == 0
    assert "1 dossier(s) replayed" in out.getvalue()
    synced = wait_for(lambda: len(portal.received()["steps"].get(code, [])) == 2, timeout=30)
    assert synced, portal.received()["steps"].get(code)
    assert [s["TrangThai"] for s in portal.received()["steps"][code]] == [2, 4]
    assert wait_for(
        lambda: f'motcua_portal_sync_parked{{unit="{DESK}"}}' not in requests.get(metrics_url, timeout=5).text
    )

    # The portal lost a day: a full re-sync of the province's dossiers received today (Vietnam date).
    today = (datetime.now(UTC) + timedelta(hours=7)).date().isoformat()
    before = len([c for c in portal.received()["calls"] if c["service"] == "DongBoHoSoMC"])
    out = io.StringIO()
    args = [
        "portal-resync",
        "--unit",
        "89",
        "--from",
        today,
        "--to",
        today,
        "--units-file",
        str(EXAMPLE_3LEVEL_FILE),
    ]
    assert ops.main([*args, "--database-url", config["DATABASE_URL"]], out=out) == 0, out.getvalue()
    assert "1 dossier(s) of 89" in out.getvalue()

    def resent():
        calls = portal.received()["calls"]
        syncs = [c for c in calls if c["service"] == "DongBoHoSoMC"]
        return (
            len(syncs) > before
            and calls[-1]["service"] == "CapNhatTienDoHoSoMC"
            and calls[-1]["answer"]["error_code"] == 0
        )

    assert wait_for(resent, timeout=30)
    last = portal.received()["calls"][-1]["body"]["data"]
    assert [s["TrangThai"] for s in last] == [2, 4]  # every step again, in order
    out = io.StringIO()
    assert (
        ops.main(
            [
                "portal-resync",
                "--unit",
                "nowhere",
                "--from",
                today,
                "--to",
                today,
                "--database-url",
                config["DATABASE_URL"],
            ],
            out=out,
        )
        == 1
    )
