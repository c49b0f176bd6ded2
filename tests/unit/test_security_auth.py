"""Authentication fit for a province (issue 11 §1): no silent development secret, identity-provider tokens.

Tokens are signed by a local identity provider whose JWKS a real HTTP server process serves on
127.0.0.1 (tests/support/identity_provider.py); keys are rotated by rewriting what it serves while the
same Authenticator keeps running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import DEV_SECRET, Authenticator, auth_settings, mint
from shared.config import ConfigurationError
from shared.problems import Unauthorized
from tests.conftest import free_port
from tests.support.identity_provider import ISSUER, IdentityProvider, SigningKey

PLACEHOLDER = "change-me-to-a-long-random-string"  # deploy/k8s/base/secret.example.yaml
STRONG = "k3H9wq0V7sZbX1pQe4Lr8tYu2Nm6Jc5D"  # 32 bytes


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --- no silent development secret ------------------------------------------------------------------


def _start_dossier(tmp_path, **overrides: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTCUA_ENV", "JWT_", "OIDC_"))}
    env["DOSSIER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'never-created.sqlite3'}"
    env.update({k: v for k, v in overrides.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-m", "shared.runner", "dossier"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (None, "OIDC_ISSUER"),  # nothing set: today it starts with the public development key
        (DEV_SECRET, "development secret"),
        (PLACEHOLDER, "placeholder"),
        ("s" * 31, "shorter than 32 bytes"),
    ],
)
def test_outside_development_the_service_refuses_to_start_and_says_what_to_set(tmp_path, secret, why):
    result = _start_dossier(tmp_path, JWT_SECRET=secret)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert why in lines[0] and "OIDC_ISSUER" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "never-created.sqlite3").exists()


def test_an_identity_provider_does_not_make_a_known_secret_acceptable():
    config = {"JWT_SECRET": PLACEHOLDER, "OIDC_ISSUER": ISSUER, "OIDC_JWKS_URL": "http://127.0.0.1:1/jwks"}
    with pytest.raises(ConfigurationError, match="placeholder"):
        auth_settings({**config, "MOTCUA_ENV": "production"}, "dossier")


def test_development_is_explicit_and_uses_the_development_key_by_default():
    settings = auth_settings({"MOTCUA_ENV": "development"}, "dossier")
    assert settings.development and settings.secret == DEV_SECRET and settings.oidc is None
    with pytest.raises(ConfigurationError, match="32 bytes"):
        auth_settings({"MOTCUA_ENV": "development", "JWT_SECRET": "short"}, "dossier")


# --- identity-provider tokens --------------------------------------------------------------------------


@pytest.fixture
def provider(tmp_path):
    idp = IdentityProvider(tmp_path, free_port())
    idp.publish()
    yield idp.start()
    idp.stop()


def oidc_config(provider: IdentityProvider, **extra) -> dict:
    return {
        "MOTCUA_ENV": "production",
        "OIDC_ISSUER": ISSUER,
        "OIDC_JWKS_URL": provider.url,
        "OIDC_JWKS_CACHE_SECONDS": "1",
        "OIDC_JWKS_COOLDOWN_SECONDS": "0",
        **extra,
    }


def authenticator(provider: IdentityProvider, service: str = "dossier", **extra) -> Authenticator:
    return Authenticator(auth_settings(oidc_config(provider, **extra), service))


def test_rs256_and_es256_tokens_of_the_provider_are_accepted(provider):
    rsa_key, ec_key = SigningKey("rsa-1"), SigningKey("ec-1", "ES256")
    provider.publish(rsa_key, ec_key)
    auth = authenticator(provider)
    claims = IdentityProvider.claims(roles=["desk_officer"], units=["26740"])
    for key in (rsa_key, ec_key):
        principal = auth.verify(bearer(key.sign(claims)))
        assert principal.sub == "officer-1" and principal.roles == {"desk_officer"}
        assert principal.units == ("26740",)


def test_a_retired_key_is_refused_and_a_new_key_accepted_without_a_restart(provider):
    old, new = SigningKey("2026-10"), SigningKey("2026-11")
    provider.publish(old)
    auth = authenticator(provider)
    claims = IdentityProvider.claims(roles=["leader"], units=["79"])
    assert auth.verify(bearer(old.sign(claims))).roles == {"leader"}

    provider.publish(old, new)  # the provider adds its next key …
    assert auth.verify(bearer(new.sign(claims))).roles == {"leader"}  # … a token naming it works at once

    provider.publish(new)  # … and retires the old one
    time.sleep(1.2)  # OIDC_JWKS_CACHE_SECONDS=1: the cached key set has expired
    with pytest.raises(Unauthorized, match="current key"):
        auth.verify(bearer(old.sign(claims)))
    assert auth.verify(bearer(new.sign(claims))).sub == "officer-1"


def test_a_key_the_provider_never_published_is_refused(provider):
    provider.publish(SigningKey("published"))
    forger = SigningKey("published")  # same kid, another private key
    with pytest.raises(Unauthorized, match="invalid token"):
        authenticator(provider).verify(bearer(forger.sign(IdentityProvider.claims())))


def test_issuer_audience_and_lifetime_are_checked(provider):
    key = SigningKey("k")
    provider.publish(key)
    auth = authenticator(provider, OIDC_MAX_TOKEN_SECONDS="3600")
    # A token for the metrics service does not open the dossier service.
    with pytest.raises(Unauthorized, match="(?i)audience"):
        auth.verify(bearer(key.sign(IdentityProvider.claims(audience="motcua-metrics"))))
    with pytest.raises(Unauthorized, match="(?i)issuer"):
        auth.verify(bearer(key.sign({**IdentityProvider.claims(), "iss": "https://elsewhere.example"})))
    with pytest.raises(Unauthorized, match="3600"):
        auth.verify(bearer(key.sign(IdentityProvider.claims(lifetime=timedelta(hours=2)))))
    with pytest.raises(Unauthorized, match="iat"):
        claims = IdentityProvider.claims()
        del claims["iat"]
        auth.verify(bearer(key.sign(claims)))


def test_thirty_seconds_of_clock_skew_are_tolerated_and_no_more(provider):
    key = SigningKey("k")
    provider.publish(key)
    auth = authenticator(provider)
    now = datetime.now(UTC)
    just_expired = IdentityProvider.claims(issued=now - timedelta(minutes=5, seconds=20))
    assert auth.verify(bearer(key.sign(just_expired))).sub == "officer-1"
    long_expired = IdentityProvider.claims(issued=now - timedelta(minutes=5, seconds=45))
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(bearer(key.sign(long_expired)))


def test_roles_and_units_come_from_the_configured_claims(provider):
    key = SigningKey("k")
    provider.publish(key)
    auth = authenticator(
        provider, OIDC_ROLES_CLAIM="resource_access.motcua.roles", OIDC_UNITS_CLAIM="motcua_units"
    )
    claims = IdentityProvider.claims(
        resource_access={"motcua": {"roles": ["auditor"]}, "account": {"roles": ["manage-account"]}},
        roles=["admin"],  # not the configured claim: ignored
        motcua_units="883 30280",
    )
    principal = auth.verify(bearer(key.sign(claims)))
    assert principal.roles == {"auditor"} and principal.units == ("883", "30280")


def test_hs256_is_for_development_only(provider):
    token = bearer(mint(STRONG, sub="a", roles=["auditor"], units=["79"]))
    production = authenticator(provider, JWT_SECRET=STRONG)
    with pytest.raises(Unauthorized, match="HS256"):
        production.verify(token)
    development = authenticator(provider, JWT_SECRET=STRONG, MOTCUA_ENV="development")
    assert development.verify(token).roles == {"auditor"}
