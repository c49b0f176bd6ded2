"""The dossier service's own settings (parsed, checked and defaulted at start) and the watch's timer.

``SUPPLEMENT_ONCE``: a second supplement request for a dossier is refused.
``DUE_SOON_HOURS`` (one working day): ``dossier.due_soon`` when at most this much office time is left
before the appointment (half-way instead when the whole duration is shorter than twice it).
``OVERDUE_WATCH_SECONDS``: how often the watch looks; ``OVERDUE_WATCH_BATCH``: dossiers per look.
The defaults are on each :class:`~shared.config.Setting` below, nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, Protocol

from nameko.extensions import DependencyProvider

from services.dossier import catalogue, catalogue_files, lookup_page
from services.dossier.domain.model import Rules
from services.dossier.lookup import DEVELOPMENT_KEY, LookupSettings
from services.dossier.lookup_page import Page
from services.dossier.watch_backoff import WatchBackoff
from shared.auth import is_development, key_problem
from shared.config import ConfigurationError, Setting, boolean, positive, positive_int, validate
from shared.http import problem_base
from shared.providers import setting_timer
from shared.ratelimit import SlidingWindow

WATCH_SECONDS = Setting(
    "OVERDUE_WATCH_SECONDS", positive, default=60.0, description="how often the overdue watch runs"
)
SETTINGS = (
    Setting("SUPPLEMENT_ONCE", boolean, default=True, description="one supplement request per dossier"),
    Setting(
        "DUE_SOON_HOURS", positive, default=8.0, description="working hours of warning before a due time"
    ),
    WATCH_SECONDS,
    Setting("OVERDUE_WATCH_BATCH", positive_int, default=500, description="dossiers per overdue-watch run"),
)


@dataclass(frozen=True)
class LifecycleSettings:
    rules: Rules
    due_soon_lead: timedelta
    watch_seconds: float
    watch_batch: int


def lifecycle_settings(config: dict[str, Any]) -> LifecycleSettings:
    """Parse the dossier settings; ConfigurationError names each one at fault."""
    values = validate(config, SETTINGS)
    return LifecycleSettings(
        rules=Rules(supplement_once=values["SUPPLEMENT_ONCE"]),
        due_soon_lead=timedelta(hours=values["DUE_SOON_HOURS"]),
        watch_seconds=values["OVERDUE_WATCH_SECONDS"],
        watch_batch=values["OVERDUE_WATCH_BATCH"],
    )


class Lifecycle(DependencyProvider):
    """``self.lifecycle``: the configured rules and watch settings."""

    def setup(self) -> None:
        self.settings = lifecycle_settings(self.container.config)

    def get_dependency(self, worker_ctx) -> LifecycleSettings:
        return self.settings


class WatchBackoffProvider(DependencyProvider):
    """``self.watch_backoff``: the overdue watch's per-container backoff for failing dossiers."""

    def setup(self) -> None:
        interval = lifecycle_settings(self.container.config).watch_seconds
        self.backoff = WatchBackoff(timedelta(seconds=interval))

    def get_dependency(self, worker_ctx) -> WatchBackoff:
        return self.backoff


# The overdue watch runs every OVERDUE_WATCH_SECONDS.
watch_timer = setting_timer(lambda config: lifecycle_settings(config).watch_seconds, WATCH_SECONDS.default)


@cache
def _shipped_catalogue() -> catalogue.Catalogue:
    # Read and checked once per process: the procedure files ship with the code.
    return catalogue_files.load_catalogue()


class Catalogue(DependencyProvider):
    """``self.catalogue``: the procedure catalogue (services/dossier/procedures), loaded at start."""

    def setup(self) -> None:
        self.catalogue = _shipped_catalogue()

    def get_dependency(self, worker_ctx) -> catalogue.Catalogue:
        return self.catalogue


# --- the citizen's status lookup (services/dossier/lookup.py) ---------------------------------------

LOOKUP_SETTINGS = (
    Setting(
        "LOOKUP_KEY",
        required=False,
        description="HMAC key of the receipts' lookup secrets (at least 32 bytes; development has one)",
    ),
    Setting("LOOKUP_MAX_FAILURES", positive_int, default=5, description="wrong proofs that lock a code"),
    Setting("LOOKUP_LOCK_MINUTES", positive, default=15.0, description="how long a locked code stays locked"),
    Setting("LOOKUP_PER_MINUTE", positive_int, default=20, description="lookups per client address a minute"),
    Setting("LOOKUP_PER_CODE_PER_MINUTE", positive_int, default=10, description="lookups per code a minute"),
    Setting("LOOKUP_CAPTCHA", default="off", description="the CAPTCHA checker (off: none; development)"),
    Setting(
        "PAYMENT_START_URL",
        required=False,
        default="",
        description="the payment service's start page (…/thanh-toan) the lookup page offers while a dossier "
        "awaits payment; empty: no online payment offered",
    ),
)
MIN_LOOKUP_KEY_BYTES = 32


class Captcha(Protocol):
    """The CAPTCHA seam: a provider's checker of the token the page's widget produced."""

    def passed(self, token: str | None, client: str) -> bool: ...


class NoCaptcha:
    """No CAPTCHA (development, or a deployment relying on the rate limits and the lock-out alone)."""

    def passed(self, token: str | None, client: str) -> bool:
        return True


CAPTCHAS: dict[str, Callable[[], Captcha]] = {"off": NoCaptcha}


@dataclass(frozen=True)
class LookupGuard:
    """What stands before the public lookup: its settings, two rate limits and the CAPTCHA checker."""

    settings: LookupSettings
    base: str  # where the receipt's QR code points: PUBLIC_BASE_URL, else this service's address
    per_client: SlidingWindow
    per_code: SlidingWindow
    captcha: Captcha
    payment_start: str  # the payment service's start page; empty: the page offers no online payment
    page: Page  # the lookup page, its policy allowing forms to payment_start


def lookup_guard(config: Mapping[str, Any]) -> LookupGuard:
    """Parse the lookup's settings; outside development ``LOOKUP_KEY`` is required and not the public one."""
    values = validate(config, LOOKUP_SETTINGS)
    key = (values["LOOKUP_KEY"] or "").encode()
    if not key and is_development(config):
        key = DEVELOPMENT_KEY
    elif key_problem("LOOKUP_KEY", key):
        raise ConfigurationError(
            f"LOOKUP_KEY: at least {MIN_LOOKUP_KEY_BYTES} bytes, not the development key, outside development"
        )
    if values["LOOKUP_CAPTCHA"] not in CAPTCHAS:
        raise ConfigurationError(f"LOOKUP_CAPTCHA: one of {', '.join(CAPTCHAS)}")
    return LookupGuard(
        settings=LookupSettings(
            key=key,
            max_failures=values["LOOKUP_MAX_FAILURES"],
            lock=timedelta(minutes=values["LOOKUP_LOCK_MINUTES"]),
        ),
        base=problem_base(dict(config)),
        per_client=SlidingWindow(values["LOOKUP_PER_MINUTE"]),
        per_code=SlidingWindow(values["LOOKUP_PER_CODE_PER_MINUTE"]),
        captcha=CAPTCHAS[values["LOOKUP_CAPTCHA"]](),
        payment_start=values["PAYMENT_START_URL"] or "",
        page=lookup_page.load(values["PAYMENT_START_URL"] or ""),
    )


class Lookup(DependencyProvider):
    """``self.lookup``: the lookup's :class:`LookupGuard`, one per process (the rate limits count here)."""

    def setup(self) -> None:
        self.guard = lookup_guard(self.container.config)

    def get_dependency(self, worker_ctx) -> LookupGuard:
        return self.guard
