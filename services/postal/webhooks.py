"""Verifying the operator's webhooks (docs/contracts.md §3) with the ``standardwebhooks`` library.

Each operator has one or more active secrets (``whsec_<base64>``): during a rotation the operator
signs with the new one, or with both (space-separated ``v1,`` signatures), and either verifies.
The library checks the ±5 minute window and compares in constant time over the exact raw body.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class WebhookRejected(Exception):
    """The delivery is not authentic or not fresh; ``reason`` is a short label for metrics and forensics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _reason(message: str) -> str:
    if "too old" in message or "too new" in message:
        return "stale_timestamp"
    if "Missing required headers" in message:
        return "missing_headers"
    if "Invalid Signature Headers" in message:
        return "bad_timestamp"
    return "bad_signature"


class WebhookVerifier:
    """The active secrets of every operator this service accepts webhooks from."""

    def __init__(self, secrets: Mapping[str, Iterable[str]]) -> None:
        self._webhooks = {
            operator: [Webhook(secret) for secret in operator_secrets]
            for operator, operator_secrets in secrets.items()
        }
        for operator, webhooks in self._webhooks.items():
            if not webhooks:
                raise ValueError(f"operator {operator!r} has no webhook secret")

    def knows(self, operator: str) -> bool:
        return operator in self._webhooks

    def verify(self, operator: str, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Return when one active secret verifies the delivery; raise :class:`WebhookRejected` otherwise."""
        try:
            raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookRejected(
                "bad_signature", "the body is not UTF-8, so no signature can match"
            ) from exc
        reason, detail = "bad_signature", "no matching signature"
        for webhook in self._webhooks[operator]:
            try:
                webhook.verify(raw_body, dict(headers), json_parse=False)
                return
            except WebhookVerificationError as exc:
                reason, detail = _reason(str(exc)), str(exc)
                if reason != "bad_signature":
                    break  # the headers, not the secret, are at fault: another secret cannot help
            except (ValueError, binascii.Error) as exc:
                # A signature that is not "v1,<base64>" (the library unpacks and decodes it blindly).
                raise WebhookRejected("malformed_signature", f"malformed webhook-signature: {exc}") from exc
        raise WebhookRejected(reason, detail)


def parse_secrets(value: str) -> list[str]:
    """``POSTAL_WEBHOOK_SECRETS``: space- or comma-separated ``whsec_`` secrets, each checked now."""
    secrets = [s for s in value.replace(",", " ").split() if s]
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    for secret in secrets:
        if not secret.startswith("whsec_"):
            raise ValueError("webhook secrets look like whsec_<base64>")
        try:
            Webhook(secret)
        except (binascii.Error, ValueError, Exception) as exc:
            raise ValueError(f"not a valid webhook secret: {exc}") from exc
    return secrets
