"""marshmallow: the notifier's answers (-> OpenAPI). It takes no request bodies: events come in from
``egov.events``, and the one read is a dossier's message log."""

from __future__ import annotations

from marshmallow import Schema, fields


class AttemptSchema(Schema):
    at = fields.AwareDateTime()
    gateway = fields.String(metadata={"description": "sms, zalo or email: the gateway called"})
    answer = fields.String(metadata={"description": "accepted, rejected, not_follower or unavailable"})
    seconds = fields.Float()
    error = fields.String(allow_none=True)


class MessageSchema(Schema):
    id = fields.String(metadata={"description": "{event id}:{channel}: one message per event and channel"})
    event_id = fields.String()
    kind = fields.String(metadata={"description": "what it tells: received, supplement_requested, …"})
    channel = fields.String(metadata={"description": "the channel consented to"})
    via = fields.String(metadata={"description": "the gateway it went through (sms when zalo fell back)"})
    state = fields.String(
        metadata={
            "description": "pending, deferred (quiet hours), sent, withdrawn (consent withdrawn first), "
            "capped (daily cap), not_follower, rejected, failed (every try)"
        }
    )
    text = fields.String(allow_none=True, metadata={"description": "what was sent (no personal data)"})
    attempts = fields.Integer()
    created_at = fields.AwareDateTime()
    next_attempt_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    gateway_reference = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempts_log = fields.List(fields.Nested(AttemptSchema), data_key="calls")


class NoticeSchema(Schema):
    event_id = fields.String()
    kind = fields.String()
    state = fields.String(
        metadata={
            "description": "pending (messages to send), done (each message final, or no consent), "
            "unknown (the dossier service does not know the dossier)"
        }
    )
    enqueued_at = fields.AwareDateTime()
    last_error = fields.String(allow_none=True)


class MessageLogSchema(Schema):
    code = fields.String()
    notices = fields.List(fields.Nested(NoticeSchema), metadata={"description": "newest first"})
    count = fields.Integer()
    results = fields.List(fields.Nested(MessageSchema), metadata={"description": "newest first"})
