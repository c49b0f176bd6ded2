"""``make check-config`` (issue 11, done means): a deployment's unsafe settings, listed."""

from __future__ import annotations

import pytest

from shared.auth import DEV_SECRET
from shared.deployment_check import findings, main

SAFE = {
    "AMQP_URI": "amqp://rabbitmq-default:x@rabbitmq:5672/",
    "AMQP_USERNAME": "motcua-dossier",
    "DATABASE_URL": "postgresql://app:x@motcua-db-rw:5432/app",
    "OIDC_ISSUER": "https://id.example.gov.vn/realms/motcua",
    "OIDC_JWKS_URL": "https://id.example.gov.vn/realms/motcua/protocol/openid-connect/certs",
    "PUBLIC_BASE_URL": "https://api.example.gov.vn",
    "LOGGING": {"root": {"level": "INFO"}},
}


def test_a_production_configuration_has_nothing_unsafe(monkeypatch):
    monkeypatch.delenv("MOTCUA_ENV", raising=False)  # the tests run in development mode
    assert findings(SAFE, "dossier") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"MOTCUA_ENV": "development"}, "MOTCUA_ENV=development"),
        ({"MOTCUA_CLOCK_FILE": "/run/motcua/clock"}, "MOTCUA_CLOCK_FILE is set"),
        ({"JWT_SECRET": DEV_SECRET}, "development secret"),
        ({"JWT_SECRET": "change-me-to-a-long-random-string"}, "placeholder"),
        ({"OIDC_ISSUER": "", "OIDC_JWKS_URL": ""}, "no identity provider"),
        ({"OIDC_JWKS_URL": "http://id.example.gov.vn/certs"}, "not https"),
        ({"OIDC_MAX_TOKEN_SECONDS": "604800"}, "over a day"),
        ({"AMQP_URI": "amqp://guest:guest@rabbitmq:5672/"}, "guest"),
        ({"AMQP_USERNAME": ""}, "shares the URI's broker user"),
        ({"DATABASE_URL": "sqlite:///data/dossier.sqlite3"}, "SQLite"),
        ({"PUBLIC_BASE_URL": "http://api.example.gov.vn"}, "PUBLIC_BASE_URL"),
        ({"LOGGING": {"root": {"level": "DEBUG"}}}, "DEBUG"),
    ],
)
def test_each_unsafe_setting_is_named(change, expected, monkeypatch):
    for name in ("OIDC_ISSUER", "OIDC_JWKS_URL", "MOTCUA_ENV"):
        monkeypatch.delenv(name, raising=False)
    found = findings({**SAFE, **change}, "dossier")
    assert len(found) == 1 and expected in found[0], found


def test_the_shipped_defaults_are_reported_unsafe(monkeypatch, capsys):
    for name in ("MOTCUA_ENV", "JWT_SECRET", "OIDC_ISSUER", "OIDC_JWKS_URL", "AMQP_URI"):
        monkeypatch.delenv(name, raising=False)
    assert main(["dossier"]) == 1
    out = capsys.readouterr().out
    assert "no identity provider" in out and "guest" in out and "SQLite" in out
