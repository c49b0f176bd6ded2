"""nameko dependencies of the outbound service: its settings, the portal sync, the webhook dispatcher
and their timers."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import eventlet
from eventlet.event import Event
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider

from services.outbound import dossier_client, portal, repository
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

log = logging.getLogger(__name__)

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
    Setting(
        "WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION",
        positive_int,
        default=4,
        description="deliveries on the way to one subscription at once (never two of one dossier)",
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
    per_subscription: int

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
            per_subscription=p["WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION"],
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


class SharedRecord:
    """Rounds of tries recorded together: the subscriptions whose rounds end while a transaction is
    being written wait for the next one, which records all their tries in two statements and runs each
    round's follow-up (service_layer.deliver); each waiter gets its own follow-up's result, or the
    transaction's error (its round is then tried again: at least once)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[list, Callable[[Any], Any], Event]] = []
        self.writing = False

    def __call__(self, uow: Any, attempts: list, follow_up: Callable[[Any], Any]) -> Any:
        done = Event()
        self.waiting.append((attempts, follow_up, done))
        if not self.writing:
            self.writing = True
            eventlet.spawn_n(self._write, uow)
        return done.wait()

    def _write(self, uow: Any) -> None:
        try:
            while self.waiting:
                eventlet.sleep(0)  # the rounds ending at this moment join
                rounds, self.waiting = self.waiting, []
                try:
                    with uow.transaction() as tx:
                        tries = [attempt for attempts, _, _ in rounds for attempt in attempts]
                        repository.record_attempts(tx.session, tries)
                        results = [follow_up(tx) for _, follow_up, _ in rounds]
                except Exception as exc:  # noqa: BLE001 - every waiter gets it
                    for _, _, done in rounds:
                        done.send_exception(exc)
                else:
                    for (_, _, done), result in zip(rounds, results, strict=True):
                        done.send(result)
        finally:
            self.writing = False


class Dispatcher(DependencyProvider):
    """``self.dispatcher``: the webhook sender, and a pool in which each subscription's deliveries go
    out in a green thread of their own (``WEBHOOK_CONCURRENCY`` subscriptions at once), that thread
    sending at most ``WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION`` of them at a time (:meth:`parallel`): a
    slow or dead subscriber holds only its own threads. One elected replica dispatches (each dossier's
    order per subscription). The rounds' tries are recorded in transactions they share
    (:class:`SharedRecord`).

    A subscription is wanted by the timer when its deliveries are due, and at once when new ones are
    stored (the consumer's wake-up); the subscriptions wanted at one moment get their first rounds
    read together (:meth:`want`). One already being delivered to is wanted again when its thread
    ends, so a wake-up that comes during its last look is not lost."""

    def setup(self) -> None:
        config = self.container.config
        self.settings = WebhookSettings.from_config(config)
        settings = self.settings
        self.sender = WebhookSender(
            allowed=settings.allowed,
            timeout=settings.timeout,
            max_bytes=settings.max_bytes,
            connections=settings.concurrency * settings.per_subscription,
            hosts=settings.concurrency,
        )
        self.pool = GreenPool(settings.concurrency)
        self.record = SharedRecord()
        self.busy: set[str] = set()  # being delivered to, or handed to start
        self.again: set[str] = set()  # woken while busy: wanted again when its thread ends
        self.wanted: dict[str, None] = {}  # to hand to start, in the order wanted
        self.claiming = False
        self.starter: Callable[[list[str]], None] = self.release
        conf = validate(config)
        self.engine = create_engine(
            conf["DATABASE_URL"], pool_size=1, timeout=conf["DATABASE_TIMEOUT_SECONDS"]
        )
        self.leadership = Leadership(
            self.engine, job_key("webhook delivery", self.container.service_name), "webhook delivery"
        )

    def leads(self) -> bool:
        return self.leadership.leads()

    def parallel(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``function`` over ``items``, at most ``WEBHOOK_CONCURRENCY_PER_SUBSCRIPTION`` at a time, in
        green threads; the results in the items' order."""
        if len(items) <= 1:
            return [function(item) for item in items]
        return list(GreenPool(self.settings.per_subscription).imap(function, items))

    def want(self, subscription_ids: list[str], start: Callable[[list[str]], None], *, woken: bool) -> None:
        """Have these subscriptions delivered to. Those not being delivered to are handed, all that
        are wanted at the same moment together, to ``start`` (the service's: it reads their first
        rounds in one transaction and :meth:`run`s each), as the pool has room. One being delivered
        to already is left to its thread, which is wanted again when it ends if ``woken`` (new
        deliveries were stored meanwhile)."""
        self.starter = start
        for subscription_id in subscription_ids:
            if subscription_id in self.busy:
                if woken:
                    self.again.add(subscription_id)
            else:
                self.wanted[subscription_id] = None
        if self.wanted and not self.claiming:
            self.claiming = True
            eventlet.spawn_n(self._claim)

    def _claim(self) -> None:
        try:
            while self.wanted:
                eventlet.sleep(0)  # the wake-ups of this moment join
                room = self.pool.free()
                if room == 0:
                    eventlet.sleep(0.01)  # a subscription's thread ends soon enough
                    continue
                taken = [s for s in self.wanted if s not in self.busy][:room]
                for subscription_id in list(self.wanted):
                    if subscription_id in self.busy or subscription_id in taken:
                        del self.wanted[subscription_id]
                self.busy.update(taken)
                try:
                    self.starter(taken)
                except Exception:  # noqa: BLE001 - the deliveries are stored; the timer finds them
                    log.exception("webhook dispatch: starting %d subscriptions failed", len(taken))
                    self.release(taken)
        finally:
            self.claiming = False

    def release(self, subscription_ids: list[str]) -> None:
        """Subscriptions handed to ``start`` that it does not :meth:`run` (nothing was due)."""
        self.busy.difference_update(subscription_ids)

    def run(self, subscription_id: str, deliver: Callable[[], Any]) -> None:
        """Deliver to a subscription handed to ``start``, in a green thread of the pool; wanted again
        when it ends if it was woken meanwhile."""

        def run() -> None:
            try:
                deliver()
            finally:
                self.busy.discard(subscription_id)
                if subscription_id in self.again:
                    self.again.discard(subscription_id)
                    self.want([subscription_id], self.starter, woken=True)

        self.pool.spawn_n(run)

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
