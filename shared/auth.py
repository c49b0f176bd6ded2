"""Bearer-token authentication and the jurisdiction rule (docs/contracts.md §2 HTTP APIs).

A token's claims: ``sub``, ``roles`` and ``units`` — the unit codes whose jurisdiction the caller has;
a unit covers all its descendants. Reads outside the jurisdiction answer 404 (existence is not
revealed), actions outside it 403.

Where tokens come from (docs/security.md): in a province, from its OpenID Connect provider — RS256 or
ES256, checked against the provider's JWKS with a configured issuer, this service's audience, a small
leeway and a cap on lifetime, with ``roles``/``units`` read from configurable claims. HS256 tokens signed
with ``JWT_SECRET`` are accepted only with ``MOTCUA_ENV=development``; outside it a service refuses to
start with a known or short secret, or without an identity provider.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from nameko.extensions import DependencyProvider

from shared.config import ConfigurationError
from shared.domain import Forbidden, Invalid
from shared.problems import ServiceUnavailable, Unauthorized
from shared.units import UnitRegistry

log = logging.getLogger(__name__)

DEVELOPMENT = "development"
ALGORITHM = "HS256"  # development tokens only
OIDC_ALGORITHMS = ("RS256", "ES256")
ISSUER = "motcua"
DEV_SECRET = "motcua-development-secret-change-me"
# Public values no deployment may sign with: the development key and deploy/k8s's example placeholder.
KNOWN_SECRETS = frozenset({DEV_SECRET, "change-me-to-a-long-random-string"})
MIN_SECRET_BYTES = 32
# The HMAC keys a service needs outside development, and each one's public development value: the
# receipts' lookup secrets (services/dossier/lookup.py), the recipients the notifier's daily cap counts.
LOOKUP_DEVELOPMENT_KEY = b"motcua-development-lookup-key-not-for-production"
RECIPIENT_DEVELOPMENT_KEY = b"motcua-development-recipient-key-not-for-production"
DEVELOPMENT_KEYS = {"LOOKUP_KEY": LOOKUP_DEVELOPMENT_KEY, "NOTIFIER_RECIPIENT_KEY": RECIPIENT_DEVELOPMENT_KEY}


def key_problem(name: str, key: bytes) -> str | None:
    """Why the HMAC key ``name`` (one of ``DEVELOPMENT_KEYS``) must not be used outside development, or
    None: the one place the rule is written (the service refuses to start with it; ``make check-config``
    lists it)."""
    if len(key) < MIN_SECRET_BYTES:
        return f"{name} is unset or shorter than {MIN_SECRET_BYTES} bytes"
    if key == DEVELOPMENT_KEYS[name]:
        return f"{name} is the public development key"
    return None


# The payment platform simulator's partner secret (simulators/payment_platform.py): public.
PAYMENT_DEVELOPMENT_SECRET = "motcua-development-payment-secret"
MIN_PARTNER_SECRET_CHARACTERS = 16


def partner_secret_problem(secret: str) -> str | None:
    """Why a ``PAYMENT_PARTNER_SECRET`` (every MaXacThuc of the payment platform's messages) must not be
    used outside development, or None: the one place the rule is written (the payment service refuses
    to start with it; ``make check-config`` lists it)."""
    if len(secret) < MIN_PARTNER_SECRET_CHARACTERS:
        return f"PAYMENT_PARTNER_SECRET is unset or shorter than {MIN_PARTNER_SECRET_CHARACTERS} characters"
    if secret == PAYMENT_DEVELOPMENT_SECRET:
        return "PAYMENT_PARTNER_SECRET is the public development secret"
    return None


ROLES = (
    "portal",  # the provincial public service portal, filing on citizens' behalf
    "desk_officer",  # one-stop desk (Bộ phận Một cửa): receive, refuse, supplement, return
    "handling_officer",  # handling agency (cơ quan giải quyết): appraise, transfer
    "leader",  # competent person: approve/reject, sign
    "clerk",  # văn thư: applies the organisation's signature (the seal)
    "auditor",  # read-only over a jurisdiction (district/province office)
    "postal_operator",  # the public postal operator's integration
    "payment_service",  # the payment service: records payments the payment platform confirmed
    "admin",  # operations
)


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[str]
    units: tuple[str, ...]

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require_role(self, *roles: str) -> None:
        if not self.has_role(*roles):
            raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")

    def covers(self, registry: UnitRegistry, unit: str) -> bool:
        return registry.covers(self.units, unit)

    def require_jurisdiction(self, registry: UnitRegistry, unit: str, *, field: str | None = None) -> None:
        """The one jurisdiction check of every service: the unit exists and is in the caller's
        jurisdiction. ``field``: the request member that named the unit — an unknown unit there is a
        bad value (Invalid, 422); a unit the caller did not name (a dossier's) that the map no longer
        knows is covered by nobody (Forbidden, 403), as is a known one outside the jurisdiction."""
        if field is not None and unit not in registry:
            raise Invalid(field, f"unknown unit code {unit!r}")
        if not self.covers(registry, unit):
            raise Forbidden(f"unit {unit} is outside your jurisdiction")


def mint(
    secret: str, *, sub: str, roles: Iterable[str], units: Iterable[str], ttl: timedelta = timedelta(hours=8)
) -> str:
    """A development (HS256) token; only a service in ``MOTCUA_ENV=development`` accepts it."""
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "roles": sorted(roles),
        "units": list(units),
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# --- settings: development (HS256) or an OpenID Connect provider (RS256/ES256 from its JWKS) ----------


@dataclass(frozen=True)
class OidcSettings:
    """How tokens of the province's identity provider are checked (``OIDC_*`` settings)."""

    issuer: str
    jwks_url: str
    audience: str
    leeway_seconds: float = 30.0
    max_lifetime_seconds: float = 12 * 3600.0
    roles_claim: str = "roles"
    units_claim: str = "units"
    jwks_cache_seconds: float = 300.0
    jwks_cooldown_seconds: float = 30.0


@dataclass(frozen=True)
class AuthSettings:
    development: bool
    secret: str | None  # HS256, honoured only in development
    oidc: OidcSettings | None


def is_development(config: Mapping[str, Any]) -> bool:
    """``MOTCUA_ENV=development``, from the service's configuration or else the environment."""
    value = config.get("MOTCUA_ENV") or os.environ.get("MOTCUA_ENV", "")
    return str(value).strip().lower() == DEVELOPMENT


def _value(config: Mapping[str, Any], key: str) -> Any:
    # A service whose config.yml does not name an OIDC_* key still reads it from the environment.
    value = config.get(key)
    return os.environ.get(key) if value in (None, "") else value


def _seconds(config: Mapping[str, Any], key: str, default: float) -> float:
    value = _value(config, key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise ConfigurationError(f"{key}: must be a number of seconds, got {value!r}")
    return number


def secret_problem(secret: str | None, *, development: bool) -> str | None:
    """Why a ``JWT_SECRET`` must not be used here, or None. The one place the rule is written."""
    if not secret:
        return None
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes"
    if not development and secret in KNOWN_SECRETS:
        return "JWT_SECRET is the public development secret or the shipped placeholder"
    return None


def auth_settings(config: Mapping[str, Any], service: str) -> AuthSettings:
    """Read and check the authentication settings; ConfigurationError is one line saying what to set."""
    development = is_development(config)
    secret = str(config.get("JWT_SECRET") or "") or None
    problem = secret_problem(secret, development=development)
    if problem:
        raise ConfigurationError(
            f"{problem}; outside MOTCUA_ENV=development tokens come from the identity provider: "
            "set OIDC_ISSUER and OIDC_JWKS_URL, and unset JWT_SECRET"
            if not development
            else f"{problem}; set JWT_SECRET to at least {MIN_SECRET_BYTES} random bytes"
        )
    issuer, jwks_url = _value(config, "OIDC_ISSUER"), _value(config, "OIDC_JWKS_URL")
    oidc = None
    if issuer or jwks_url:
        if not (issuer and jwks_url):
            raise ConfigurationError("set both OIDC_ISSUER and OIDC_JWKS_URL (the provider's JWKS endpoint)")
        if not str(jwks_url).startswith(("https://", "http://")):
            raise ConfigurationError(f"OIDC_JWKS_URL: not an http(s) URL: {jwks_url!r}")
        oidc = OidcSettings(
            issuer=str(issuer),
            jwks_url=str(jwks_url),
            audience=str(_value(config, "OIDC_AUDIENCE") or f"motcua-{service}"),
            leeway_seconds=_seconds(config, "OIDC_LEEWAY_SECONDS", 30.0),
            max_lifetime_seconds=_seconds(config, "OIDC_MAX_TOKEN_SECONDS", 12 * 3600.0),
            roles_claim=str(_value(config, "OIDC_ROLES_CLAIM") or "roles"),
            units_claim=str(_value(config, "OIDC_UNITS_CLAIM") or "units"),
            jwks_cache_seconds=max(_seconds(config, "OIDC_JWKS_CACHE_SECONDS", 300.0), 1.0),
            jwks_cooldown_seconds=_seconds(config, "OIDC_JWKS_COOLDOWN_SECONDS", 30.0),
        )
    if not development and oidc is None:
        raise ConfigurationError(
            "no identity provider: set OIDC_ISSUER and OIDC_JWKS_URL "
            "(or MOTCUA_ENV=development on a workstation, for HS256 development tokens)"
        )
    if development and secret is None:
        secret = DEV_SECRET
    return AuthSettings(development=development, secret=secret if development else None, oidc=oidc)


# --- verification --------------------------------------------------------------------------------------


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles``); a key containing dots is tried whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any, claim: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(name for name in value.replace(",", " ").split() if name)
    if isinstance(value, list) and all(isinstance(name, str | int) for name in value):
        return tuple(str(name) for name in value)
    raise Unauthorized(f"invalid token: claim {claim!r} must be a list of names")


def _decode_development(secret: str, token: str) -> Principal:
    return _verify_development(secret, token)[0]


def _verify_development(secret: str, token: str) -> tuple[Principal, float]:
    """The principal of a development token, and its ``exp``."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["sub", "exp", "iss"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    roles, units = claims.get("roles", []), claims.get("units", [])
    if not isinstance(roles, list) or not isinstance(units, list):
        raise Unauthorized("invalid token: 'roles' and 'units' must be lists")
    principal = Principal(
        sub=str(claims["sub"]), roles=frozenset(map(str, roles)), units=tuple(map(str, units))
    )
    return principal, float(claims["exp"])


class VerifiedTokens:
    """Tokens already verified, with their principal: a bounded map keyed by the raw token, so a
    caller sending the same token again is not verified (HMAC, RSA or ECDSA, claims) again.

    An entry ends at the token's ``exp`` (never the leeway after it) and, for a token of the identity
    provider, when the key set it was checked against leaves PyJWKClient's cache: a retired key stops
    being accepted as soon as it would without this cache. Failures are never kept. When full, the
    oldest entry goes.
    """

    def __init__(self, capacity: int = 4096, *, wall=time.time, monotonic=time.monotonic) -> None:
        self.capacity = capacity
        self._wall, self._monotonic = wall, monotonic
        self._entries: dict[str, tuple[Principal, float, float]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, exp, key_set_expires = entry
        if self._wall() >= exp or self._monotonic() >= key_set_expires:
            del self._entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, *, exp: float, key_set_expires: float = math.inf) -> None:
        if self._wall() >= exp or self._monotonic() >= key_set_expires:
            return
        while len(self._entries) >= self.capacity:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (principal, exp, key_set_expires)


def verify(secret: str, authorization: str | None) -> Principal:
    """Check a development (HS256) token."""
    return _decode_development(secret, _bearer(authorization))


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, by the service's settings.

    Identity-provider tokens are checked against the provider's JWKS, fetched by PyJWT's
    ``PyJWKClient``: the key set is cached ``OIDC_JWKS_CACHE_SECONDS``, so a retired key stops being
    accepted after at most that long, and a token naming a key not yet seen makes it fetch the set again
    (at most once per ``OIDC_JWKS_COOLDOWN_SECONDS``), so a new key works without a restart. A token
    verified once is served from :class:`VerifiedTokens`, within those same limits.
    """

    def __init__(self, settings: AuthSettings, verified: VerifiedTokens | None = None) -> None:
        self.settings = settings
        self.verified = verified or VerifiedTokens()
        self.jwks = None
        if settings.oidc is not None:
            self.jwks = jwt.PyJWKClient(
                settings.oidc.jwks_url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=settings.oidc.jwks_cache_seconds,
                timeout=5,
                cooldown_duration=settings.oidc.jwks_cooldown_seconds,
            )

    def verify(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        if algorithm == ALGORITHM and self.settings.development and self.settings.secret:
            principal, exp = _verify_development(self.settings.secret, token)
            self.verified.put(token, principal, exp=exp)
            return principal
        if algorithm in OIDC_ALGORITHMS and self.jwks is not None:
            return self._verify_oidc(token)
        raise Unauthorized(f"invalid token: tokens signed with {algorithm!r} are not accepted here")

    def _key_set_expires(self) -> float:
        """When the key set in PyJWKClient's cache expires (monotonic); -inf when that is unknown."""
        cache = getattr(self.jwks, "jwk_set_cache", None)
        held = getattr(cache, "jwk_set_with_timestamp", None)
        if held is None:
            return -math.inf
        return held.get_timestamp() + cache.lifespan

    def _verify_oidc(self, token: str) -> Principal:
        oidc = self.settings.oidc
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            log.error("cannot fetch the identity provider's keys from %s: %s", oidc.jwks_url, exc)
            raise ServiceUnavailable("the identity provider's signing keys cannot be fetched; retry") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthorized("invalid token: not signed by a current key of the identity provider") from exc
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(OIDC_ALGORITHMS),
                issuer=oidc.issuer,
                audience=oidc.audience,
                leeway=oidc.leeway_seconds,
                options={"require": ["sub", "exp", "iss", "iat", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > oidc.max_lifetime_seconds:
            raise Unauthorized(
                f"invalid token: valid for {lifetime:.0f} s, more than the {oidc.max_lifetime_seconds:.0f} s "
                "this service accepts"
            )
        principal = Principal(
            sub=str(claims["sub"]),
            roles=frozenset(_names(_claim(claims, oidc.roles_claim), oidc.roles_claim)),
            units=_names(_claim(claims, oidc.units_claim), oidc.units_claim),
        )
        self.verified.put(token, principal, exp=float(claims["exp"]), key_set_expires=self._key_set_expires())
        return principal

    def principal(self, request) -> Principal:
        return self.verify(request.headers.get("Authorization"))


class Auth(DependencyProvider):
    """nameko dependency: ``self.auth.principal(request)``."""

    def setup(self) -> None:
        self.authenticator = Authenticator(auth_settings(self.container.config, self.container.service_name))

    def get_dependency(self, worker_ctx) -> Authenticator:
        return self.authenticator


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.auth --role desk_officer --unit 26734``: a development token."""
    parser = argparse.ArgumentParser(description="Mint a development bearer token for motcua.")
    parser.add_argument("--role", action="append", required=True, choices=ROLES)
    parser.add_argument(
        "--unit", action="append", default=[], help="unit code of the caller's jurisdiction (repeatable)"
    )
    parser.add_argument("--sub", default=None, help="subject (default: <role>@<unit>)")
    parser.add_argument("--hours", type=float, default=8.0)
    args = parser.parse_args(argv)
    registry = UnitRegistry.from_settings(os.environ.get("UNITS_FILE") or None)
    for unit in args.unit:
        if unit not in registry:
            parser.error(f"unknown unit code {unit!r}")
    secret = os.environ.get("JWT_SECRET", DEV_SECRET)
    sub = args.sub or f"{args.role[0]}@{'+'.join(args.unit) or 'none'}"
    print(mint(secret, sub=sub, roles=args.role, units=args.unit, ttl=timedelta(hours=args.hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
