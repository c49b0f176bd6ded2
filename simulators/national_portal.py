"""A national public service portal simulator: ``python -m simulators.national_portal`` (``make run``).

It speaks the adapter API the outbound service's :class:`~services.outbound.portal.PortalAdapter`
calls: ``POST /auth`` (``{username, password}`` and a ``dstcode`` header) answers ``{error_code: 0,
session}``; ``POST /integration`` with ``{session, madonvi, service, ...}`` serves ``TraCuuHoSo``
(``mahoso``), ``DongBoHoSoMC`` (``isUpdating``, ``data``) and ``CapNhatTienDoHoSoMC`` (``data``). It
checks what it receives as the portal does (every field present, dates ``yyyyMMddHHmmss``, statuses
1-10, an insert of a dossier it holds is refused with "đã tồn tại", an update of one it does not hold
too) and stores it.

It injects the faults the real one shows, each on the next integration call (of one service when
named ``fault@Service``), queued with ``POST /_control/faults {"faults": ["expired_session",
"error@DongBoHoSoMC", ...]}``:

* ``expired_session`` — the session is refused (``error_code`` 401) and forgotten;
* ``error`` — ``error_code`` 99 with a message, nothing stored;
* ``exists`` — an insert finds the dossier already there (a lost earlier answer): it is stored, and
  the answer is ``error_code`` -1 "Hồ sơ đã tồn tại";
* ``timeout`` — no answer before the client's timeout (``--hang-seconds``), nothing stored;
* ``5xx`` — HTTP 503, nothing stored;
* ``slow`` — the answer comes after ``--slow-seconds``, the call succeeds.

``GET /_control/received`` lists what it holds (the dossiers, each one's steps) and every call with
its answer, in order; ``POST /_control/reset`` forgets everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from typing import Any

from werkzeug.wrappers import Request

from simulators.serving import JsonApp, serve

log = logging.getLogger("national-portal-simulator")
FAULTS = ("expired_session", "error", "exists", "timeout", "5xx", "slow")
SERVICES = ("TraCuuHoSo", "DongBoHoSoMC", "CapNhatTienDoHoSoMC")
SESSION_REFUSED = 401
DATE = re.compile(r"^\d{14}$")
RECORD_FIELDS = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "KenhThucHien",
    "ChuHoSo",
    "LoaiDoiTuong",
    "MaDoiTuong",
    "ThongTinKhac",
    "Email",
    "Fax",
    "SoDienThoai",
    "TrichYeuHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "TrangThaiHoSo",
    "NgayTra",
    "ThongTinTra",
    "HinhThuc",
    "NgayKetThucXuLy",
    "DonViXuLy",
    "GhiChu",
    "TaiLieuNop",
    "DanhSachLePhi",
    "DanhSachHoSoBoSung",
    "DanhSachGiayToKetQua",
)
STEP_FIELDS = (
    "MaHoSo",
    "NguoiXuLy",
    "ChucDanh",
    "ThoiDiemXuLy",
    "PhongBanXuLy",
    "NoiDungXuLy",
    "TrangThai",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
)
RECORD_DATES = ("NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy")
# Each list of the record: its items' fields, and which of them are dates.
RECORD_LISTS = {
    "TaiLieuNop": (("TenTaiLieu", "SoBanChinh", "SoBanSao"), ()),
    "DanhSachLePhi": (
        ("TenPhiLePhi", "MucPhi", "NgayYeuCau", "NgayThanhToan"),
        ("NgayYeuCau", "NgayThanhToan"),
    ),
    "DanhSachHoSoBoSung": (
        ("NgayYeuCauBoSung", "NgayHenTraTruoc", "NgayHenTraMoi"),
        ("NgayYeuCauBoSung", "NgayHenTraTruoc", "NgayHenTraMoi"),
    ),
    "DanhSachGiayToKetQua": (("TenGiayTo", "SoKyHieu", "NgayBanHanh"), ("NgayBanHanh",)),
}
STEP_DATES = ("ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh")


def _bad_dates(item: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if item.get(n) not in ("", None) and not DATE.match(str(item[n]))]


def check_record(item: dict[str, Any]) -> str | None:
    missing = [f for f in RECORD_FIELDS if f not in item]
    if missing:
        return f"thiếu trường {', '.join(missing)}"
    if bad := _bad_dates(item, RECORD_DATES):
        return f"sai định dạng ngày {', '.join(bad)}"
    if item["TrangThaiHoSo"] not in range(1, 11):
        return f"TrangThaiHoSo không hợp lệ: {item['TrangThaiHoSo']!r}"
    for name, (fields, dates) in RECORD_LISTS.items():
        if not isinstance(item[name], list):
            return f"{name} không phải danh sách"
        for entry in item[name]:
            if missing := [f for f in fields if f not in entry]:
                return f"{name}: thiếu trường {', '.join(missing)}"
            if bad := _bad_dates(entry, dates):
                return f"{name}: sai định dạng ngày {', '.join(bad)}"
    return None


def check_step(item: dict[str, Any]) -> str | None:
    missing = [f for f in STEP_FIELDS if f not in item]
    if missing:
        return f"thiếu trường {', '.join(missing)}"
    if bad := _bad_dates(item, STEP_DATES):
        return f"sai định dạng ngày {', '.join(bad)}"
    if item["TrangThai"] not in range(1, 11):
        return f"TrangThai không hợp lệ: {item['TrangThai']!r}"
    return None


class Portal(JsonApp):
    """The simulated adapter: a WSGI application over what it holds."""

    def __init__(
        self, *, dstcode: str, username: str, password: str, hang_seconds: float, slow_seconds: float
    ) -> None:
        self.dstcode, self.username, self.password = dstcode, username, password
        self.hang_seconds, self.slow_seconds = hang_seconds, slow_seconds
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.sessions: set[str] = set()
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[dict[str, Any]] = []
        self.faults: deque[str] = deque()
        self.logins = 0

    def _fault_for(self, service: str) -> str | None:
        with self.lock:
            for fault in list(self.faults):
                name, _, only = fault.partition("@")
                if not only or only == service:
                    self.faults.remove(fault)
                    return name
        return None

    def route(self, request: Request) -> tuple[int, dict[str, Any]]:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/health/live":
            return 200, {"status": "up"}
        if request.method == "POST" and path == "/auth":
            return self.login(request)
        if request.method == "POST" and path == "/integration":
            return self.integration(request)
        if request.method == "POST" and path == "/_control/faults":
            names = json.loads(request.get_data())["faults"]
            unknown = [
                n
                for n in names
                if n.partition("@")[0] not in FAULTS or n.partition("@")[2] not in ("", *SERVICES)
            ]
            if unknown:
                return 422, {
                    "error": f"unknown faults {unknown}; known: {list(FAULTS)} (@{'/'.join(SERVICES)})"
                }
            with self.lock:
                self.faults.extend(names)
                return 200, {"queued": len(self.faults)}
        if request.method == "GET" and path == "/_control/received":
            with self.lock:
                return 200, {
                    "dossiers": self.dossiers,
                    "steps": self.steps,
                    "calls": self.calls,
                    "logins": self.logins,
                    "faults_pending": list(self.faults),
                }
        if request.method == "POST" and path == "/_control/reset":
            with self.lock:
                self.reset()
            return 200, {"reset": True}
        return 404, {"error": f"no route {request.method} {path}"}

    def login(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = json.loads(request.get_data() or b"{}")
        if request.headers.get("dstcode") != self.dstcode:
            return 200, {"error_code": 403, "message": "dstcode không hợp lệ"}
        if (body.get("username"), body.get("password")) != (self.username, self.password):
            return 200, {"error_code": 403, "message": "Sai tài khoản hoặc mật khẩu"}
        session = uuid.uuid4().hex
        with self.lock:
            self.sessions.add(session)
            self.logins += 1
        return 200, {"error_code": 0, "session": session}

    def integration(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = json.loads(request.get_data() or b"{}")
        service = body.get("service")
        fault = self._fault_for(service)
        status, answer = self._answer(request, body, service, fault)
        with self.lock:
            self.calls.append(
                {"service": service, "body": body, "fault": fault, "status": status, "answer": answer}
            )
        return status, answer

    def _answer(self, request, body, service, fault) -> tuple[int, dict[str, Any]]:
        if request.headers.get("dstcode") != self.dstcode:
            return 200, {"error_code": 403, "message": "dstcode không hợp lệ"}
        with self.lock:
            if fault == "expired_session":
                self.sessions.discard(body.get("session"))
            if body.get("session") not in self.sessions:
                return 200, {"error_code": SESSION_REFUSED, "message": "Phiên làm việc đã hết hạn"}
        if fault == "5xx":
            return 503, {"error": "Service Unavailable"}
        if fault == "timeout":
            time.sleep(self.hang_seconds)
            return 504, {"error": "Gateway Timeout"}
        if fault == "error":
            return 200, {"error_code": 99, "message": "Lỗi hệ thống, vui lòng thử lại sau"}
        if fault == "slow":
            time.sleep(self.slow_seconds)
        with self.lock:
            if service == "TraCuuHoSo":
                code = body.get("mahoso")
                return 200, {
                    "error_code": 0,
                    "result": [self.dossiers[code]] if code in self.dossiers else [],
                }
            if service == "DongBoHoSoMC":
                return self._sync(body, fault)
            if service == "CapNhatTienDoHoSoMC":
                return self._progress(body)
        return 200, {"error_code": 2, "message": f"service không hợp lệ: {service!r}"}

    def _sync(self, body, fault) -> tuple[int, dict[str, Any]]:
        items = body.get("data")
        if not isinstance(items, list) or not items:
            return 200, {"error_code": 3, "message": "data rỗng"}
        for item in items:
            if problem := check_record(item):
                return 200, {"error_code": 4, "message": problem}
        for item in items:
            code = item["MaHoSo"]
            if not body.get("isUpdating"):
                if fault == "exists":
                    self.dossiers[code] = item
                if code in self.dossiers:
                    return 200, {"error_code": -1, "message": f"Hồ sơ {code} đã tồn tại"}
            elif code not in self.dossiers:
                return 200, {"error_code": -2, "message": f"Hồ sơ {code} không tồn tại"}
        for item in items:
            self.dossiers[item["MaHoSo"]] = item
        return 200, {"error_code": 0, "message": "Thành công"}

    def _progress(self, body) -> tuple[int, dict[str, Any]]:
        items = body.get("data")
        if not isinstance(items, list) or not items:
            return 200, {"error_code": 3, "message": "data rỗng"}
        for item in items:
            if problem := check_step(item):
                return 200, {"error_code": 4, "message": problem}
            if item["MaHoSo"] not in self.dossiers:
                return 200, {"error_code": -2, "message": f"Hồ sơ {item['MaHoSo']} không tồn tại"}
        for item in items:
            self.steps.setdefault(item["MaHoSo"], []).append(item)
        return 200, {"error_code": 0, "message": "Thành công"}


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description="Run the national public service portal simulator.")
    parser.add_argument("--address", default=env.get("PORTAL_SIMULATOR_ADDRESS", "127.0.0.1:8012"))
    parser.add_argument("--dstcode", default=env.get("PORTAL_DSTCODE", "79"))
    parser.add_argument("--username", default=env.get("PORTAL_USERNAME", "motcua"))
    parser.add_argument("--password", default=env.get("PORTAL_PASSWORD", "motcua-development-password"))
    parser.add_argument(
        "--hang-seconds", type=float, default=float(env.get("PORTAL_SIMULATOR_HANG_SECONDS", "15"))
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=float(env.get("PORTAL_SIMULATOR_SLOW_SECONDS", "2"))
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [national-portal] %(message)s")
    portal = Portal(
        dstcode=args.dstcode,
        username=args.username,
        password=args.password,
        hang_seconds=args.hang_seconds,
        slow_seconds=args.slow_seconds,
    )
    return serve(portal, args.address, log, "national portal simulator")


if __name__ == "__main__":
    raise SystemExit(main())
