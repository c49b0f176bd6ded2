"""Registering a picked-up dossier with the dossier service, with the caller's own token.

The pickup request carries the applicant's identity, which a status event may not carry
(docs/contracts.md §1 Events), so the postal service files the dossier through the dossier service's API — the
same ``POST /api/v1/registrations`` the portal uses — forwarding the caller's ``Authorization``: the
dossier is registered by, and visible to, whoever asked for the pickup, within their jurisdiction.
"""

from __future__ import annotations

from typing import Any

import requests

from services.postal.operator import OperatorUnavailable, call_with_retries
from shared import tracing
from shared.problems import Problem, ServiceUnavailable, ValidationFailed


class RegistrationRefused(Problem):
    status, slug, title = 502, "dossier-registration-refused", "The dossier service refused the dossier"
    explanation = (
        "The postal service registers a picked-up dossier with the dossier service, which refused it "
        "(`detail` quotes its answer); the status is the dossier service's own 4xx, or 502 when it failed. "
        "Nothing was registered."
    )


class DossierClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0, attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.attempts = timeout, attempts
        self.session = requests.Session()

    def register(self, body: dict[str, Any], *, authorization: str, idempotency_key: str) -> str:
        """The new dossier's code; the dossier service's 4xx problems come back as ours."""
        try:
            response = call_with_retries(
                self.session,
                "POST",
                f"{self.base_url}/api/v1/registrations",
                attempts=self.attempts,
                timeout=self.timeout,
                json=body,
                # The filing's trace goes on into the dossier service (shared/tracing.py).
                headers={
                    "Authorization": authorization,
                    "Idempotency-Key": idempotency_key,
                    **tracing.current(),
                },
            )
        except OperatorUnavailable as exc:
            raise ServiceUnavailable(f"the dossier service cannot register the dossier now: {exc}") from exc
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
