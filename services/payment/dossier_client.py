"""The dossier service, behind one small client, with the payment service's own token (role
``payment_service`` over the deployment's units): what a dossier owes (``payment-due``, with the
citizen's proof when the citizen asks) and recording a confirmed payment through the same
``record_payment`` action the desk uses at the counter, with the transaction reference as its
``Idempotency-Key`` (a retry gets the first answer; the dossier publishes ``dossier.paid`` once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class DossierUnavailable(Exception):
    """The dossier service did not answer, or failed (5xx): try again later."""


class DossierRefused(Exception):
    """The dossier service answered with a 4xx problem (``status``, ``problem``)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail', '')}")
        self.status, self.problem = status, problem


@dataclass(frozen=True)
class Dues:
    """What a dossier owes (PaymentDueSchema of the dossier service)."""

    code: str
    status: int
    amount_vnd: int | None
    procedure_code: str
    procedure_name: str
    receiving_unit: str
    receiving_unit_name: str
    fees: tuple[dict[str, Any], ...]


class DossierClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0, attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        retry = Retry(
            total=attempts - 1,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=None,  # payment-due reads; record_payment carries an Idempotency-Key
            raise_on_status=False,
        )
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def dues(self, code: str, *, secret: str | None = None, id_number: str | None = None) -> Dues:
        proof = {k: v for k, v in (("secret", secret), ("id_number", id_number)) if v is not None}
        body = self._post(f"/api/v1/dossiers/{requests.utils.quote(code, safe='')}/payment-due", proof)
        return Dues(
            code=body["code"],
            status=int(body["status"]),
            amount_vnd=body.get("amount_vnd"),
            procedure_code=body.get("procedure_code") or "",
            procedure_name=body.get("procedure_name") or "",
            receiving_unit=body["receiving_unit"],
            receiving_unit_name=body.get("receiving_unit_name") or "",
            fees=tuple(body.get("fees") or ()),
        )

    def record_payment(self, code: str, reference: str) -> None:
        """The dossier's ``record_payment``, once per reference (DossierRefused 409: it no longer awaits)."""
        self._post(
            f"/api/v1/dossiers/{requests.utils.quote(code, safe='')}/actions/record_payment",
            {"receipt_number": reference},
            headers={"Idempotency-Key": reference},
        )

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self.http.post(self.base_url + path, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DossierUnavailable(f"dossier service: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise DossierUnavailable(f"dossier service: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text[:300]}
        if response.status_code >= 400:
            raise DossierRefused(response.status_code, answer if isinstance(answer, dict) else {})
        return answer
