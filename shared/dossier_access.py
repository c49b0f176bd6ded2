"""How a service that reads the dossier service (the notifier, the payment service, the portal sync) is
told where it is and with what right: ``DOSSIER_URL``, ``DOSSIER_TOKEN`` and the units its token covers.

The token is a bearer JWT with one role over the deployment's units. Outside development it must be
given (an operator mints it with ``make token``); development mints its own with the development key, so
``make run`` needs no set-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shared.auth import DEV_SECRET, is_development, mint
from shared.config import ConfigurationError, Setting


def unit_codes(value: Any) -> tuple[str, ...]:
    """``"79, 01"`` → ``("79", "01")``: the province codes a deployment serves."""
    return tuple(code.strip() for code in str(value).split(",") if code.strip())


def url_setting(reads: str) -> Setting:
    return Setting(
        "DOSSIER_URL",
        default="http://127.0.0.1:8000",
        description=f"the dossier service's base URL ({reads})",
    )


def token_settings(role: str, units: str, served: str) -> tuple[Setting, Setting]:
    """``DOSSIER_TOKEN`` (a bearer token with ``role`` over the units) and the units setting itself."""
    return (
        Setting(
            "DOSSIER_TOKEN",
            required=False,
            default="",
            description=f"a bearer token with the {role} role over {units} (development: minted)",
        ),
        Setting(
            units,
            unit_codes,
            default="79",
            description=f"the units (province codes) whose {served}",
        ),
    )


def dossier_token(
    config: Mapping[str, Any], values: Mapping[str, Any], *, subject: str, role: str, units: str
) -> str:
    """The configured token, or in development one minted for ``subject`` with ``role`` over the units."""
    token = values["DOSSIER_TOKEN"]
    if token:
        return token
    if not is_development(config):
        raise ConfigurationError("DOSSIER_TOKEN: missing (only development mints its own)")
    return mint(
        config.get("JWT_SECRET") or DEV_SECRET,
        sub=subject,
        roles=[role],
        units=values[units],
        ttl=timedelta(days=365),
    )
