"""Registering a picked-up dossier with the dossier service, with the caller's own token.

The pickup request carries the applicant's identity, which a status event may not carry
(docs/contracts.md §1 Events), so the postal service files the dossier through the dossier service's API — the
same ``POST /api/v1/registrations`` the portal uses — forwarding the caller's ``Authorization``: the
dossier is registered by, and visible to, whoever asked for the pickup, within their jurisdiction.
The call is a :class:`shared.neighbours.Neighbour` (``dossier``; ``DOSSIER_*`` settings); the pickup's
``Idempotency-Key`` makes it safe to retry, and a dossier service that does not answer makes the pickup
a 503 with ``Retry-After`` (nothing registered; the same request again finds its first answer).
"""

from __future__ import annotations

from typing import Any

from shared.neighbours import Neighbour, NeighbourUnavailable, Policy
from shared.problems import Problem, ValidationFailed

NEIGHBOUR = "dossier"
# Another motcua service on the same network: it answers fast or not at all. 31 s at worst.
POLICY = Policy(connect_timeout=2.0, read_timeout=5.0, attempts=3, backoff=0.2, retry_after_max=5.0)


class RegistrationRefused(Problem):
    status, slug, title = 502, "dossier-registration-refused", "The dossier service refused the dossier"
    explanation = (
        "The postal service registers a picked-up dossier with the dossier service, which refused it "
        "(`detail` quotes its answer); the status is the dossier service's own 4xx, or 502 when it failed. "
        "Nothing was registered."
    )


class DossierClient:
    def __init__(self, base_url: str, policy: Policy = POLICY, *, service: str = "postal") -> None:
        self.neighbour = Neighbour(service, NEIGHBOUR, base_url, policy, traced=True)

    def close(self) -> None:
        self.neighbour.close()

    def register(self, body: dict[str, Any], *, authorization: str, idempotency_key: str) -> str:
        """The new dossier's code; the dossier service's 4xx problems come back as ours."""
        try:
            response = self.neighbour.request(
                "POST",
                "/api/v1/registrations",
                json=body,
                headers={"Authorization": authorization},
                idempotency_key=idempotency_key,
            )
        except NeighbourUnavailable as exc:
            raise exc.problem("the dossier service cannot register the dossier now; retry later") from exc
        if response.status_code == 201:
            return response.json()["code"]
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:300]}
        detail = (
            f"the dossier service refused the registration: {problem.get('detail', response.status_code)}"
        )
        if response.status_code == 422:
            raise ValidationFailed(detail, errors=problem.get("errors", []))
        error = RegistrationRefused(detail)
        error.status = response.status_code if 400 <= response.status_code < 500 else 502
        raise error
