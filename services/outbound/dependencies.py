"""nameko dependencies of the outbound service: its settings, the portal sync, the webhook dispatcher
and their timers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider

from services.outbound import dossier_client, portal
from services.outbound.domain.portal import RetryPolicy
from services.outbound.domain.subscription import Backoff
from services.outbound.dossier_client import DossierClient
from services.outbound.portal import PortalAdapter, PortalSettings
from services.outbound.webhooks import WebhookSender
from shared import dossier_access
from shared.config import Setting, parse_delays, positive, positive_int, validate
from shared.db import create_engine
from shared.leadership import Leadership, job_key
from shared.neighbours import Policy, policy_from, policy_settings
from shared.providers import setting_timer

SETTINGS = (
    Setting(
        "PORTAL_URL", default="http://127.0.0.1:8012", description="the national portal adapter's base URL"
    ),
    Setting("PORTAL_AUTH_PATH", default="auth", description="the adapter's session endpoint"),
    Setting("PORTAL_SERVICE_PATH", default="integration", description="the adapter's integration endpoint"),
    Setting("PORTAL_DSTCODE", default="79", description="the dstcode header the portal gave this province"),
    Setting("PORTAL_USERNAME", default="motcua", description="the unit's adapter account"),
    Setting(
        "PORTAL_PASSWORD", default="motcua-development-password", description="the unit's adapter password"
    ),
    Setting(
        "PORTAL_UNIT_CODE", default="000.00.00.H79", description="madonvi: the province's code at the portal"
    ),
    *policy_settings("PORTAL", portal.POLICY, "the national portal"),
    Setting(
        "PORTAL_SESSION_ERROR_CODES",
        lambda v: frozenset(c.strip() for c in str(v).split(",") if c.strip()),
        default="401",
        description="error_code values by which the adapter refuses a session (renewed once)",
    ),
    Setting(
        "PORTAL_RETRY_DELAYS",
        parse_delays,
        default="10,60,300,1800,7200",
        description="seconds before each new try of a dossier's failing sync; the last repeats",
    ),
    Setting(
        "PORTAL_MAX_ATTEMPTS",
        positive_int,
        default=8,
        description="tries of one event before the dossier is parked",
    ),
    Setting("PORTAL_SYNC_SECONDS", positive, default=1.0, description="how often the sync round runs"),
    Setting(
        "PORTAL_GAP_SECONDS",
        positive,
        default=30.0,
        description="how long a later event waits for an earlier one of its dossier that is not here yet",
    ),
    dossier_access.url_setting("the portal-record read"),
    *policy_settings("DOSSIER", dossier_client.POLICY, "the dossier service"),
    *dossier_access.token_settings("portal_sync", "PORTAL_SYNC_UNITS", "dossiers this deployment syncs"),
)

WEBHOOK_SETTINGS = (
    Setting(
        "WEBHOOK_ALLOWED_NETWORKS",
        lambda v: tuple(ipaddress.ip_network(n.strip()) for n in str(v).split(",") if n.strip()),
        required=False,
        default="",
        description="networks callbacks may reach despite the guard (CIDR, comma-separated)",
    ),
    Setting(
        "WEBHOOK_TIMEOUT_SECONDS", positive, default=5.0, description="longest wait for a callback's answer"
    ),
    Setting(
        "WEBHOOK_MAX_RESPONSE_BYTES", positive_int, default=65536, description="how much of an answer is read"
    ),
    Setting(
        "WEBHOOK_RETRY_BASE_SECONDS", positive, default=25.0, description="the first retry's delay (·4 each)"
    ),
    Setting("WEBHOOK_MAX_ATTEMPTS", positive_int, default=7, description="tries before a delivery is dead"),
    Setting(
        "WEBHOOK_POLL_SECONDS", positive, default=0.5, description="how often due deliveries are looked for"
    ),
    Setting(
        "WEBHOOK_CONCURRENCY",
        positive_int,
        default=50,
        description="subscriptions delivered to at the same time",
    ),
)


@dataclass(frozen=True)
class WebhookSettings:
    allowed: tuple
    timeout: float
    max_bytes: int
    backoff: Backoff
    poll_seconds: float
    concurrency: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebhookSettings:
        p = validate(config, WEBHOOK_SETTINGS)
        return cls(
            allowed=p["WEBHOOK_ALLOWED_NETWORKS"] or (),
            timeout=p["WEBHOOK_TIMEOUT_SECONDS"],
            max_bytes=p["WEBHOOK_MAX_RESPONSE_BYTES"],
            backoff=Backoff(p["WEBHOOK_RETRY_BASE_SECONDS"], p["WEBHOOK_MAX_ATTEMPTS"]),
            poll_seconds=p["WEBHOOK_POLL_SECONDS"],
            concurrency=p["WEBHOOK_CONCURRENCY"],
        )


@dataclass(frozen=True)
class OutboundSettings:
    portal: PortalSettings
    policy: RetryPolicy
    sync_seconds: float
    gap_wait: timedelta
    dossier_url: str
    dossier_token: str
    dossier_policy: Policy

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutboundSettings:
        p = validate(config, SETTINGS)
        token = dossier_access.dossier_token(
            config, p, subject="outbound", role="portal_sync", units="PORTAL_SYNC_UNITS"
        )
        return cls(
            portal=PortalSettings(
                url=p["PORTAL_URL"],
                auth_path=p["PORTAL_AUTH_PATH"],
                service_path=p["PORTAL_SERVICE_PATH"],
                dstcode=p["PORTAL_DSTCODE"],
                username=p["PORTAL_USERNAME"],
                password=p["PORTAL_PASSWORD"],
                unit_code=p["PORTAL_UNIT_CODE"],
                session_error_codes=p["PORTAL_SESSION_ERROR_CODES"],
                policy=policy_from(p, "PORTAL", portal.POLICY),
            ),
            policy=RetryPolicy(p["PORTAL_RETRY_DELAYS"], p["PORTAL_MAX_ATTEMPTS"]),
            sync_seconds=p["PORTAL_SYNC_SECONDS"],
            gap_wait=timedelta(seconds=p["PORTAL_GAP_SECONDS"]),
            dossier_url=p["DOSSIER_URL"],
            dossier_token=token,
            dossier_policy=policy_from(p, "DOSSIER", dossier_client.POLICY),
        )


class PortalSync(DependencyProvider):
    """``self.portal_sync``: the adapter, the dossier service's read, the policy, and the election of
    the one replica that syncs (one sender per database keeps each dossier's order)."""

    def setup(self) -> None:
        config = self.container.config
        self.settings = OutboundSettings.from_config(config)
        service = self.container.service_name
        self.portal = PortalAdapter(self.settings.portal, service=service)
        self.dossiers = DossierClient(
            self.settings.dossier_url,
            self.settings.dossier_token,
            self.settings.dossier_policy,
            service=service,
        )
        conf = validate(config)
        self.engine = create_engine(
            conf["DATABASE_URL"], pool_size=1, timeout=conf["DATABASE_TIMEOUT_SECONDS"]
        )
        self.leadership = Leadership(
            self.engine, job_key("portal sync", self.container.service_name), "portal sync"
        )

    def leads(self) -> bool:
        return self.leadership.leads()

    def stop(self) -> None:
        self.leadership.release()
        self.portal.close()
        self.dossiers.close()
        self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> PortalSync:
        return self


sync_timer = setting_timer(lambda config: OutboundSettings.from_config(config).sync_seconds, 1.0)


class Dispatcher(DependencyProvider):
    """``self.dispatcher``: the webhook sender, and a pool in which each subscription's deliveries go
    out in a green thread of their own, one at a time per subscription: a slow or dead subscriber holds
    only its own thread. One elected replica dispatches (each dossier's order per subscription)."""

    def setup(self) -> None:
        config = self.container.config
        self.settings = WebhookSettings.from_config(config)
        self.sender = WebhookSender(
            allowed=self.settings.allowed,
            timeout=self.settings.timeout,
            max_bytes=self.settings.max_bytes,
            connections=self.settings.concurrency,
        )
        self.pool = GreenPool(self.settings.concurrency)
        self.busy: set[str] = set()
        conf = validate(config)
        self.engine = create_engine(
            conf["DATABASE_URL"], pool_size=1, timeout=conf["DATABASE_TIMEOUT_SECONDS"]
        )
        self.leadership = Leadership(
            self.engine, job_key("webhook delivery", self.container.service_name), "webhook delivery"
        )

    def leads(self) -> bool:
        return self.leadership.leads()

    def dispatch(self, subscription_id: str, deliver: Callable[[], Any]) -> bool:
        """Start delivering to a subscription unless it is being delivered to already."""
        if subscription_id in self.busy or self.pool.free() == 0:
            return False
        self.busy.add(subscription_id)

        def run() -> None:
            try:
                deliver()
            finally:
                self.busy.discard(subscription_id)

        self.pool.spawn_n(run)
        return True

    def stop(self) -> None:
        self.pool.waitall()
        self.leadership.release()
        self.engine.dispose()

    def kill(self) -> None:
        self.leadership.release()
        self.engine.dispose()

    def get_dependency(self, worker_ctx) -> Dispatcher:
        return self


dispatch_timer = setting_timer(lambda config: WebhookSettings.from_config(config).poll_seconds, 0.5)
