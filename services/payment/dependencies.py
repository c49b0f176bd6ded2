"""The payment service's settings (parsed, checked and defaulted at start, with their names) and its
adapters: the platform's client, the dossier service's client, and the reconciliation's timer.

``PAYMENT_PLATFORM_URL``, ``PAYMENT_PARTNER_CODE`` (MaDoiTac) and ``PAYMENT_PARTNER_SECRET`` (what every
message's MaXacThuc is computed with; required outside development, where the simulator's default
stands) name the platform; ``PAYMENT_QUERY_AFTER_SECONDS`` (30 minutes) and
``PAYMENT_QUERY_FOR_SECONDS`` (3 days) the reconciliation's window; ``DOSSIER_URL`` and
``DOSSIER_TOKEN`` (role payment_service over ``PAYMENT_UNITS``; development mints one) the dossier
service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nameko.extensions import DependencyProvider

from services.payment.domain.model import Window
from services.payment.dossier_client import DossierClient
from services.payment.platform import PartnerSettings, PaymentPlatform, policy
from shared import dossier_access
from shared.auth import PAYMENT_DEVELOPMENT_SECRET, is_development, partner_secret_problem
from shared.config import ConfigurationError, Setting, positive, positive_int, validate
from shared.providers import setting_timer
from shared.ratelimit import SlidingWindow

RECONCILE_SECONDS = Setting(
    "PAYMENT_RECONCILE_SECONDS", positive, default=60.0, description="how often the reconciliation runs"
)
SETTINGS = (
    Setting(
        "PAYMENT_PLATFORM_URL", default="http://127.0.0.1:8016", description="the payment platform's API"
    ),
    Setting(
        "PAYMENT_PARTNER_CODE", default="MOTCUA", description="MaDoiTac: this partner's code at the platform"
    ),
    Setting(
        "PAYMENT_PARTNER_SECRET",
        required=False,
        default="",
        description="the partner secret every MaXacThuc is computed with (development: the simulator's)",
    ),
    Setting("PAYMENT_TIMEOUT_SECONDS", positive, default=5.0, description="timeout of one outside call"),
    Setting("PAYMENT_ATTEMPTS", positive_int, default=3, description="attempts per outside call"),
    Setting(
        "PAYMENT_QUERY_AFTER_SECONDS",
        positive,
        default=1800.0,
        description="a pending payment is asked about after this long without a confirmation",
    ),
    Setting(
        "PAYMENT_QUERY_FOR_SECONDS",
        positive,
        default=259200.0,
        description="and until this long after its start; then it has expired",
    ),
    RECONCILE_SECONDS,
    Setting("PAYMENT_RECONCILE_BATCH", positive_int, default=200, description="payments per reconciliation"),
    Setting(
        "PAYMENT_PER_MINUTE",
        positive_int,
        default=20,
        description="payment starts per client address a minute",
    ),
    Setting(
        "PAYMENT_CONFIRMATIONS_PER_MINUTE",
        positive_int,
        default=600,
        description="confirmations per client address a minute",
    ),
    dossier_access.url_setting("the payment-due read and the paid report"),
    *dossier_access.token_settings(
        "payment_service", "PAYMENT_UNITS", "dossiers this deployment takes payments for"
    ),
)


@dataclass(frozen=True)
class PaymentSettings:
    partner: PartnerSettings
    window: Window
    reconcile_seconds: float
    batch: int
    per_minute: int
    confirmations_per_minute: int
    dossier_url: str
    dossier_token: str
    timeout: float
    attempts: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PaymentSettings:
        p = validate(config, SETTINGS)
        development = is_development(config)
        secret = p["PAYMENT_PARTNER_SECRET"] or (PAYMENT_DEVELOPMENT_SECRET if development else "")
        if not development and partner_secret_problem(secret):
            raise ConfigurationError(f"{partner_secret_problem(secret)} (required outside development)")
        token = dossier_access.dossier_token(
            config, p, subject="payment", role="payment_service", units="PAYMENT_UNITS"
        )
        if p["PAYMENT_QUERY_FOR_SECONDS"] <= p["PAYMENT_QUERY_AFTER_SECONDS"]:
            raise ConfigurationError(
                "PAYMENT_QUERY_FOR_SECONDS: must be longer than PAYMENT_QUERY_AFTER_SECONDS"
            )
        timeout, attempts = p["PAYMENT_TIMEOUT_SECONDS"], p["PAYMENT_ATTEMPTS"]
        return cls(
            partner=PartnerSettings(
                url=p["PAYMENT_PLATFORM_URL"],
                partner=p["PAYMENT_PARTNER_CODE"],
                secret=secret,
                timeout=timeout,
                attempts=attempts,
            ),
            window=Window(
                after=timedelta(seconds=p["PAYMENT_QUERY_AFTER_SECONDS"]),
                until=timedelta(seconds=p["PAYMENT_QUERY_FOR_SECONDS"]),
            ),
            reconcile_seconds=p["PAYMENT_RECONCILE_SECONDS"],
            batch=p["PAYMENT_RECONCILE_BATCH"],
            per_minute=p["PAYMENT_PER_MINUTE"],
            confirmations_per_minute=p["PAYMENT_CONFIRMATIONS_PER_MINUTE"],
            dossier_url=p["DOSSIER_URL"],
            dossier_token=token,
            timeout=timeout,
            attempts=attempts,
        )


@dataclass(frozen=True)
class PaymentAdapters:
    settings: PaymentSettings
    platform: PaymentPlatform
    dossiers: DossierClient
    starts: SlidingWindow  # the public start's rate limit, per client address
    confirmations: SlidingWindow


class Adapters(DependencyProvider):
    """``self.adapters``: the platform's client, the dossier service's client, the rate limits."""

    def setup(self) -> None:
        settings = PaymentSettings.from_config(self.container.config)
        self.adapters = PaymentAdapters(
            settings=settings,
            platform=PaymentPlatform(settings.partner, service=self.container.service_name),
            dossiers=DossierClient(
                settings.dossier_url,
                settings.dossier_token,
                policy(settings.timeout, settings.attempts),
                service=self.container.service_name,
            ),
            starts=SlidingWindow(settings.per_minute),
            confirmations=SlidingWindow(settings.confirmations_per_minute),
        )

    def stop(self) -> None:
        self.adapters.platform.close()
        self.adapters.dossiers.close()

    def get_dependency(self, worker_ctx) -> PaymentAdapters:
        return self.adapters


reconcile_timer = setting_timer(
    lambda config: PaymentSettings.from_config(config).reconcile_seconds, RECONCILE_SECONDS.default
)
