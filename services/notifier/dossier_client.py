"""The dossier service's notification-contact read: the applicant's consent (the channels they chose, none
once withdrawn), phone and e-mail, the procedure's name and a supplement's items — personal data no event
carries. Read before every message and never stored, so a withdrawal stops the next message. Authorised by
a token with the ``notifier`` role over the deployment's units (in development minted with the
development key)."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


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
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0, retries: int = 2) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        retry = Retry(
            total=retries, backoff_factor=0.3, status_forcelist=(502, 503, 504), raise_on_status=False
        )
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def close(self) -> None:
        self.http.close()

    def contact(self, code: str) -> Contact:
        url = f"{self.base_url}/api/v1/dossiers/{code}/notification-contact"
        try:
            response = self.http.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DossierUnavailable(f"dossier service: {type(exc).__name__}: {exc}"[:900]) from exc
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
