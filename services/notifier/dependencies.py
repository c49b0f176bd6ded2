"""nameko dependencies of the notifier: its settings, the gateways, the dossier service's read, the
election of the one replica that sends, and the send timer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any

from nameko.extensions import DependencyProvider

from services.notifier import metrics
from services.notifier.domain.messages import DailyCap, Kind, QuietHours, RetryPolicy, Template
from services.notifier.dossier_client import DossierClient
from services.notifier.gateways import EmailGateway, GatewayClient, SmsGateway, ZaloGateway
from services.notifier.templates import load_templates
from shared import dossier_access
from shared.auth import RECIPIENT_DEVELOPMENT_KEY, is_development, key_problem
from shared.config import (
    ConfigurationError,
    Setting,
    boolean,
    parse_delays,
    positive,
    positive_int,
    validate,
)
from shared.db import create_engine
from shared.leadership import Leadership, job_key
from shared.providers import setting_timer


def quiet_hours(value: Any) -> QuietHours | None:
    """``"22:00-07:00"`` (local time; across midnight allowed); empty or ``off``: none."""
    text = str(value or "").strip()
    if text in ("", "off"):
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"expected HH:MM-HH:MM or off, got {value!r}") from None
    return QuietHours(start, end)


def _codes(value: Any) -> frozenset[int]:
    return frozenset(int(c) for c in str(value).split(",") if c.strip())


SETTINGS = (
    Setting("SMS_GATEWAY_URL", default="http://127.0.0.1:8013", description="the SMS brand-name gateway"),
    Setting("SMS_BRANDNAME", default="MOTCUA", description="the registered brand name (sender)"),
    Setting("SMS_UNICODE", boolean, default="false", description="accented SMS (the brand name allows it)"),
    Setting("ZALO_GATEWAY_URL", default="http://127.0.0.1:8014", description="the Zalo OA message API"),
    Setting(
        "ZALO_ACCESS_TOKEN",
        default="motcua-development-oa-token",
        description="the Official Account's access token",
    ),
    Setting(
        "ZALO_NOT_FOLLOWER_CODES",
        _codes,
        default="-213",
        description="error codes meaning the citizen does not follow the OA (then SMS)",
    ),
    Setting("EMAIL_GATEWAY_URL", default="http://127.0.0.1:8015", description="the e-mail API"),
    Setting("EMAIL_SENDER", default="motcua@example.gov.vn", description="the From address"),
    Setting("GATEWAY_TIMEOUT_SECONDS", positive, default=5.0, description="longest wait for a gateway"),
    Setting(
        "NOTIFY_QUIET_HOURS",
        quiet_hours,
        default="22:00-07:00",
        description="Vietnam time with no SMS or Zalo message (not urgent); off: none",
    ),
    Setting("NOTIFY_DAILY_CAP", int, default=5, description="messages to one recipient a day; 0: no cap"),
    Setting(
        "NOTIFY_RETRY_DELAYS",
        parse_delays,
        default="10,60,300,1800",
        description="seconds before each new try of a gateway that did not answer; the last repeats",
    ),
    Setting("NOTIFY_MAX_ATTEMPTS", positive_int, default=8, description="tries before a message failed"),
    Setting("NOTIFY_SEND_SECONDS", positive, default=1.0, description="how often the send round runs"),
    Setting(
        "NOTIFIER_RECIPIENT_KEY",
        required=False,
        default="",
        description="HMAC key of the recipients the daily cap counts (32+ bytes; development has one)",
    ),
    dossier_access.url_setting("the notification-contact read"),
    *dossier_access.token_settings("notifier", "NOTIFY_UNITS", "applicants this deployment tells"),
)


@dataclass(frozen=True)
class NotifierSettings:
    values: Mapping[str, Any]
    quiet: QuietHours | None
    cap: DailyCap
    policy: RetryPolicy
    send_seconds: float
    recipient_key: bytes
    dossier_token: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NotifierSettings:
        p = validate(config, SETTINGS)
        development = is_development(config)
        key = (p["NOTIFIER_RECIPIENT_KEY"] or "").encode()
        if not key and development:
            key = RECIPIENT_DEVELOPMENT_KEY
        elif problem := key_problem("NOTIFIER_RECIPIENT_KEY", key):
            raise ConfigurationError(f"{problem}: at least 32 random bytes outside development")
        if p["NOTIFY_DAILY_CAP"] < 0:
            raise ConfigurationError("NOTIFY_DAILY_CAP: 0 (no cap) or more")
        token = dossier_access.dossier_token(
            config, p, subject="notifier", role="notifier", units="NOTIFY_UNITS"
        )
        return cls(
            values=p,
            quiet=p["NOTIFY_QUIET_HOURS"],
            cap=DailyCap(p["NOTIFY_DAILY_CAP"]),
            policy=RetryPolicy(p["NOTIFY_RETRY_DELAYS"], p["NOTIFY_MAX_ATTEMPTS"]),
            send_seconds=p["NOTIFY_SEND_SECONDS"],
            recipient_key=key,
            dossier_token=token,
        )


def _observe_latency(gateway: str, seconds: float) -> None:
    metrics.GATEWAY_SECONDS.labels(gateway).observe(seconds)


class Delivery(DependencyProvider):
    """``self.delivery``: the settings, the three gateways, the templates, the dossier service's read,
    and the election of the one replica that sends (one sender per database: a message is never sent
    by two at once)."""

    def setup(self) -> None:
        config = self.container.config
        self.settings = settings = NotifierSettings.from_config(config)
        p = settings.values
        timeout = p["GATEWAY_TIMEOUT_SECONDS"]
        self.clients = [
            GatewayClient("sms", p["SMS_GATEWAY_URL"], timeout=timeout, observe=_observe_latency),
            GatewayClient(
                "zalo",
                p["ZALO_GATEWAY_URL"],
                timeout=timeout,
                headers={"Access-Token": p["ZALO_ACCESS_TOKEN"]},
                observe=_observe_latency,
            ),
            GatewayClient("email", p["EMAIL_GATEWAY_URL"], timeout=timeout, observe=_observe_latency),
        ]
        sms, zalo, email = self.clients
        self.gateways = {
            "sms": SmsGateway(sms, p["SMS_BRANDNAME"], unicode=p["SMS_UNICODE"]),
            "zalo": ZaloGateway(zalo, not_follower_codes=p["ZALO_NOT_FOLLOWER_CODES"]),
            "email": EmailGateway(email, p["EMAIL_SENDER"]),
        }
        self.templates: dict[Kind, Template] = load_templates()
        self.dossiers = DossierClient(p["DOSSIER_URL"], settings.dossier_token)
        self.engine = create_engine(validate(config)["DATABASE_URL"], pool_size=1)
        self.leadership = Leadership(
            self.engine, job_key("notifications", self.container.service_name), "notifications"
        )

    def leads(self) -> bool:
        return self.leadership.leads()

    def stop(self) -> None:
        self.leadership.release()
        for client in self.clients:
            client.close()
        self.dossiers.close()
        self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> Delivery:
        return self


send_timer = setting_timer(lambda config: NotifierSettings.from_config(config).send_seconds, 1.0)
