"""The payment service's entrypoints: parse, call one use case, respond.

Where a payment's life is decided: :mod:`services.payment.domain.model` (the platform's messages:
:mod:`services.payment.domain.protocol`). The use cases: :mod:`services.payment.service_layer`. The
platform and the dossier service behind one client each: :mod:`services.payment.platform`,
:mod:`services.payment.dossier_client`. This service publishes no event (its broker user serves its
readiness only): a confirmed payment becomes the dossier's ``dossier.paid`` through the dossier
service's ``record_payment``.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from werkzeug.wrappers import Response

from services.payment import service_layer as payments
from services.payment.dependencies import Adapters, reconcile_timer
from services.payment.domain.model import Payment
from services.payment.models import SERVICE, pipeline, rejections
from services.payment.openapi import document as openapi_document
from services.payment.schemas import PaymentQuerySchema, PaymentSchema, StartedSchema, StartRequestSchema
from shared import retention
from shared.auth import Auth, Principal
from shared.domain import DomainError
from shared.http import api, problem_for, read_json, read_query
from shared.operations import OperationalEndpoints
from shared.problems import (
    NotFound,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

START_REQUEST = StartRequestSchema()
STARTED = StartedSchema()
PAYMENT = PaymentSchema()
PAYMENT_QUERY = PaymentQuerySchema()
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PaymentService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline, relay=False)  # it publishes nothing
    # Refused confirmations are kept for forensics for RETENTION_REJECTED_WEBHOOKS_DAYS.
    retained = (retention.Prunable(rejections, "received_at", "RETENTION_REJECTED_WEBHOOKS_DAYS"),)
    auth = Auth()
    units = Units()
    calendar = Calendar()
    adapters = Adapters()

    def context(self) -> payments.PaymentContext:
        settings = self.adapters.settings
        return payments.PaymentContext(
            units=self.units,
            calendar=self.calendar,
            platform=self.adapters.platform,
            dossiers=self.adapters.dossiers,
            partner=settings.partner.partner,
            secret=settings.partner.secret,
            window=settings.window,
            batch=settings.batch,
        )

    # --- starting a payment ------------------------------------------------------------------------

    @api("POST", "/api/v1/payments")
    def start_payment(self, request):
        """The citizen (code + the receipt's proof) or the desk (its token) gets the payment link."""
        self._limit(request)
        principal = self.auth.principal(request) if request.headers.get("Authorization") else None
        body = read_json(request, START_REQUEST)
        started = self._start(request, principal, body["code"], body.get("secret"), body.get("id_number"))
        return 201, present_started(started)

    @api("POST", "/thanh-toan")
    def start_payment_page(self, request):
        """The lookup page's "Thanh toán trực tuyến" form: a page that goes on to the platform."""
        form = request.form
        code, secret, id_number = form.get("ma", ""), form.get("s") or None, form.get("cccd") or None
        try:
            self._limit(request)
            if not code.strip() or len(code) > 60 or (secret is None) == (id_number is None):
                raise ValidationFailed("ma and one of s, cccd are needed")
            started = self._start(request, None, code, secret, id_number)
        except (Problem, DomainError) as exc:
            problem = problem_for(exc) if isinstance(exc, DomainError) else exc
            return _page(
                "Không thể thanh toán", _REFUSALS.get(problem.status, _REFUSALS[503]), status=problem.status
            )
        url = html.escape(started.payment.payment_url or "", quote=True)
        amount = f"{started.payment.amount_vnd:,}".replace(",", ".")
        text = (
            f"Hồ sơ {html.escape(started.payment.dossier_code)}: {amount} đồng. Đang chuyển đến Nền tảng "
            f'thanh toán… <a href="{url}">Tiếp tục</a>'
        )
        return _page("Thanh toán trực tuyến", text, refresh=url)

    def _start(
        self, request, principal: Principal | None, code: str, secret: str | None, id_number: str | None
    ):
        command = payments.StartPayment(
            code=code,
            client_ip=request.remote_addr or "",
            secret=secret,
            id_number=id_number,
            principal=principal,
        )
        try:
            return payments.start_payment(command, self.uow, self.context())
        except payments.Unavailable as exc:
            raise ServiceUnavailable(exc.detail) from exc

    # --- the platform's confirmations ---------------------------------------------------------------

    @api("POST", "/api/v1/platform/confirmations")
    def confirm(self, request):
        """A confirmation, MaXacThuc checked over its fields; kept and 401 when it is not the platform's."""
        self._limit(request, self.adapters.confirmations)
        command = payments.ReceiveConfirmation(request.get_data(cache=True), request.remote_addr)
        try:
            confirmed = payments.receive_confirmation(command, self.uow, self.context())
        except payments.ConfirmationRejected as exc:
            raise Unauthorized(f"confirmation refused: {exc.detail}") from exc
        return {"MaLoi": "00", "MaThamChieu": confirmed.reference, "outcome": confirmed.outcome}

    @reconcile_timer
    def reconcile(self) -> dict[str, int]:
        """What is still open: pending past the window's start, owed to the dossier, the receipts."""
        return payments.reconcile(payments.Reconcile(), self.uow, self.context())

    # --- reading -------------------------------------------------------------------------------------

    @api("GET", "/api/v1/payments/<string:reference>")
    def read_payment(self, request, reference):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            return present(
                payments.read_payment(payments.ReadPayment(principal, reference), tx, self.context())
            )

    @api("GET", "/api/v1/payments")
    def dossier_payments(self, request):
        """A dossier's payments (``?dossier_code=``), newest first, for staff of its jurisdiction."""
        principal = self.auth.principal(request)
        code = read_query(request, PAYMENT_QUERY)["dossier_code"]
        with self.uow.transaction() as tx:
            found = payments.dossier_payments(payments.ReadPayment(principal, code), tx, self.context())
        return {"dossier_code": code, "results": [present(p) for p in found]}

    @api("GET", "/api/v1/payments/<string:reference>/receipt")
    def payment_receipt(self, request, reference):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            payment = payments.read_payment(payments.ReadPayment(principal, reference), tx, self.context())
        if payment.receipt is None:
            raise NotFound(f"payment {reference} has no receipt yet")
        return Response(payment.receipt, content_type=payment.receipt_type or "application/octet-stream")

    def _limit(self, request, window=None) -> None:
        window = window or self.adapters.starts
        wait = window.allow(request.remote_addr or "unknown")
        if wait is not None:
            raise TooManyRequests(
                f"at most {window.limit} requests a minute from one address; retry in {wait:.0f} s"
            )


_REFUSALS = {
    404: "Không tìm thấy hồ sơ với mã hồ sơ và mã tra cứu này. Kiểm tra lại mã trên Giấy tiếp nhận.",
    409: "Hồ sơ không ở trạng thái chờ thực hiện nghĩa vụ tài chính, hoặc đã được thanh toán.",
    422: "Vui lòng tra cứu hồ sơ trước, rồi chọn Thanh toán trực tuyến.",
    429: "Bạn đã thử quá nhiều lần. Vui lòng thử lại sau một phút.",
    503: "Hệ thống thanh toán đang bận. Vui lòng thử lại sau.",
}


def _page(title: str, text: str, *, status: int = 200, refresh: str | None = None) -> Response:
    meta = f'<meta http-equiv="refresh" content="0; url={refresh}">' if refresh else ""
    body = (
        f'<!doctype html><html lang="vi"><head><meta charset="utf-8">{meta}<title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{text}</p></body></html>"
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def present_started(started: payments.Started) -> dict[str, Any]:
    payment = started.payment
    return STARTED.dump(
        {
            "reference": payment.reference,
            "dossier_code": payment.dossier_code,
            "amount_vnd": payment.amount_vnd,
            "payment_url": payment.payment_url,
            "reused": started.reused,
        }
    )


def present(payment: Payment) -> dict[str, Any]:
    return PAYMENT.dump(
        {
            **{name: getattr(payment, name) for name in PAYMENT.fields if hasattr(payment, name)},
            "status": payment.status.value,
            "receipt_kept": payment.receipt is not None,
        }
    )
