"""``make check-config``: what is unsafe in a deployment's configuration, service by service.

Reads each service's ``config.yml`` with the environment it would start with (the same substitution as
``shared.runner``) and lists every finding, one line each, with what to set instead. Exit status 1 when
anything is unsafe, 0 when nothing is. Run it with a pod's environment, e.g.::

    kubectl -n motcua exec deploy/motcua-dossier -- python -m shared.deployment_check dossier
    env $(cat production.env) python -m shared.deployment_check
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared import clock
from shared.auth import (
    DEVELOPMENT_KEYS,
    auth_settings,
    is_development,
    key_problem,
    partner_secret_problem,
    secret_problem,
)
from shared.config import ConfigurationError, load_config
from shared.consumer import hold_problem

ROOT = Path(__file__).resolve().parent.parent
LONGEST_SENSIBLE_TOKEN_SECONDS = 24 * 3600
LARGEST_SENSIBLE_LEEWAY_SECONDS = 120


def findings(config: Mapping[str, Any], service: str) -> list[str]:
    """What is unsafe in one service's configuration; empty when nothing is."""
    found: list[str] = []
    development = is_development(config)
    if development:
        found.append("MOTCUA_ENV=development: HS256 tokens from a shared key are accepted; unset it")
    if config.get(clock.ENV_VARIABLE) or os.environ.get(clock.ENV_VARIABLE):
        found.append(f"{clock.ENV_VARIABLE} is set: a file could move this service's time; unset it")
    problem = secret_problem(str(config.get("JWT_SECRET") or "") or None, development=False)
    if problem:
        found.append(f"{problem}: unset JWT_SECRET (tokens come from the identity provider)")
    for name in DEVELOPMENT_KEYS:  # the lookup's key (dossier), the recipients' key (notifier)
        if name in config and (problem_of_key := key_problem(name, str(config.get(name) or "").encode())):
            found.append(f"{problem_of_key}: set it to at least 32 random bytes (docs/runbook.md)")
    if "PAYMENT_PARTNER_SECRET" in config:  # the payment service's MaXacThuc
        problem_of_secret = partner_secret_problem(str(config.get("PAYMENT_PARTNER_SECRET") or ""))
        if problem_of_secret:
            found.append(f"{problem_of_secret}: set the secret the payment platform gave (docs/runbook.md)")
    try:
        settings = auth_settings({**config, "MOTCUA_ENV": ""}, service)
    except ConfigurationError as exc:
        if not problem:
            found.append(str(exc))
    else:
        oidc = settings.oidc
        if oidc is not None:
            if not oidc.jwks_url.startswith("https://"):
                found.append(f"OIDC_JWKS_URL is not https ({oidc.jwks_url}): keys could be substituted")
            if oidc.max_lifetime_seconds > LONGEST_SENSIBLE_TOKEN_SECONDS:
                found.append("OIDC_MAX_TOKEN_SECONDS is over a day: a stolen token stays useful too long")
            if oidc.leeway_seconds > LARGEST_SENSIBLE_LEEWAY_SECONDS:
                found.append(f"OIDC_LEEWAY_SECONDS over {LARGEST_SENSIBLE_LEEWAY_SECONDS}: fix the clocks")
    amqp = urlsplit(str(config.get("AMQP_URI") or ""))
    if (amqp.username or "guest") == "guest":
        found.append(
            "AMQP_URI uses RabbitMQ's guest user: give each service its own (AMQP_USERNAME/PASSWORD)"
        )
    elif not config.get("AMQP_USERNAME"):
        found.append(
            "AMQP_USERNAME/AMQP_PASSWORD unset: this service shares the URI's broker user with the others, "
            "so it may publish their events (deploy/k8s/broker)"
        )
    hold = hold_problem(config)
    if hold:
        found.append(hold)
    database = str(config.get("DATABASE_URL") or "")
    if database.startswith("sqlite"):
        found.append("DATABASE_URL is SQLite: one process, one disk; use PostgreSQL")
    base = str(config.get("PUBLIC_BASE_URL") or "")
    if base and not base.startswith("https://"):
        found.append(f"PUBLIC_BASE_URL is not https ({base})")
    level = (config.get("LOGGING") or {}).get("root", {}).get("level", "INFO")
    if str(level).upper() == "DEBUG":
        found.append("LOG_LEVEL=DEBUG: request details in the logs; use INFO")
    return found


def services() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "services").glob("*/config.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="List what is unsafe in motcua's configuration.")
    parser.add_argument("services", nargs="*", help="default: every service")
    args = parser.parse_args(argv)
    unsafe = 0
    for service in args.services or services():
        try:
            config = load_config(ROOT / "services" / service / "config.yml")
        except ConfigurationError as exc:
            print(f"{service}: UNSAFE: {exc}")
            unsafe += 1
            continue
        found = findings(config, service)
        for line in found:
            print(f"{service}: UNSAFE: {line}")
        if not found:
            print(f"{service}: nothing unsafe found")
        unsafe += len(found)
    return 1 if unsafe else 0


if __name__ == "__main__":
    sys.exit(main())
