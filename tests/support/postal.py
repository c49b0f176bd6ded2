"""Helpers for the postal tests: webhook signing as the operator does it, and a service config."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from tests.conftest import service_settings

SECRET = "whsec_bW90Y3VhLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0"  # the development secret (config.yml)
NEW_SECRET = "whsec_cm90YXRlZC1zZWNyZXQtb2YtdGhlLW9wZXJhdG9yLTIwMjY="
FOREIGN_SECRET = "whsec_Zm9yZ2VkLWJ5LXNvbWVvbmUtZWxzZQ=="


def signed(
    report: dict | bytes,
    *,
    secrets: tuple[str, ...] = (SECRET,),
    webhook_id: str | None = None,
    timestamp: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its Standard Webhooks headers, signed with each of ``secrets``."""
    body = report if isinstance(report, bytes) else json.dumps(report, ensure_ascii=False).encode()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=UTC)
    signatures = " ".join(Webhook(s).sign(webhook_id, moment, body.decode()) for s in secrets)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
    return body, headers


def postal_config(amqp_uri: str, database_url: str, port: int, **overrides) -> dict:
    settings = {
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "POSTAL_OPERATOR": "vnpost",
        "POSTAL_OPERATOR_URL": "http://127.0.0.1:9",
        "POSTAL_WEBHOOK_SECRETS": SECRET,
        "POSTAL_OPERATOR_TIMEOUT_SECONDS": 2,
        "POSTAL_OPERATOR_ATTEMPTS": 2,
        "DOSSIER_URL": "http://127.0.0.1:9",
        "POSTAL_WATCH_SECONDS": 3600,
    }
    return service_settings(amqp_uri, database_url, **{**settings, **overrides})
