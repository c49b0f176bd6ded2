"""The outbound service's tables: it owns them, and never reads another service's.

* ``outbound_portal_queue`` — what the national portal still has to hear, one row per dossier event
  (or full re-sync), durable: a dossier's rows go out one at a time in its events' order.
* ``outbound_portal_dossiers`` — per dossier: its unit and latest status facts, what was sent
  (``history``: services/outbound/domain/portal.py ``History``), the last sequence synced, and why
  it is parked when its sync kept failing.
* ``outbound_subscriptions`` — HTTP subscribers: callback, filters, auth header or OAuth2 client
  credentials, signing secrets, contact.
* ``outbound_deliveries`` — one row per event per matching subscription, kept until delivered or dead:
  a subscription's deliveries about one dossier go out one at a time in the events' order.
* ``outbound_delivery_attempts`` — every try of a delivery: when, the answer's status, the error.
* ``outbound_contact_notices`` — what a subscription's contact was told of dead deliveries (at most one a
  day per subscription): POSTed to a URL contact, or waiting for the operator's mailer (an e-mail).
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime, add_pipeline_tables

SERVICE = "outbound"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

portal_queue = sa.Table(
    "outbound_portal_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject", sa.String(60), nullable=False),
    # The event's per-dossier sequence; 0 for a full re-sync, which follows whatever came before it.
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=True),
    sa.Column("name", sa.String(60), nullable=False),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("enqueued_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Column("synced_at", UTCDateTime, nullable=True),
    sa.Index(
        "ix_outbound_portal_queue_pending",
        "subject",
        "id",
        postgresql_where=sa.text("synced_at IS NULL"),
        sqlite_where=sa.text("synced_at IS NULL"),
    ),
)

portal_dossiers = sa.Table(
    "outbound_portal_dossiers",
    metadata,
    sa.Column("code", sa.String(60), primary_key=True),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=True),
    sa.Column("facts", sa.JSON, nullable=False),
    sa.Column("facts_sequence", sa.Integer, nullable=False),
    sa.Column("history", sa.JSON, nullable=False),
    sa.Column("last_sequence", sa.Integer, nullable=False, default=0),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("synced_at", UTCDateTime, nullable=True),
    sa.Column("parked_at", UTCDateTime, nullable=True),
    sa.Column("parked_reason", sa.String(1000), nullable=True),
    sa.Index("ix_outbound_portal_dossiers_unit_received", "receiving_unit", "received_at"),
)

subscriptions = sa.Table(
    "outbound_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("callback_url", sa.String(2000), nullable=False),
    sa.Column("unit", sa.String(40), nullable=False),
    sa.Column("unit_path", sa.String(255), nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("procedure", sa.String(40), nullable=True),
    sa.Column("field", sa.String(60), nullable=True),
    sa.Column("auth_header", sa.String(2000), nullable=True),
    # OAuth2 client credentials for the callback's bearer token (RFC 6749 §4.4); all four or none.
    sa.Column("oauth2_token_url", sa.String(2000), nullable=True),
    sa.Column("oauth2_client_id", sa.String(200), nullable=True),
    sa.Column("oauth2_client_secret", sa.String(500), nullable=True),
    sa.Column("oauth2_scope", sa.String(500), nullable=True),
    sa.Column("secrets", sa.JSON, nullable=False),
    sa.Column("contact", sa.String(254), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(1000), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_outbound_subscriptions_owner", "owner"),
)

deliveries = sa.Table(
    "outbound_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(36), nullable=False),
    sa.Column("subject", sa.String(100), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(120), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the CloudEvent as published
    sa.Column("enqueued_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    # pending, delivered, dead (every try failed), gone (the subscription answered 410)
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_outbound_deliveries_event"),
    sa.Index(
        "ix_outbound_deliveries_pending",
        "subscription_id",
        "subject",
        "sequence",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
)

delivery_attempts = sa.Table(
    "outbound_delivery_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, nullable=False, index=True),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("seconds", sa.Float, nullable=False),
)

contact_notices = sa.Table(
    "outbound_contact_notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(36), nullable=False),
    sa.Column("contact", sa.String(2000), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),  # url: POSTed; email: for the operator's mailer
    sa.Column("body", sa.Text, nullable=False),  # the notice, JSON
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),  # POSTed with a 2xx, or taken by the mailer
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Index("ix_outbound_contact_notices_subscription", "subscription_id", "created_at"),
)
