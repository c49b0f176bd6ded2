"""Service configuration: nameko YAML with ``${VAR:default}`` substitution, checked at start.

Each service ships a ``config.yml``; every value may come from the environment. A missing or
malformed setting stops the service at start with a message naming the setting, instead of
failing on the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from shared.db import DATABASE_TIMEOUT_SECONDS

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def _substitute(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                raise ConfigurationError(f"environment variable {name} is required and not set")
            return default
        return value

    return _ENV.sub(replace, text)


class _Loader(yaml.SafeLoader):
    """YAML with ``${VAR:default}`` substituted *after* parsing, so a value is never read as YAML syntax
    (a secret containing `` #`` is not cut at a comment, nor one containing ``: `` split)."""


def _whole_placeholder(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """A plain scalar that is one placeholder: typed as YAML types a plain value (``0.5``, ``20``, ``[]``,
    ``true``, empty is null), except that text stays text exactly as given."""
    text = _substitute(node.value)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, str) else value


_Loader.add_implicit_resolver("!motcua-env", re.compile(rf"^{_ENV.pattern}$"), ["$"])
_Loader.add_constructor("!motcua-env", _whole_placeholder)
_Loader.add_constructor(
    "tag:yaml.org,2002:str", lambda loader, node: _substitute(loader.construct_scalar(node))
)


def with_credentials(amqp_uri: str, user: str, password: str) -> str:
    """``amqp_uri`` with ``user``/``password`` in place of the credentials it had."""
    parsed = urlsplit(amqp_uri)
    host = parsed.netloc.rsplit("@", 1)[-1]
    return parsed._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}").geturl()


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a service's config.yml, substituting ``${VAR:default}`` from the environment.

    ``AMQP_USERNAME`` and ``AMQP_PASSWORD``, when set, replace the credentials in ``AMQP_URI``: in
    Kubernetes they come from the service's own broker user's generated Secret (deploy/k8s/broker).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read configuration file {source}: {exc}") from exc
    try:
        loaded = yaml.load(text, Loader=_Loader) or {}  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigurationError(f"{source}: top level must be a mapping")
    user, password = loaded.get("AMQP_USERNAME"), loaded.get("AMQP_PASSWORD")
    if user and password and loaded.get("AMQP_URI"):
        loaded["AMQP_URI"] = with_credentials(str(loaded["AMQP_URI"]), str(user), str(password))
    return loaded


@dataclass(frozen=True)
class Setting:
    """One setting a service needs: its config key, how to parse it, what it is for, and its default.

    The default lives here and only here: ``config.yml`` leaves the value empty (``${VAR:}``) when
    the code's default applies, and a setting with a default is never missing.
    """

    key: str
    parse: Callable[[Any], Any] = str
    required: bool = True
    description: str = ""
    default: Any = None


def _url(value: Any) -> str:
    text = str(value)
    if "://" not in text:
        raise ValueError(f"not a URL: {text!r}")
    return text


def _address(value: Any) -> str:
    text = str(value)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return text


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def positive(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0 or number != float(value):
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return number


def sequence_format(value: Any) -> str:
    """How this service sends an event's ``sequence`` (docs/contracts.md §1): ``string`` or ``integer``."""
    text = str(value).strip().lower()
    if text not in ("string", "integer"):
        raise ValueError(f"must be string or integer, not {value!r}")
    return text


def parse_delays(value: Any) -> tuple[float, ...]:
    """``"1,5,30,120"`` (or a list) as seconds: the delay before each retry of a failing event."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    delays = tuple(float(item) for item in items if str(item).strip())
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError(f"expected comma-separated non-negative seconds, got {value!r}")
    return delays


def _optional_path(value: Any) -> str | None:
    if value in (None, ""):
        return None
    path = Path(str(value))
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return str(path)


COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("AMQP_URI", _url, description="RabbitMQ connection URI"),
    Setting("DATABASE_URL", _url, description="SQLAlchemy database URL of this service"),
    Setting("WEB_SERVER_ADDRESS", _address, description="host:port the HTTP API listens on"),
    Setting(
        "JWT_SECRET",
        required=False,
        description="HS256 key of development tokens (MOTCUA_ENV=development; checked in shared/auth.py)",
    ),
    Setting(
        "PUBLIC_BASE_URL",
        _url,
        required=False,
        description="where clients reach the API; pagination links start with it (empty: paths)",
    ),
    Setting(
        "UNITS_FILE",
        _optional_path,
        required=False,
        description="administrative-unit hierarchy file; empty = today's national map",
    ),
    Setting(
        "DATABASE_TIMEOUT_SECONDS",
        positive,
        default=DATABASE_TIMEOUT_SECONDS,
        description="PostgreSQL statement_timeout; a database silent 5 s longer is given up on (503)",
    ),
    Setting("OUTBOX_POLL_SECONDS", positive, description="how often the relay looks for events"),
    Setting("OUTBOX_BATCH_SIZE", positive_int, description="events published per confirm round"),
    Setting(
        "EVENT_SEQUENCE_FORMAT",
        sequence_format,
        required=False,
        default="string",
        description="`string` (contract 4.x) or `integer` (3.x's form, while 3.x consumers still run)",
    ),
    Setting(
        "EVENT_MAX_ATTEMPTS",
        positive_int,
        description="deliveries of a failing event before it is dead-lettered",
    ),
    Setting(
        "EVENT_RETRY_DELAYS",
        parse_delays,
        required=False,
        description="seconds before each retry of a failing event, comma-separated; the last repeats",
    ),
    Setting(
        "EVENT_OUTAGE_BACKOFF_MAX_SECONDS",
        positive,
        required=False,
        description="longest wait between tries of an event held while the database is down",
    ),
    Setting(
        "EVENT_MAX_HOLD_SECONDS",
        positive,
        required=False,
        description="how long after its delivery a held event is given back to the broker (default 900)",
    ),
    Setting(
        "BROKER_CONSUMER_TIMEOUT_SECONDS",
        positive,
        required=False,
        description="the broker's consumer_timeout; the hold must stay a minute below it (default 1800)",
    ),
)


def validate(config: Mapping[str, Any], settings: tuple[Setting, ...] = COMMON_SETTINGS) -> dict:
    """Check and parse every setting; raise ConfigurationError naming each one at fault."""
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for setting in settings:
        value = config.get(setting.key)
        if value in (None, "") and setting.default is not None:
            value = setting.default
        if value in (None, "") and setting.required:
            problems.append(f"{setting.key}: missing ({setting.description})")
            continue
        try:
            parsed[setting.key] = setting.parse(value) if value not in (None, "") else None
        except (TypeError, ValueError) as exc:
            problems.append(f"{setting.key}: {exc}")
    if problems:
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems))
    return parsed
