"""The notifier's tables: it owns them, and never reads another service's.

* ``notifier_notices`` — one row per dossier event that calls for a message (the queue): its kind, the
  event's data (no personal data is on it), and when the next message of it is due.
* ``notifier_messages`` — one row per notice per channel, keyed ``{event id}:{channel}`` (a unique key:
  a redelivered event or a second round never makes a second message), with the text, the gateway it went
  through (``via``: SMS when a Zalo message fell back), where it stands and when it went. The recipient is
  kept only as an HMAC (for the daily cap): the contact itself is read from the dossier service at each
  send and never stored.
* ``notifier_attempts`` — every call to a gateway: when, which, its answer, how long, the error.
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime, add_pipeline_tables

SERVICE = "notifier"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

notices = sa.Table(
    "notifier_notices",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(60), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("enqueued_at", UTCDateTime, nullable=False),
    # pending (messages still to send), done, unknown (the dossier service does not know the dossier)
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # failed reads of the contact
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Index(
        "ix_notifier_notices_due",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
)

messages = sa.Table(
    "notifier_messages",
    metadata,
    sa.Column("id", sa.String(60), primary_key=True),  # {event id}:{channel}
    sa.Column("event_id", sa.String(36), nullable=False, index=True),
    sa.Column("code", sa.String(60), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("via", sa.String(10), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=True),  # HMAC-SHA256 of the contact, hex
    sa.Column("state", sa.String(15), nullable=False),  # domain.messages.Outcome
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("gateway_reference", sa.String(100), nullable=True),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Index("ix_notifier_messages_recipient_sent", "recipient", "sent_at"),
)

attempts = sa.Table(
    "notifier_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(60), nullable=False, index=True),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("gateway", sa.String(10), nullable=False),
    sa.Column("answer", sa.String(15), nullable=False),  # domain.messages.Answer
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("error", sa.String(1000), nullable=True),
)
