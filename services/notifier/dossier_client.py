"""The dossier service's notification-contact read: the applicant's consent (the channels they chose, none
once withdrawn), phone and e-mail, the procedure's name and a supplement's items — personal data no event
carries. Read before every message and never stored, so a withdrawal stops the next message. Authorised by
a token with the ``notifier`` role over the deployment's units (in development minted with the
development key)."""

from __future__ import annotations

from dataclasses import dataclass

from shared import tracing
from shared.neighbours import Neighbour, NeighbourUnavailable, Policy


class DossierUnavailable(Exception):
    """The dossier service could not answer now: the notice is tried again later."""


class UnknownDossier(Exception):
    """The dossier service does not know the dossier (or not for this notifier's units): nothing to send."""


@dataclass(frozen=True)
class Contact:
    channels: tuple[str, ...]
    phone: str | None
    email: str | None
    procedure_name: str
    supplement_items: tuple[str, ...]


class DossierClient:
    """The read, through the shared neighbour client (shared/neighbours.py): a GET, so retried within
    the call; no answer (or an open circuit) is :class:`DossierUnavailable`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        policy = Policy(connect_timeout=3.0, read_timeout=timeout, attempts=3, backoff=0.3)
        self.neighbour = Neighbour(
            "notifier", "dossier service", base_url, policy, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self.neighbour.close()

    def contact(self, code: str) -> Contact:
        try:
            response = self.neighbour.request(
                "GET", f"/api/v1/dossiers/{code}/notification-contact", headers=tracing.current()
            )
        except NeighbourUnavailable as exc:
            raise DossierUnavailable(str(exc)) from exc
        if response.status_code == 404:
            raise UnknownDossier(code)
        if response.status_code != 200:
            raise DossierUnavailable(f"dossier service: HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
        return Contact(
            channels=tuple(body.get("channels") or ()),
            phone=body.get("phone"),
            email=body.get("email"),
            procedure_name=body.get("procedure_name") or "",
            supplement_items=tuple(body.get("supplement_items") or ()),
        )
