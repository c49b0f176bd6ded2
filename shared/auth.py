"""Bearer-token authentication and the jurisdiction rule (CONTRACTS §2).

A token's claims: ``sub``, ``roles`` and ``units`` — the unit codes whose jurisdiction the caller has;
a unit covers all its descendants. Reads outside the jurisdiction answer 404 (existence is not
revealed), actions outside it 403.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from nameko.extensions import DependencyProvider

from shared.problems import Forbidden, Unauthorized
from shared.units import UnitRegistry

ALGORITHM = "HS256"
ISSUER = "motcua"
DEV_SECRET = "motcua-development-secret-change-me"

ROLES = (
    "portal",  # the provincial public service portal, filing on citizens' behalf
    "desk_officer",  # one-stop desk (Bộ phận Một cửa): receive, refuse, supplement, return
    "handling_officer",  # handling agency (cơ quan giải quyết): appraise, transfer
    "leader",  # competent person: approve/reject, sign
    "clerk",  # văn thư: applies the organisation's signature (the seal)
    "auditor",  # read-only over a jurisdiction (district/province office)
    "postal_operator",  # the public postal operator's integration
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


def mint(
    secret: str, *, sub: str, roles: Iterable[str], units: Iterable[str], ttl: timedelta = timedelta(hours=8)
) -> str:
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


def verify(secret: str, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    roles, units = claims.get("roles", []), claims.get("units", [])
    if not isinstance(roles, list) or not isinstance(units, list):
        raise Unauthorized("invalid token: 'roles' and 'units' must be lists")
    return Principal(sub=str(claims["sub"]), roles=frozenset(map(str, roles)), units=tuple(map(str, units)))


class Authenticator:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def principal(self, request) -> Principal:
        return verify(self.secret, request.headers.get("Authorization"))


class Auth(DependencyProvider):
    """nameko dependency: ``self.auth.principal(request)``."""

    def setup(self) -> None:
        self.authenticator = Authenticator(str(self.container.config["JWT_SECRET"]))

    def get_dependency(self, worker_ctx) -> Authenticator:
        return self.authenticator


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.auth --role desk_officer --unit 26734``: a development token."""
    import os

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
