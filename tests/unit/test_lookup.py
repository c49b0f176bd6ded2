"""The lookup's rules in plain Python (services/dossier/lookup.py): the secret a person reads and types,
its HMAC, the proofs, and the citizen's view, which names no person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dossier import lookup
from services.dossier.dependencies import lookup_guard
from services.dossier.lookup import Guesses, LookupSettings
from shared.config import ConfigurationError

SETTINGS = LookupSettings(key=b"k" * 32)
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_secret_uses_no_character_a_person_could_misread():
    for ambiguous in "0O1IL":
        assert ambiguous not in lookup.ALPHABET
    secrets = {lookup.new_secret() for _ in range(200)}
    assert len(secrets) == 200
    assert all(len(s) == 8 and set(s) <= set(lookup.ALPHABET) for s in secrets)


def test_a_secret_is_printed_in_two_groups_and_read_back_however_it_is_typed():
    assert lookup.printed("ABCDEFGH") == "ABCD-EFGH"
    for typed in ("ABCD-EFGH", "abcd efgh", " abcdefgh ", "Abcd-Efgh"):
        assert lookup.normalised_secret(typed) == "ABCDEFGH"


def test_the_secret_and_the_identity_number_have_different_digests():
    assert lookup.digest(b"k", "secret", "079301007788") != lookup.digest(b"k", "id_number", "079301007788")
    assert lookup.digest(b"k", "secret", "X") != lookup.digest(b"other", "secret", "X")
    assert len(lookup.digest(b"k", "secret", "X")) == 64


def test_only_the_right_secret_proves_and_nothing_proves_without_a_stored_secret():
    stored = Guesses(secret_hmac=lookup.digest(SETTINGS.key, "secret", "ABCDEFGH"))
    assert lookup.proven(SETTINGS, stored, None, secret="abcd-efgh", id_number=None)
    assert not lookup.proven(SETTINGS, stored, None, secret="ABCDEFGJ", id_number=None)
    assert not lookup.proven(SETTINGS, None, None, secret="ABCDEFGH", id_number=None)
    assert not lookup.proven(SETTINGS, Guesses(), None, secret="ABCDEFGH", id_number=None)
    assert not lookup.proven(SETTINGS, stored, None, secret=None, id_number=None)


def test_a_lock_holds_until_its_time():
    assert Guesses(locked_until=NOW + timedelta(minutes=1)).locked(NOW)
    assert not Guesses(locked_until=NOW).locked(NOW)
    assert not Guesses().locked(NOW)


def test_the_link_carries_code_and_secret_in_the_fragment_only():
    url = lookup.link("https://dvc.example.gov.vn/", "000.01.31.H01-261207-0001", "ABCD-EFGH")
    assert url == "https://dvc.example.gov.vn/tra-cuu#ma=000.01.31.H01-261207-0001&s=ABCD-EFGH"
    assert "?" not in url
    assert lookup.link("https://x.vn", "C-1") == "https://x.vn/tra-cuu#ma=C-1"


def test_outside_development_the_lookup_key_is_required_long_and_not_the_public_one():
    for key in ("", "short", lookup.DEVELOPMENT_KEY.decode()):
        with pytest.raises(ConfigurationError, match="LOOKUP_KEY"):
            lookup_guard({"MOTCUA_ENV": "production", "LOOKUP_KEY": key})
    assert lookup_guard({"MOTCUA_ENV": "production", "LOOKUP_KEY": "x" * 32}).settings.key == b"x" * 32
    assert lookup_guard({"MOTCUA_ENV": "development"}).settings.key == lookup.DEVELOPMENT_KEY
    with pytest.raises(ConfigurationError, match="LOOKUP_CAPTCHA"):
        lookup_guard({"MOTCUA_ENV": "development", "LOOKUP_CAPTCHA": "recaptcha"})
