"""``make check-config`` (issue 11, done means): a deployment's unsafe settings, listed."""

from __future__ import annotations

import pytest
import yaml

from shared.auth import DEV_SECRET
from shared.config import load_config
from shared.consumer import DEFAULT_BROKER_CONSUMER_TIMEOUT, hold_problem
from shared.deployment_check import ROOT, findings, main, services

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
    assert findings({**SAFE, "LOOKUP_KEY": "k" * 32}, "dossier") == []
    assert findings({**SAFE, "PAYMENT_PARTNER_SECRET": "s" * 16}, "payment") == []


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
        ({"LOOKUP_KEY": ""}, "LOOKUP_KEY is unset"),
        ({"LOOKUP_KEY": "31-bytes-of-key-is-one-too-few!"}, "shorter than 32 bytes"),
        ({"LOOKUP_KEY": "motcua-development-lookup-key-not-for-production"}, "public development key"),
        ({"PAYMENT_PARTNER_SECRET": ""}, "PAYMENT_PARTNER_SECRET is unset"),
        ({"PAYMENT_PARTNER_SECRET": "fifteen-chars!!"}, "shorter than 16 characters"),
        ({"PAYMENT_PARTNER_SECRET": "motcua-development-payment-secret"}, "public development secret"),
        ({"NOTIFIER_RECIPIENT_KEY": ""}, "NOTIFIER_RECIPIENT_KEY is unset"),
        (
            {"NOTIFIER_RECIPIENT_KEY": "motcua-development-recipient-key-not-for-production"},
            "NOTIFIER_RECIPIENT_KEY is the public development key",
        ),
        ({"EVENT_MAX_HOLD_SECONDS": "1800"}, "below the broker's consumer_timeout"),
        ({"EVENT_MAX_HOLD_SECONDS": "900", "BROKER_CONSUMER_TIMEOUT_SECONDS": "900"}, "consumer_timeout"),
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


@pytest.mark.parametrize(
    ("hold", "timeout", "agree"),
    [
        (None, None, True),  # the defaults: 15 min of hold, RabbitMQ's 30 min
        ("1739", "1800", True),
        ("1740", "1800", True),  # a minute's margin for the last try
        ("1741", "1800", False),
        ("3000", "3600", True),
        ("0", "1800", False),
    ],
)
def test_the_hold_must_end_a_minute_before_the_brokers_consumer_timeout(hold, timeout, agree):
    config = {"EVENT_MAX_HOLD_SECONDS": hold, "BROKER_CONSUMER_TIMEOUT_SECONDS": timeout}
    assert (hold_problem(config) is None) is agree


def test_the_broker_deployment_states_the_consumer_timeout_the_services_assume():
    rabbitmq = ROOT / "deploy" / "k8s" / "overlays" / "production" / "rabbitmq.yaml"
    cluster = next(
        doc for doc in yaml.safe_load_all(rabbitmq.read_text()) if doc["kind"] == "RabbitmqCluster"
    )
    settings = dict(
        line.split(" = ", 1)
        for line in cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines()
        if " = " in line and not line.lstrip().startswith("#")
    )
    assert int(settings["consumer_timeout"]) == DEFAULT_BROKER_CONSUMER_TIMEOUT * 1000
    for service in services():
        config = load_config(ROOT / "services" / service / "config.yml")
        assert float(config["BROKER_CONSUMER_TIMEOUT_SECONDS"]) == DEFAULT_BROKER_CONSUMER_TIMEOUT, service
        assert hold_problem(config) is None, service
