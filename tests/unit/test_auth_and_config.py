"""Bearer tokens, the jurisdiction rule and configuration checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from shared.auth import DEV_SECRET, main, mint, verify
from shared.config import ConfigurationError, load_config, validate
from shared.domain import Forbidden
from shared.http import problem_for
from shared.problems import Unauthorized
from shared.units import EXAMPLE_3LEVEL_FILE, UnitRegistry

UNITS = UnitRegistry.from_file(EXAMPLE_3LEVEL_FILE)


def header(token: str) -> str:
    return f"Bearer {token}"


def test_a_minted_token_verifies_to_its_claims():
    principal = verify(DEV_SECRET, header(mint(DEV_SECRET, sub="a", roles=["auditor"], units=["883"])))
    assert principal.sub == "a" and principal.roles == {"auditor"} and principal.units == ("883",)


@pytest.mark.parametrize("authorization", [None, "", "Basic abc", "Bearer ", "Bearer not-a-jwt"])
def test_missing_or_malformed_credentials_are_401(authorization):
    with pytest.raises(Unauthorized):
        verify(DEV_SECRET, authorization)


def test_wrong_key_and_expired_tokens_are_401():
    with pytest.raises(Unauthorized, match="invalid"):
        verify(DEV_SECRET, header(mint("another-secret-of-enough-length", sub="a", roles=[], units=[])))
    expired = mint(DEV_SECRET, sub="a", roles=[], units=[], ttl=timedelta(seconds=-5))
    with pytest.raises(Unauthorized, match="expired"):
        verify(DEV_SECRET, header(expired))


def test_claims_of_the_wrong_shape_are_refused():
    token = jwt.encode({"sub": "a", "iss": "motcua", "exp": 4102444800, "roles": "leader"}, DEV_SECRET)
    with pytest.raises(Unauthorized, match="lists"):
        verify(DEV_SECRET, header(token))


def test_a_unit_covers_its_descendants_and_nothing_else():
    district = verify(DEV_SECRET, header(mint(DEV_SECRET, sub="d", roles=["auditor"], units=["883"])))
    assert district.covers(UNITS, "883") and district.covers(UNITS, "30280")
    assert not district.covers(UNITS, "30316") and not district.covers(UNITS, "89")


def test_require_role_is_403():
    principal = verify(DEV_SECRET, header(mint(DEV_SECRET, sub="a", roles=["auditor"], units=[])))
    with pytest.raises(Forbidden, match="desk_officer") as refused:
        principal.require_role("desk_officer")
    assert problem_for(refused.value).status == 403


def test_token_command_mints_a_usable_token(capsys):
    assert main(["--role", "desk_officer", "--unit", "26740"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify(DEV_SECRET, header(token)).units == ("26740",)


def test_token_command_refuses_an_unknown_unit():
    with pytest.raises(SystemExit):
        main(["--role", "desk_officer", "--unit", "99999"])


GOOD = {
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/",
    "DATABASE_URL": "sqlite:///x.db",
    "WEB_SERVER_ADDRESS": "0.0.0.0:8000",
    "JWT_SECRET": "s" * 32,
    "OUTBOX_POLL_SECONDS": "0.5",
    "OUTBOX_BATCH_SIZE": 100,
    "EVENT_MAX_ATTEMPTS": 5,
}


def test_a_good_configuration_parses():
    parsed = validate(GOOD)
    assert parsed["OUTBOX_POLL_SECONDS"] == 0.5 and parsed["UNITS_FILE"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AMQP_URI", None),
        ("DATABASE_URL", "not a url"),
        ("WEB_SERVER_ADDRESS", "8000"),
        ("OUTBOX_BATCH_SIZE", "0"),
        ("OUTBOX_POLL_SECONDS", "-1"),
        ("UNITS_FILE", "/no/such/file.yaml"),
    ],
)
def test_a_wrong_or_missing_setting_is_named(key, value):
    with pytest.raises(ConfigurationError, match=key):
        validate({**GOOD, key: value})


def test_config_file_substitutes_environment(tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    path.write_text("A: ${MOTCUA_T_A:fallback}\nB: ${MOTCUA_T_B:2}\n")
    monkeypatch.setenv("MOTCUA_T_A", "from-env")
    assert load_config(path) == {"A": "from-env", "B": 2}


def test_config_file_required_variable_is_named(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("A: ${MOTCUA_T_REQUIRED}\n")
    with pytest.raises(ConfigurationError, match="MOTCUA_T_REQUIRED"):
        load_config(path)


def test_shipped_service_configs_validate():
    from pathlib import Path

    for config in sorted(Path("services").glob("*/config.yml")):
        validate(load_config(config))


def test_calendar_block_of_each_config_builds_the_calendar(monkeypatch):
    from datetime import date
    from pathlib import Path

    from shared.workcalendar import WorkingCalendar

    monkeypatch.setenv("CALENDAR_EXTRA_DAYS_OFF", '["2026-12-31"]')
    for config in sorted(Path("services").glob("*/config.yml")):
        settings = load_config(config).get("CALENDAR")
        if settings is None:
            continue
        calendar = WorkingCalendar.from_settings(settings)
        assert not calendar.is_working_day(date(2026, 12, 31)), config
        assert calendar.is_working_day(date(2026, 12, 30)), config


def test_environment_values_are_substituted_after_yaml_parsing(tmp_path, monkeypatch):
    """A value from the environment is never read as YAML: ` #` is not a comment, `: ` not a mapping."""
    path = tmp_path / "config.yml"
    path.write_text(
        "SECRET: ${MOTCUA_T_SECRET}\n"
        "URI: amqp://${MOTCUA_T_SECRET}@host/\n"
        'QUOTED: "${MOTCUA_T_TIME:15:00}"\n'
        "NUMBER: ${MOTCUA_T_NUMBER:0.5}\n"
        "LIST: ${MOTCUA_T_LIST:[]}\n"
        "EMPTY: ${MOTCUA_T_EMPTY:}\n"
    )
    secret = "Xy7 #not-a-comment: [still] the secret"
    monkeypatch.setenv("MOTCUA_T_SECRET", secret)
    monkeypatch.setenv("MOTCUA_T_LIST", '["2026-12-31"]')
    config = load_config(path)
    assert config["SECRET"] == secret
    assert config["URI"] == f"amqp://{secret}@host/"
    assert config["QUOTED"] == "15:00"  # quoted: text, never sexagesimal 900
    assert config["NUMBER"] == 0.5 and config["LIST"] == ["2026-12-31"] and config["EMPTY"] is None


def test_a_services_own_broker_user_replaces_the_uris_credentials(tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    path.write_text(
        "AMQP_URI: ${MOTCUA_T_URI:amqp://guest:guest@rabbitmq:5672/motcua}\n"
        "AMQP_USERNAME: ${MOTCUA_T_USER:}\nAMQP_PASSWORD: ${MOTCUA_T_PASSWORD:}\n"
    )
    assert load_config(path)["AMQP_URI"] == "amqp://guest:guest@rabbitmq:5672/motcua"
    monkeypatch.setenv("MOTCUA_T_USER", "motcua-dossier")
    monkeypatch.setenv("MOTCUA_T_PASSWORD", "p@ss/w #rd")
    assert load_config(path)["AMQP_URI"] == "amqp://motcua-dossier:p%40ss%2Fw%20%23rd@rabbitmq:5672/motcua"


@pytest.mark.parametrize("service", ["dossier", "metrics", "postal", "esign"])
def test_retention_is_set_from_the_environment_and_defaults_when_unset(service, monkeypatch):
    from shared.retention import DEFAULT_DAYS, retention_days

    path = Path(__file__).resolve().parents[2] / "services" / service / "config.yml"
    for setting in DEFAULT_DAYS:
        monkeypatch.delenv(setting, raising=False)
    assert retention_days(load_config(path)) == DEFAULT_DAYS
    monkeypatch.setenv("RETENTION_INBOX_DAYS", "12")
    assert retention_days(load_config(path))["RETENTION_INBOX_DAYS"] == 12
