"""The contract vocabulary against docs/domain.md, written out by hand, and its single use across services."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.dossier.schemas import StatusEventSchema
from shared.config import Setting, positive, validate
from shared.vocabulary import (
    CHANNELS,
    CLOCK_RUNNING,
    CLOCK_STOPPED,
    DURATION_UNITS,
    FINAL,
    IN_PROCESS,
    RATINGS,
    RETURN_METHODS,
    TIMELINESS,
    Channel,
    ReturnMethod,
    Status,
    StatusFacts,
)

# docs/domain.md §5 Dossier statuses.
PORTAL_STATUSES = {
    1: "registered",
    2: "received",
    3: "refused",
    4: "processing",
    5: "supplement_requested",
    6: "awaiting_payment",
    7: "withdrawn",
    8: "stopped",
    9: "resolved",
    10: "returned",
}


def test_status_codes_and_names_are_the_portals():
    assert {int(status): status.label for status in Status} == PORTAL_STATUSES


def test_status_groups_follow_the_rules():
    # Final: refused, withdrawn, returned. The clock runs in 2 and 4, stands still in 5, 6 and 8.
    assert {int(s) for s in FINAL} == {3, 7, 10}
    assert {int(s) for s in CLOCK_RUNNING} == {2, 4}
    assert {int(s) for s in CLOCK_STOPPED} == {5, 6, 8}
    # In process: received and neither decided, returned, withdrawn nor refused.
    assert {int(s) for s in IN_PROCESS} == {2, 4, 5, 6, 8}


def test_channels_return_methods_and_the_other_words():
    # docs/domain.md §6: channel (kênh) 1 counter, 2 online, 3 postal; return method 0 counter, 1 postal.
    assert {c.label: int(c) for c in Channel} == {"counter": 1, "online": 2, "postal": 3}
    assert {m.label: int(m) for m in ReturnMethod} == {"counter": 0, "postal": 1}
    assert Channel.of("online") is Channel.ONLINE and ReturnMethod.of("postal") is ReturnMethod.POSTAL
    assert CHANNELS == ("counter", "online", "postal") and RETURN_METHODS == ("counter", "postal")
    assert TIMELINESS == ("early", "on_time", "late")
    assert RATINGS == ("satisfied", "normal", "not_satisfied")
    assert DURATION_UNITS == ("working_days", "working_hours", "same_day")
    # Plain strings, so documents (YAML, JSON Schema) render them as the words themselves.
    assert all(type(word) is str for word in (*CHANNELS, *TIMELINESS, *RATINGS, *DURATION_UNITS))


def test_status_facts_are_exactly_what_the_event_schema_publishes():
    at = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    facts = StatusFacts(
        code="000.00.00.H29-260302-0001",
        status=Status.SUPPLEMENT_REQUESTED,
        procedure_code="1.001193",
        procedure_version=1,
        procedure_field="civil_status",
        receiving_unit="26740",
        handling_unit="26740",
        channel=Channel.POSTAL,
        return_method=ReturnMethod.POSTAL,
        online_level=None,
        received_at=at,
        due_at=at,
        original_due_at=at,
        occurred_at=at,
    ).as_data()
    assert list(facts) == list(StatusEventSchema().fields)
    assert (facts["status"], facts["status_name"], facts["channel"], facts["return_method"]) == (
        5,
        "supplement_requested",
        3,
        1,
    )
    assert all(type(facts[key]) is int for key in ("status", "channel", "return_method"))
    assert StatusEventSchema().validate(StatusEventSchema().dump(facts)) == {}


def test_a_setting_default_lives_on_the_setting():
    setting = Setting("MOTCUA_T_HOURS", positive, default=8.0, description="hours")
    assert validate({}, (setting,)) == {"MOTCUA_T_HOURS": 8.0}
    assert validate({"MOTCUA_T_HOURS": ""}, (setting,)) == {"MOTCUA_T_HOURS": 8.0}
    assert validate({"MOTCUA_T_HOURS": "2.5"}, (setting,)) == {"MOTCUA_T_HOURS": 2.5}


def test_service_tunables_have_no_second_default_in_config_files():
    from services.dossier.dependencies import SETTINGS as DOSSIER
    from services.metrics.dependencies import SETTINGS as METRICS
    from services.notifier.dependencies import SETTINGS as NOTIFIER
    from services.outbound.dependencies import SETTINGS as OUTBOUND
    from services.outbound.dependencies import WEBHOOK_SETTINGS as WEBHOOKS

    for service, settings in (
        ("dossier", DOSSIER),
        ("metrics", METRICS),
        ("outbound", OUTBOUND + WEBHOOKS),
        ("notifier", NOTIFIER),
    ):
        text = Path(f"services/{service}/config.yml").read_text(encoding="utf-8")
        for setting in settings:
            assert setting.default is not None, setting.key
            assert f"{setting.key}: ${{{setting.key}:}}" in text, f"{service}: {setting.key} defaulted twice"


def test_no_service_restates_the_vocabulary():
    # The words are written in shared/vocabulary.py; a second literal table is a second source of truth.
    for path in Path("services").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for restated in (
            '"supplement_requested": ',
            '{"counter": 1',
            '("early", "on_time", "late")',
            "== 2\n",
        ):
            assert restated not in text, f"{path} restates the vocabulary: {restated!r}"
