"""The outbound service's tables: it owns them, and never reads another service's.

* ``outbound_portal_queue`` — what the national portal still has to hear, one row per dossier event
  (or full re-sync), durable: a dossier's rows go out one at a time in its events' order.
* ``outbound_portal_dossiers`` — per dossier: its unit and latest status facts, what was sent
  (``history``: services/outbound/domain/portal.py ``History``), the last sequence synced, and why
  it is parked when its sync kept failing.
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
