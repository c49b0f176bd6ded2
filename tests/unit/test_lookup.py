"""The lookup's rules in plain Python (services/dossier/lookup.py): the secret a person reads and types,
its HMAC, the proofs, and the citizen's view, which names no person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dossier import lookup, service_layer
from services.dossier.dependencies import _shipped_catalogue, lifecycle_settings, lookup_guard
from services.dossier.lookup import Guesses, LookupSettings
from shared.auth import Principal
from shared.config import ConfigurationError
from shared.domain import NotFound
from tests.support.fakes import CALENDAR, MONDAY, UNITS, FakeDossiers, FakeLookups, FakeUnitOfWork

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


# --- the use case on the in-memory unit of work ---------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def office() -> service_layer.Office:
    return service_layer.Office(
        units=UNITS,
        calendar=CALENDAR,
        catalogue=_shipped_catalogue(),
        settings=lifecycle_settings({}),
        clock=Clock(),
        repository=FakeDossiers,
        lookup=LookupSettings(key=b"k" * 32, max_failures=3, lock=timedelta(minutes=15)),
        lookups=FakeLookups,
    )


APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "079203001234", "phone": "0901112233"}


def filed(uow, office) -> tuple[str, str]:
    """A dossier received at the commune's desk, and its receipt's secret."""
    body = {
        "procedure_code": "1.012767",  # interlinked: commune desk, then province and tax
        "receiving_unit": "26740",
        "channel": "counter",
        "return_method": "counter",
        "applicant": APPLICANT,
    }
    desk = Principal(sub="desk@26740", roles=frozenset({"desk_officer"}), units=("26740",))
    with uow.transaction() as tx:
        code = service_layer.receive(service_layer.Receive(desk, body, "req-1"), tx, office).code
        return code, service_layer.issue_lookup_secret(code, tx, office)


def look(uow, office, code: str, **proof) -> dict:
    return service_layer.look_up(service_layer.LookUp(code, **proof), uow, office)


def test_the_secret_or_the_identity_number_opens_the_view_which_names_no_person(uow, office):
    code, secret = filed(uow, office)
    for proof in (
        {"secret": secret},
        {"secret": lookup.printed(secret).lower()},
        {"id_number": "079203001234"},
    ):
        view = look(uow, office, code, **proof)
        assert view["code"] == code and view["status_name"] == "Được tiếp nhận"
        assert [value for value in APPLICANT.values() if value in str(view)] == []
    # Only the HMAC is kept.
    assert secret not in str(uow.state.tables["dossier_lookups"])


def test_a_wrong_proof_is_counted_even_though_it_is_refused(uow, office):
    code, _ = filed(uow, office)
    with pytest.raises(NotFound) as refused:
        look(uow, office, code, secret="ABCDEFGH")
    assert refused.value.detail == lookup.REFUSAL
    assert uow.state.tables["dossier_lookups"][code].failures == 1


def test_three_wrong_proofs_lock_a_code_and_an_unknown_code_alike_until_the_lock_ends(uow, office):
    code, secret = filed(uow, office)
    unknown = code[:-4] + "9999"
    for target in (code, unknown):
        for _ in range(3):
            with pytest.raises(NotFound):
                look(uow, office, target, secret="ABCDEFGH")
        assert uow.state.tables["dossier_lookups"][target].locked(office.clock())
    with pytest.raises(NotFound) as locked:
        look(uow, office, code, secret=secret)
    assert locked.value.detail == lookup.REFUSAL
    office.clock.now += timedelta(minutes=15)
    assert look(uow, office, code, secret=secret)["code"] == code


def test_a_dossier_filed_before_secrets_opens_by_identity_number_only(uow, office):
    code, _ = filed(uow, office)
    del uow.state.tables["dossier_lookups"][code]  # as after migration 0006: no row
    with pytest.raises(NotFound):
        look(uow, office, code, secret="ABCDEFGH")
    assert look(uow, office, code, id_number="079203001234")["code"] == code


def test_the_applicant_withdraws_the_consent_to_messages_with_the_same_proof_only(uow, office):
    """docs/notifications.md: the receipt's secret (or the identity number) is what proves the right;
    a wrong proof is refused as a lookup is, and changes nothing."""
    code, secret = filed(uow, office)
    uow.state.dossiers[code].applicant["notification_channels"] = ["sms"]  # as filed with consent
    with pytest.raises(NotFound) as refused:
        look(uow, office, code, secret="ABCDEFGH", withdraw_notifications=True)
    assert refused.value.detail == lookup.REFUSAL
    assert uow.state.dossiers[code].applicant["notification_channels"] == ["sms"]
    view = look(uow, office, code, secret=secret, withdraw_notifications=True)
    assert view["code"] == code and "0901112233" not in str(view)
    assert uow.state.dossiers[code].applicant["notification_channels"] == []
    lines = [e for e in uow.state.audit[code] if e.action == "withdraw_notification_consent"]
    assert [(e.actor, e.roles) for e in lines] == [("applicant", ["applicant"])]
