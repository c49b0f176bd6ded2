"""The postal service's adapters, built once at start from its settings (checked, with their names).

``POSTAL_OPERATOR`` names the operator; ``POSTAL_OPERATOR_URL`` is its API; ``POSTAL_WEBHOOK_SECRETS``
its active webhook secrets (several during a rotation); ``DOSSIER_URL`` is where picked-up dossiers are
registered; ``POSTAL_WATCH_SECONDS`` how often the watch refreshes gauges and retries deliveries.
``POSTAL_OPERATOR_*`` and ``DOSSIER_*`` (``_CONNECT_TIMEOUT_SECONDS``, ``_TIMEOUT_SECONDS``,
``_ATTEMPTS``, ``_RETRY_AFTER_MAX_SECONDS``, ``_CIRCUIT_FAILURES``, ``_CIRCUIT_COOLDOWN_SECONDS``) bound
the calls to each neighbour (shared/neighbours.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from services.postal import dossier_client, operator
from services.postal.dossier_client import DossierClient
from services.postal.operator import HttpOperator, OperatorAdapter
from services.postal.webhooks import WebhookVerifier, parse_secrets
from shared.config import Setting, validate
from shared.neighbours import policy_from, policy_settings
from shared.providers import setting_timer


def _positive(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _url(value: Any) -> str:
    text = str(value)
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return text


SETTINGS = (
    Setting("POSTAL_OPERATOR", str, description="the postal operator's name (webhook path)"),
    Setting("POSTAL_OPERATOR_URL", _url, description="the postal operator's API"),
    Setting("POSTAL_WEBHOOK_SECRETS", parse_secrets, description="the operator's active webhook secrets"),
    Setting("DOSSIER_URL", _url, description="the dossier service, for postal registrations"),
    Setting("POSTAL_WATCH_SECONDS", _positive, required=False, description="how often the watch runs"),
    *policy_settings("POSTAL_OPERATOR", operator.POLICY, "the postal operator"),
    *policy_settings("DOSSIER", dossier_client.POLICY, "the dossier service"),
)


@dataclass(frozen=True)
class PostalAdapters:
    operator: OperatorAdapter
    verifier: WebhookVerifier
    dossiers: DossierClient


def postal_settings(config: dict[str, Any]) -> dict[str, Any]:
    parsed = validate(config, SETTINGS)
    parsed["POSTAL_WATCH_SECONDS"] = parsed["POSTAL_WATCH_SECONDS"] or 30.0
    return parsed


class Adapters(DependencyProvider):
    """``self.adapters``: the operator's client, the webhook verifier and the dossier service's client."""

    def setup(self) -> None:
        conf = postal_settings(self.container.config)
        service = self.container.service_name
        self.adapters = PostalAdapters(
            operator=HttpOperator(
                conf["POSTAL_OPERATOR"],
                conf["POSTAL_OPERATOR_URL"],
                policy_from(conf, "POSTAL_OPERATOR", operator.POLICY),
                service=service,
            ),
            verifier=WebhookVerifier({conf["POSTAL_OPERATOR"]: conf["POSTAL_WEBHOOK_SECRETS"]}),
            dossiers=DossierClient(
                conf["DOSSIER_URL"], policy_from(conf, "DOSSIER", dossier_client.POLICY), service=service
            ),
        )

    def stop(self) -> None:
        self.adapters.operator.close()
        self.adapters.dossiers.close()

    kill = stop

    def get_dependency(self, worker_ctx) -> PostalAdapters:
        return self.adapters


watch_timer = setting_timer(lambda config: postal_settings(config)["POSTAL_WATCH_SECONDS"], 30.0)
