"""The dossier service, behind one small client, with the payment service's own token (role
``payment_service`` over the deployment's units): what a dossier owes (``payment-due``, with the
citizen's proof when the citizen asks) and recording a confirmed payment through the same
``record_payment`` action the desk uses at the counter, with the transaction reference as its
``Idempotency-Key`` (a retry gets the first answer; the dossier publishes ``dossier.paid`` once). The
calls go through :class:`shared.neighbours.Neighbour` (``dossier``: timeouts, bounded retries, a
circuit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.neighbours import Neighbour, NeighbourUnavailable, Policy


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
    def __init__(self, base_url: str, token: str, policy: Policy, *, service: str = "payment") -> None:
        self.neighbour = Neighbour(
            service, "dossier", base_url, policy, traced=True, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self.neighbour.close()

    def dues(self, code: str, *, secret: str | None = None, id_number: str | None = None) -> Dues:
        proof = {k: v for k, v in (("secret", secret), ("id_number", id_number)) if v is not None}
        body = self._post(f"/api/v1/dossiers/{quote(code, safe='')}/payment-due", proof)
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
            f"/api/v1/dossiers/{quote(code, safe='')}/actions/record_payment",
            {"receipt_number": reference},
            idempotency_key=reference,
        )

    def _post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        try:
            # payment-due only reads; record_payment carries its Idempotency-Key.
            response = self.neighbour.request(
                "POST", path, json=body, idempotency_key=idempotency_key, idempotent=True
            )
        except NeighbourUnavailable as exc:
            raise DossierUnavailable(f"dossier service: {exc.reason}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text[:300]}
        if response.status_code >= 400:
            raise DossierRefused(response.status_code, answer if isinstance(answer, dict) else {})
        return answer
