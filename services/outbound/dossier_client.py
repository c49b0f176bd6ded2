"""The dossier service's portal-record read: the applicant's name, phone and email, the procedure's
names, the documents, fees, payments and sealed result, which the portal needs and no event carries.
Authorised by a token with the ``portal_sync`` role over the deployment's units (in development minted
with the development key). The call is a :class:`shared.neighbours.Neighbour` (``dossier``,
``DOSSIER_*`` settings); when it fails the sync is tried again later."""

from __future__ import annotations

from typing import Any

from services.outbound.domain.portal import Personal
from services.outbound.portal import PortalUnavailable
from shared.neighbours import Neighbour, NeighbourUnavailable, Policy

NEIGHBOUR = "dossier"
# Another motcua service on the same network: connect 2 s, read 5 s, 3 attempts.
POLICY = Policy(connect_timeout=2.0, read_timeout=5.0, attempts=3, backoff=0.3, retry_after_max=5.0)


class DossierUnavailable(PortalUnavailable):
    """The dossier service could not lend the record now: the sync is tried again later."""

    outcome = "dossier_unavailable"


class DossierClient:
    def __init__(self, base_url: str, token: str, policy: Policy = POLICY, *, service: str = "outbound"):
        self.neighbour = Neighbour(
            service, NEIGHBOUR, base_url, policy, traced=True, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self.neighbour.close()

    def personal(self, code: str) -> Personal:
        try:
            response = self.neighbour.request("GET", f"/api/v1/dossiers/{code}/portal-record")
        except NeighbourUnavailable as exc:
            error = DossierUnavailable(f"dossier service: {exc.reason}")
            error.circuit_open = exc.circuit_open
            raise error from exc
        if response.status_code != 200:
            raise DossierUnavailable(f"dossier service: HTTP {response.status_code}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        applicant = body.get("applicant") or {}
        return Personal(
            full_name=applicant.get("full_name") or "",
            phone=applicant.get("phone"),
            email=applicant.get("email"),
            procedure_name=body.get("procedure_name") or "",
            field_name=body.get("field_name") or "",
            documents=tuple(body.get("documents") or ()),
            fees=tuple(body.get("fees") or ()),
            payments=tuple(body.get("payments") or ()),
            results=tuple(body.get("results") or ()),
        )
