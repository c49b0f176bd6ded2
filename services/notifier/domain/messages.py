"""What the applicant is told, when, and how (docs/notifications.md). Plain Python: time comes in as an
argument, the templates as data (services/notifier/templates.yaml, read by services/notifier/templates.py).

* **Which events** tell the applicant something (:func:`kind_of`): what they must act on (a supplement, a
  payment) or can collect, and what changes their appointment or ends the dossier.
* **The text** (:func:`render`): a template per kind × channel, Vietnamese; an SMS goes unaccented
  (:func:`unaccented`, ASCII, so one GSM-7 segment holds 160 characters) unless the brand name is
  registered for Unicode (then three UCS-2 segments, 201 characters).
* **When** (:class:`QuietHours`): no SMS or Zalo message at night unless the kind is urgent; deferred to
  the morning, Vietnam time. E-mail waits for nobody.
* **How many** (:class:`DailyCap`): at most so many messages to one recipient a Vietnam day.
* **Where** (:func:`fallback`): a Zalo message to someone who does not follow the Official Account goes
  by SMS instead.
* **Again** (:class:`RetryPolicy`): a gateway that did not answer is tried again after a delay; after the
  last try the message has failed, and says so in the log.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from string import Formatter
from typing import Any

from shared.vocabulary import NotificationChannel, ReturnMethod

SMS_ASCII_LIMIT = 160  # one GSM-7 segment: unaccented Vietnamese is ASCII, a subset of GSM-7
SMS_UNICODE_LIMIT = 201  # three concatenated UCS-2 segments of 67 characters each
SMS, ZALO, EMAIL = (
    NotificationChannel.SMS.value,
    NotificationChannel.ZALO.value,
    NotificationChannel.EMAIL.value,
)
# Channels that ring a phone: these keep the quiet hours.
RINGING = frozenset({SMS, ZALO})


class Kind(StrEnum):
    """What a message tells (one template per kind × channel)."""

    RECEIVED = "received"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    PAYMENT_REQUESTED = "payment_requested"
    APOLOGIZED = "apologized"
    READY_FOR_COLLECTION = "ready_for_collection"
    DELIVERED_BY_POST = "delivered_by_post"
    REFUSED = "refused"
    STOPPED = "stopped"


KINDS = tuple(kind.value for kind in Kind)
# What each template may use; SMS templates only the short, bounded ones (their length is checked).
PLACEHOLDERS = frozenset(
    {"code", "appointment", "new_appointment", "amount", "items_count", "items", "procedure"}
)
SMS_PLACEHOLDERS = frozenset({"code", "appointment", "new_appointment", "amount", "items_count"})
# The longest value of each SMS placeholder, for the length check: a dossier code of the national format
# (a 13-character agency identifier, the date, a 4-digit number), a time and date, an amount under a
# thousand billion đồng, a two-digit count.
LONGEST = {
    "code": "000.00.21.H01-261231-9999",
    "appointment": "17:00 31/12/2026",
    "new_appointment": "17:00 31/12/2026",
    "amount": "999.999.999.999 đồng",
    "items_count": "99",
}


class Outcome(StrEnum):
    """Where a message ended (or stands): the log's and the metrics' word for it."""

    PENDING = "pending"
    DEFERRED = "deferred"  # quiet hours: sent in the morning
    SENT = "sent"
    WITHDRAWN = "withdrawn"  # the consent to this channel was withdrawn before it went
    CAPPED = "capped"  # the recipient's daily cap was reached
    NOT_FOLLOWER = "not_follower"  # Zalo: not a follower, and the SMS of the same notice tells them
    REJECTED = "rejected"  # the gateway refused the recipient for good (a wrong or barred number)
    FAILED = "failed"  # the gateway did not answer, every try


FINAL = frozenset(
    {Outcome.SENT, Outcome.WITHDRAWN, Outcome.CAPPED, Outcome.NOT_FOLLOWER, Outcome.REJECTED, Outcome.FAILED}
)


class Answer(StrEnum):
    """What a gateway said to one call."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NOT_FOLLOWER = "not_follower"
    UNAVAILABLE = "unavailable"  # 5xx, a timeout, no connection: try again later


def kind_of(event_name: str, data: Mapping[str, Any]) -> Kind | None:
    """The message a dossier event calls for, or None. The result is ready for collection only when it
    is returned at the counter; by post, the applicant hears of the delivery instead."""
    if event_name == "resolved":
        counter = data.get("return_method") == int(ReturnMethod.COUNTER)
        return Kind.READY_FOR_COLLECTION if counter else None
    if event_name == "returned":
        return Kind.DELIVERED_BY_POST if data.get("method") == ReturnMethod.POSTAL.label else None
    direct = {Kind.RECEIVED, Kind.SUPPLEMENT_REQUESTED, Kind.PAYMENT_REQUESTED, Kind.APOLOGIZED}
    direct |= {Kind.REFUSED, Kind.STOPPED}
    return Kind(event_name) if event_name in {k.value for k in direct} else None


@dataclass(frozen=True)
class Template:
    """One kind's texts: per channel, and the e-mail's subject; whether it may ring at night."""

    kind: Kind
    texts: Mapping[str, str]  # channel -> text with {placeholders}
    subject: str
    urgent: bool = False


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


def unaccented(text: str) -> str:
    """Vietnamese without its marks: "Hồ sơ đã được tiếp nhận" -> "Ho so da duoc tiep nhan"."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def sms_limit(unicode: bool) -> int:
    return SMS_UNICODE_LIMIT if unicode else SMS_ASCII_LIMIT


def render(template: Template, channel: str, values: Mapping[str, str], *, unicode_sms: bool = False) -> str:
    """The text of ``template`` for ``channel``; an SMS unaccented unless ``unicode_sms``."""
    text = template.texts[channel].format_map(values)
    return unaccented(text) if channel == SMS and not unicode_sms else text


def local_moment(value: str | None, zone: tzinfo) -> str:
    """An RFC 3339 instant as the applicant reads it: "HH:MM dd/mm/yyyy", Vietnam time."""
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone).strftime("%H:%M %d/%m/%Y")


def amount(vnd: int | None) -> str:
    """525000 -> "525.000 đồng" (Vietnamese groups thousands with dots)."""
    return "" if vnd is None else f"{vnd:,}".replace(",", ".") + " đồng"


def values_of(
    data: Mapping[str, Any], *, procedure: str, items: Sequence[str], zone: tzinfo
) -> dict[str, str]:
    """What a template may say, from the event's data and the dossier service's read (procedure, items)."""
    count = data.get("items_count")
    return {
        "code": str(data.get("code", "")),
        "appointment": local_moment(data.get("due_at"), zone),
        "new_appointment": local_moment(data.get("new_due_at"), zone),
        "amount": amount(data.get("amount_vnd")),
        "items_count": str(count if count is not None else len(items)),
        "items": "; ".join(items),
        "procedure": procedure,
    }


@dataclass(frozen=True)
class QuietHours:
    """No ringing between ``start`` and ``end``, local time (the end is the next morning when the hours
    cross midnight, 22:00-07:00 by default); ``start == end`` means none."""

    start: time
    end: time

    def holds(self, local: datetime) -> bool:
        now = local.timetz().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def end_after(self, local: datetime) -> datetime:
        """The first end of quiet hours after ``local`` (same zone)."""
        today = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return today if today > local else today + timedelta(days=1)


def send_at(now: datetime, channel: str, urgent: bool, quiet: QuietHours, zone: tzinfo) -> datetime | None:
    """When a message may go: None for now, else the morning (UTC instant of the quiet hours' end)."""
    if urgent or channel not in RINGING:
        return None
    local = now.astimezone(zone)
    return quiet.end_after(local).astimezone(now.tzinfo) if quiet.holds(local) else None


def local_day(now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The Vietnam day ``now`` falls in, as [start, end) instants."""
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class DailyCap:
    """At most ``limit`` messages to one recipient in a Vietnam day; 0 means no cap."""

    limit: int

    def allows(self, sent_today: int) -> bool:
        return self.limit == 0 or sent_today < self.limit


def fallback(channel: str, answer: Answer, consented: Sequence[str]) -> str | None:
    """The channel to try instead: a Zalo message to a non-follower goes by SMS — unless the applicant
    chose SMS too, whose own message tells them already."""
    if channel == ZALO and answer is Answer.NOT_FOLLOWER and SMS not in consented:
        return SMS
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """``delays[n-1]`` seconds after the n-th failed try (the last repeats), ``max_attempts`` in all."""

    delays: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0)
    max_attempts: int = 6

    def after_failure(self, attempts: int, now: datetime) -> datetime | None:
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delays[min(attempts, len(self.delays)) - 1])
