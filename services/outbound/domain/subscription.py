"""HTTP subscriptions to the events (docs/contracts.md §5): who sees what, when to try again, and
which callback addresses are refused. Plain Python."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as default
from datetime import datetime, timedelta
from typing import Any

# Cloud metadata endpoints that are not link-local (AWS's IPv6 one); 169.254.169.254 is link-local.
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"),)
# The longest a subscriber may ask to be left alone with Retry-After.
RETRY_AFTER_MAX = timedelta(days=1)
# A subscription's contact hears of dead deliveries at most this often.
NOTICE_INTERVAL = timedelta(days=1)


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth2 client credentials (RFC 6749 §4.4) with which the callback's bearer token is obtained."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


@dataclass
class Subscription:
    """One subscriber's callback and what it wants; ``units`` is its owner's jurisdiction when made."""

    id: str
    owner: str
    callback_url: str
    unit: str
    unit_path: str
    event_types: list[str] = default(default_factory=list)  # empty: every type
    procedure: str | None = None
    field: str | None = None
    auth_header: str | None = None
    oauth2: ClientCredentials | None = None
    secrets: list[str] = default(default_factory=list)
    contact: str | None = None
    active: bool = True
    disabled_reason: str | None = None

    def matches(self, event_type: str, paths: Iterable[str], data: dict[str, Any]) -> bool:
        """As an AMQP binding ``<source>.*.<unit path>.#`` would, on the routing key and its CC paths;
        then the type, procedure and field filters."""
        if not any(path == self.unit_path or path.startswith(self.unit_path + ".") for path in paths):
            return False
        if self.event_types and event_type not in self.event_types:
            return False
        if self.procedure and data.get("procedure_code") != self.procedure:
            return False
        return not (self.field and data.get("procedure_field") != self.field)


@dataclass(frozen=True)
class Backoff:
    """Open Notificaties' schedule: ``base·4ⁿ`` seconds before retry n+1 (25 s … about 28 h at the
    sixth), each with ±50 % jitter so that a subscriber's retries do not come in waves."""

    base: float = 25.0
    attempts: int = 7

    def next_try(
        self, attempts: int, now: datetime, retry_after: float | None = None, rng=random
    ) -> datetime | None:
        """When to try again after ``attempts`` failed tries; None: the delivery is dead."""
        if attempts >= self.attempts:
            return None
        delay = self.base * 4 ** (attempts - 1) * rng.uniform(0.5, 1.5)
        if retry_after is not None:  # the subscriber said when; never sooner than the schedule
            delay = max(delay, min(retry_after, RETRY_AFTER_MAX.total_seconds()))
        return now + timedelta(seconds=delay)


def refused_address(address: str, allowed: Iterable[ipaddress._BaseNetwork]) -> str | None:
    """Why a callback may not reach ``address`` (loopback, link-local, private, metadata ...), or None.
    A deployment's allowed networks lift the refusal (a test's 127.0.0.1, an intranet subscriber)."""
    ip = ipaddress.ip_address(address)
    if any(ip in network for network in allowed):
        return None
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if any(ip in network for network in METADATA):
        return f"{address} is a cloud metadata address"
    return None


def notice_due(last_notice_at: datetime | None, now: datetime) -> bool:
    """Whether a dead delivery is told to the contact now: at most once a day per subscription."""
    return last_notice_at is None or now - last_notice_at >= NOTICE_INTERVAL


def contact_channel(contact: str) -> str:
    """How a contact is told: ``url`` (a POST of the notice) or ``email`` (the operator's mailer)."""
    return "url" if contact.startswith(("http://", "https://")) else "email"
