"""The dossier service's portal-record read: the applicant's name, phone and email, the procedure's
names, the documents, fees, payments and sealed result, which the portal needs and no event carries.
Authorised by a token with the ``portal_sync`` role over the deployment's units (in development minted
with the development key)."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from services.outbound.domain.portal import Personal
from services.outbound.portal import PortalUnavailable
from shared import tracing


class DossierUnavailable(PortalUnavailable):
    """The dossier service could not lend the record now: the sync is tried again later."""

    outcome = "dossier_unavailable"


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

    def personal(self, code: str) -> Personal:
        url = f"{self.base_url}/api/v1/dossiers/{code}/portal-record"
        try:
            response = self.http.get(url, timeout=self.timeout, headers=tracing.current())
        except requests.RequestException as exc:
            raise DossierUnavailable(f"dossier service: {type(exc).__name__}: {exc}"[:900]) from exc
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
