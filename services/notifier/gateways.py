"""The channels behind one interface (:class:`Gateway`): an SMS brand-name gateway, the Zalo Official
Account API, an e-mail API. Each call goes through one small client (:class:`GatewayClient`, on the
shared neighbour client: timeouts, a circuit that opens on a failing gateway, the latency measured).
Every call carries the message's id (``{event id}:{channel}``) as the gateway's request id: a gateway
that de-duplicates by it sends a retried message once. The simulators (simulators/messaging.py) speak
these three APIs.

Answers: ``accepted``; ``rejected`` (the number or address refused for good); ``not_follower`` (Zalo: the
citizen does not follow the Official Account); ``unavailable`` (5xx, a timeout, no connection — tried
again later; so is a call the open circuit did not make)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from services.notifier.domain.messages import EMAIL, SMS, ZALO, Answer
from shared.neighbours import Neighbour, NeighbourUnavailable, Policy


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    to: str  # a phone number (sms, zalo) or an e-mail address
    text: str
    subject: str = ""


@dataclass(frozen=True)
class Delivery:
    answer: Answer
    reference: str | None = None  # the gateway's id of the message
    error: str | None = None
    seconds: float = 0.0


class Gateway(Protocol):
    channel: str

    def send(self, message: Outgoing) -> Delivery: ...


class GatewayClient:
    """One gateway's HTTP: POST JSON through the shared neighbour client (shared/neighbours.py: its
    timeouts, its circuit, its metrics), time it, and tell no answer from an answer. One attempt per
    call: a gateway that did not answer is the notifier's to try again, later, with its backoff."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self.name = name
        self.observe = observe or (lambda _gateway, _seconds: None)
        policy = Policy(connect_timeout=min(3.0, timeout), read_timeout=timeout, attempts=1)
        self.neighbour = Neighbour("notifier", f"{name} gateway", base_url, policy, headers=headers)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int | None, dict[str, Any], str | None, float]:
        """(HTTP status or None, JSON answer, why there was no answer, seconds)."""
        started = time.monotonic()
        try:
            response = self.neighbour.request("POST", path, json=body)
        except NeighbourUnavailable as exc:
            seconds = time.monotonic() - started
            if not exc.short_circuited:
                self.observe(self.name, seconds)
            return None, {}, str(exc)[:900], seconds
        seconds = time.monotonic() - started
        self.observe(self.name, seconds)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return response.status_code, answer if isinstance(answer, dict) else {}, None, seconds

    def close(self) -> None:
        self.neighbour.close()


def _unavailable(status: int | None, error: str | None, seconds: float, answer: dict) -> Delivery:
    return Delivery(Answer.UNAVAILABLE, error=error or f"HTTP {status}: {answer}"[:900], seconds=seconds)


class SmsGateway:
    """An SMS brand-name API: ``POST /sms/send {brandname, phone, text, unicode, request_id}``; code 0 is
    sent, code 3 a refused number, anything 5xx (or no answer) unavailable."""

    channel = SMS
    REJECTED_CODES = frozenset({3})

    def __init__(self, client: GatewayClient, brandname: str, *, unicode: bool = False) -> None:
        self.client, self.brandname, self.unicode = client, brandname, unicode

    def send(self, message: Outgoing) -> Delivery:
        body = {
            "brandname": self.brandname,
            "phone": message.to,
            "text": message.text,
            "unicode": self.unicode,
            "request_id": message.message_id,
        }
        status, answer, error, seconds = self.client.post("/sms/send", body)
        if status == 200 and answer.get("code") == 0:
            return Delivery(Answer.ACCEPTED, str(answer.get("message_id") or ""), seconds=seconds)
        if status == 200 and answer.get("code") in self.REJECTED_CODES:
            return Delivery(Answer.REJECTED, error=str(answer.get("message")), seconds=seconds)
        return _unavailable(status, error, seconds, answer)


class ZaloGateway:
    """The Official Account's message API: ``POST /oa/message {phone, text, tracking_id}`` with the OA's
    access token; ``error`` 0 is sent, one of ``not_follower_codes`` means the citizen does not follow
    the OA (the simulator's -213), another error a refusal."""

    channel = ZALO

    def __init__(self, client: GatewayClient, *, not_follower_codes: frozenset[int]) -> None:
        self.client, self.not_follower_codes = client, not_follower_codes

    def send(self, message: Outgoing) -> Delivery:
        body = {"phone": message.to, "text": message.text, "tracking_id": message.message_id}
        status, answer, error, seconds = self.client.post("/oa/message", body)
        if status == 200 and answer.get("error") == 0:
            data = answer.get("data") or {}
            return Delivery(Answer.ACCEPTED, str(data.get("message_id") or ""), seconds=seconds)
        if status == 200 and answer.get("error") in self.not_follower_codes:
            return Delivery(Answer.NOT_FOLLOWER, error=str(answer.get("message")), seconds=seconds)
        if status == 200 and isinstance(answer.get("error"), int):
            return Delivery(Answer.REJECTED, error=str(answer.get("message")), seconds=seconds)
        return _unavailable(status, error, seconds, answer)


class EmailGateway:
    """A transactional e-mail API: ``POST /mail/send {from, to, subject, text, message_id}``; 202 is
    accepted, 422 a refused address."""

    channel = EMAIL

    def __init__(self, client: GatewayClient, sender: str) -> None:
        self.client, self.sender = client, sender

    def send(self, message: Outgoing) -> Delivery:
        body = {
            "from": self.sender,
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "message_id": message.message_id,
        }
        status, answer, error, seconds = self.client.post("/mail/send", body)
        if status in (200, 202):
            return Delivery(Answer.ACCEPTED, str(answer.get("id") or ""), seconds=seconds)
        if status == 422:
            return Delivery(Answer.REJECTED, error=str(answer.get("error")), seconds=seconds)
        return _unavailable(status, error, seconds, answer)
