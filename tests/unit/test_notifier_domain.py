"""The notifier's rules (services/notifier/domain/messages.py) and its templates (templates.yaml), derived
by hand: Vietnam is UTC+7 all year, so 22:00 there is 15:00 UTC and 07:00 there is 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain.messages import (
    LONGEST,
    SMS_ASCII_LIMIT,
    SMS_UNICODE_LIMIT,
    Answer,
    DailyCap,
    Kind,
    QuietHours,
    RetryPolicy,
    amount,
    fallback,
    kind_of,
    local_day,
    render,
    send_at,
    unaccented,
    values_of,
)
from services.notifier.templates import TemplateError, load_templates, parse
from shared.vocabulary import NOTIFICATION_CHANNELS

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NIGHT = QuietHours(time(22, 0), time(7, 0))
TEMPLATES = load_templates()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- quiet hours, across midnight, Vietnam time ---------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 12, 7, 14, 59), None),  # 21:59 in Vietnam: still allowed
        (utc(2026, 12, 7, 15, 0), utc(2026, 12, 8, 0, 0)),  # 22:00: the morning, 07:00 = 00:00 UTC
        (utc(2026, 12, 7, 16, 30), utc(2026, 12, 8, 0, 0)),  # 23:30, before midnight
        (utc(2026, 12, 7, 17, 30), utc(2026, 12, 8, 0, 0)),  # 00:30 on the 8th, after midnight
        (utc(2026, 12, 7, 23, 59), utc(2026, 12, 8, 0, 0)),  # 06:59 on the 8th
        (utc(2026, 12, 8, 0, 0), None),  # 07:00: the quiet hours are over
    ],
)
def test_no_sms_at_night_vietnam_time_deferred_to_seven_in_the_morning(now, expected):
    assert send_at(now, "sms", False, NIGHT, VN) == expected
    assert send_at(now, "zalo", False, NIGHT, VN) == expected  # a Zalo message rings the phone too


def test_an_urgent_message_and_an_email_wait_for_nobody():
    night = utc(2026, 12, 7, 17, 30)  # 00:30 in Vietnam
    assert send_at(night, "sms", True, NIGHT, VN) is None
    assert send_at(night, "email", False, NIGHT, VN) is None


def test_quiet_hours_within_one_day_and_none():
    lunch = QuietHours(time(11, 30), time(13, 0))
    assert send_at(utc(2026, 12, 7, 5, 0), "sms", False, lunch, VN) == utc(
        2026, 12, 7, 6, 0
    )  # 12:00 -> 13:00
    assert send_at(utc(2026, 12, 7, 6, 0), "sms", False, lunch, VN) is None
    off = QuietHours(time(0, 0), time(0, 0))
    assert send_at(utc(2026, 12, 7, 17, 30), "sms", False, off, VN) is None


def test_the_days_count_starts_at_midnight_in_vietnam():
    # 16:59 UTC on the 7th is 23:59 on the 7th; 17:00 UTC is 00:00 on the 8th.
    assert local_day(utc(2026, 12, 7, 16, 59), VN) == (
        utc(2026, 12, 6, 17, 0).astimezone(VN),
        utc(2026, 12, 7, 17, 0).astimezone(VN),
    )
    assert local_day(utc(2026, 12, 7, 17, 0), VN)[0] == utc(2026, 12, 7, 17, 0)


# --- the daily cap, the fallback, the retries --------------------------------------------------------


def test_the_daily_cap_allows_exactly_its_limit():
    cap = DailyCap(3)
    assert [cap.allows(sent) for sent in range(5)] == [True, True, True, False, False]
    assert DailyCap(0).allows(10_000)  # 0: no cap


def test_zalo_to_a_non_follower_falls_back_to_sms_unless_sms_is_chosen_too():
    assert fallback("zalo", Answer.NOT_FOLLOWER, ["zalo"]) == "sms"
    assert fallback("zalo", Answer.NOT_FOLLOWER, ["zalo", "sms"]) is None  # its own SMS tells them
    assert fallback("zalo", Answer.UNAVAILABLE, ["zalo"]) is None  # tried again, as Zalo
    assert fallback("sms", Answer.REJECTED, ["sms"]) is None


def test_retries_wait_each_delay_then_give_up():
    policy = RetryPolicy((10.0, 60.0), 4)
    now = utc(2026, 12, 7, 3, 0)
    assert policy.after_failure(1, now) == utc(2026, 12, 7, 3, 0, 10)
    assert policy.after_failure(2, now) == utc(2026, 12, 7, 3, 1)
    assert policy.after_failure(3, now) == utc(2026, 12, 7, 3, 1)  # the last delay repeats
    assert policy.after_failure(4, now) is None


# --- which events tell something ------------------------------------------------------------------


def test_which_events_call_for_a_message():
    assert kind_of("received", {}) is Kind.RECEIVED
    assert kind_of("supplement_requested", {}) is Kind.SUPPLEMENT_REQUESTED
    # Events carry the return method's code (shared/vocabulary.py): 0 counter, 1 postal.
    assert kind_of("resolved", {"return_method": 0}) is Kind.READY_FOR_COLLECTION
    assert kind_of("resolved", {"return_method": 1}) is None  # by post: told of the delivery instead
    assert kind_of("returned", {"method": "postal"}) is Kind.DELIVERED_BY_POST
    assert kind_of("returned", {"method": "counter"}) is None  # they collected it: nothing to tell
    for quiet in ("processing_started", "appraised", "transferred", "paid", "registered", "due_soon"):
        assert kind_of(quiet, {}) is None


# --- the texts ------------------------------------------------------------------------------------


def test_vietnamese_loses_only_its_marks():
    assert (
        unaccented("Hồ sơ đã được tiếp nhận. Hẹn trả kết quả") == "Ho so da duoc tiep nhan. Hen tra ket qua"
    )
    assert unaccented("ĐỒNG Ý: ông/bà") == "DONG Y: ong/ba"
    assert unaccented("Ưu tiên, ữ, ỵ").isascii()


def test_a_received_sms_rendered_by_hand():
    data = {"code": "000.00.21.H01-261207-0001", "due_at": "2026-12-10T09:30:00Z"}
    values = values_of(data, procedure="Cấp bản sao", items=[], zone=VN)
    text = render(TEMPLATES[Kind.RECEIVED], "sms", values)
    # 09:30 UTC is 16:30 in Vietnam.
    assert text == "Ho so 000.00.21.H01-261207-0001 da duoc tiep nhan. Hen tra ket qua: 16:30 10/12/2026."
    assert len(text) == 85
    accented = render(TEMPLATES[Kind.RECEIVED], "sms", values, unicode_sms=True)
    assert accented == "Hồ sơ 000.00.21.H01-261207-0001 đã được tiếp nhận. Hẹn trả kết quả: 16:30 10/12/2026."


def test_a_payment_and_a_supplement_say_how_much_and_which_items():
    assert amount(525_000) == "525.000 đồng" and amount(1_250_000_000) == "1.250.000.000 đồng"
    data = {"code": "C-1", "amount_vnd": 525_000, "items_count": 2}
    values = values_of(data, procedure="P", items=["Bản sao sổ đỏ", "Tờ khai"], zone=VN)
    assert render(TEMPLATES[Kind.PAYMENT_REQUESTED], "sms", values) == (
        "Ho so C-1: vui long nop 525.000 dong phi, le phi de tiep tuc giai quyet."
    )
    assert render(TEMPLATES[Kind.SUPPLEMENT_REQUESTED], "zalo", values) == (
        "Hồ sơ C-1 cần bổ sung 2 giấy tờ: Bản sao sổ đỏ; Tờ khai."
    )


@pytest.mark.parametrize("kind", list(Kind))
def test_every_sms_fits_one_segment_with_the_longest_values(kind):
    """160 GSM-7 characters unaccented (ASCII is in GSM-7's basic set), or 201 in Unicode (three
    concatenated UCS-2 segments of 67): with a 25-character code, an amount of 20, a date of 16."""
    template = TEMPLATES[kind]
    ascii_text = render(template, "sms", LONGEST)
    assert ascii_text.isascii() and len(ascii_text) <= SMS_ASCII_LIMIT, (len(ascii_text), ascii_text)
    assert len(render(template, "sms", LONGEST, unicode_sms=True)) <= SMS_UNICODE_LIMIT
    for channel in NOTIFICATION_CHANNELS:
        assert "{" not in render(template, channel, {**LONGEST, "items": "x", "procedure": "y"})


def test_a_template_file_that_breaks_the_rules_is_refused_saying_where():
    good = {k.value: {**dict(TEMPLATES[k].texts), "subject": TEMPLATES[k].subject} for k in Kind}
    assert set(parse(good)) == set(Kind)
    with pytest.raises(TemplateError, match="received.sms: unknown placeholders .'procedure'."):
        parse({**good, "received": {**good["received"], "sms": "{code} {procedure}"}})
    with pytest.raises(TemplateError, match="received.sms: 1[0-9]{2} characters unaccented, over 160"):
        parse({**good, "received": {**good["received"], "sms": "{code} " + "x" * 140}})
    with pytest.raises(TemplateError, match="no template for stopped"):
        parse({k: v for k, v in good.items() if k != "stopped"})
