"""The national payment platform behind one small client: INIT (a transaction and its payment link),
QUERY (what became of it) and the receipt (biên lai). Every message is signed and every answer checked
(services/payment/domain/protocol.py); a timeout, a refused connection or a 5xx is retried by urllib3's
``Retry`` (the platform keys INIT and QUERY on the reference, so a retry is safe), and what still fails
is :class:`PlatformUnavailable`: the caller tries again later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from services.payment.domain import protocol


class PlatformUnavailable(Exception):
    """The platform did not answer, or answered with something that is not its answer."""


class PlatformRefused(Exception):
    """The platform answered, signed, with an error code (``MaLoi``) other than success."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"MaLoi {code}: {detail}")
        self.code = code


@dataclass(frozen=True)
class PartnerSettings:
    url: str
    partner: str  # MaDoiTac
    secret: str
    timeout: float = 5.0
    attempts: int = 3


@dataclass(frozen=True)
class Order:
    """What INIT sends: the transaction and what the receipt names (no personal data)."""

    reference: str
    amount_vnd: int
    description: str  # ThongTinGiaoDich
    client_ip: str
    at: datetime
    receipt: dict[str, Any]  # ThongTinBienLai


@dataclass(frozen=True)
class QueryAnswer:
    state: str  # TrangThaiGD: protocol.PAID, PENDING or FAILED
    amount_vnd: int
    transaction: str | None
    receipt_url: str | None


class PaymentPlatform:
    def __init__(self, settings: PartnerSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        retry = Retry(
            total=settings.attempts - 1,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=None,  # INIT and QUERY are keyed on the reference: a repeat is harmless
            raise_on_status=False,
        )
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))

    def close(self) -> None:
        self.http.close()

    def init(self, order: Order) -> str:
        """The payment link for the citizen; PlatformRefused, PlatformUnavailable."""
        s = self.settings
        message = {
            "LoaiBanTin": protocol.INIT,
            "PhienBan": protocol.VERSION,
            "MaDoiTac": s.partner,
            "MaThamChieu": order.reference,
            "SoTien": order.amount_vnd,
            "LoaiHinhThanhToan": "PAY",
            "MaKenhThanhToan": "1",  # internet
            "MaThietBi": "1",  # a browser
            "NgonNgu": "vi",
            "MaTienTe": "VND",
            "MaNganHang": "",  # the citizen chooses on the platform's page
            "ThongTinGiaoDich": order.description,
            "ThoiGianGD": protocol.timestamp(order.at),
            "Ip": order.client_ip,
        }
        body = {**protocol.signed(message, protocol.INIT_FIELDS, s.secret), "ThongTinBienLai": order.receipt}
        answer = self._post("/api/v1/payments/init", body, protocol.INIT_ANSWER_FIELDS)
        if answer.get("MaThamChieu") != order.reference or not answer.get("UrlThanhToan"):
            raise PlatformUnavailable(f"the INIT answer is not about {order.reference}")
        return str(answer["UrlThanhToan"])

    def query(self, reference: str, at: datetime) -> QueryAnswer:
        s = self.settings
        message = {
            "LoaiBanTin": protocol.QUERY,
            "PhienBan": protocol.VERSION,
            "MaDoiTac": s.partner,
            "MaThamChieu": reference,
            "ThoiGianGD": protocol.timestamp(at),
        }
        answer = self._post(
            "/api/v1/payments/query",
            protocol.signed(message, protocol.QUERY_FIELDS, s.secret),
            protocol.QUERY_ANSWER_FIELDS,
        )
        state = str(answer.get("TrangThaiGD"))
        if answer.get("MaThamChieu") != reference or state not in (
            protocol.PAID,
            protocol.PENDING,
            protocol.FAILED,
        ):
            raise PlatformUnavailable(f"the QUERY answer is not one about {reference}: {answer}")
        return QueryAnswer(
            state=state,
            amount_vnd=int(answer.get("SoTien") or 0),
            transaction=answer.get("MaGiaoDich") or None,
            receipt_url=answer.get("DuongDanBienLai") or None,
        )

    def receipt(self, url: str) -> tuple[bytes, str]:
        """The receipt's bytes and type, from the link the platform gave (its own host only)."""
        if not url.startswith(self.settings.url.rstrip("/") + "/"):
            raise PlatformUnavailable(f"the receipt link {url!r} is not on the platform")
        try:
            response = self.http.get(url, timeout=self.settings.timeout)
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"receipt: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise PlatformUnavailable(f"receipt: HTTP {response.status_code}")
        return response.content, response.headers.get("Content-Type", "application/octet-stream")

    def _post(self, path: str, body: dict[str, Any], answer_fields: tuple[str, ...]) -> dict[str, Any]:
        url = self.settings.url.rstrip("/") + path
        try:
            response = self.http.post(url, json=body, timeout=self.settings.timeout)
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"{path}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise PlatformUnavailable(f"{path}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise PlatformUnavailable(f"{path}: the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise PlatformUnavailable(f"{path}: the answer is not an object")
        if not protocol.verified(answer, answer_fields, self.settings.secret):
            raise PlatformUnavailable(f"{path}: the answer's MaXacThuc does not check")
        if answer.get("MaLoi") != protocol.SUCCESS:
            raise PlatformRefused(str(answer.get("MaLoi")), str(answer.get("MoTaLoi") or ""))
        return answer
