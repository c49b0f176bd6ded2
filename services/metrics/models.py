"""The metrics service's tables: it owns them, and never reads another service's.

* ``metrics_event_log`` — every dossier event consumed, as received: the history a rebuild replays,
  and the buffer for events that arrived before an earlier one of the same dossier (``waiting``).
* ``metrics_dossier_facts`` — one row of SLA facts per dossier (:class:`projection.DossierFacts`).
* ``metrics_totals`` — the counters per receiving unit, procedure field and channel: the sum of every
  dossier's :func:`projection.contribution` plus the ratings. ``/metrics`` reads these few thousand
  rows instead of counting a million facts at every scrape.
* ``metrics_ratings`` — satisfaction ratings from the desk tablet, one per dossier. Not derived from
  events, so a rebuild keeps them.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.metrics.projection import COUNTER_COLUMNS, FACT_FLAGS, INTAKE_COUNTS, RATING_COLUMNS
from shared.db import UTCDateTime, add_pipeline_tables
from shared.vocabulary import IN_PROCESS

SERVICE = "metrics"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

# Dossiers in process, as the /metrics gauges select them (the same text, so the planner matches it).
IN_PROCESS_PREDICATE = (
    f"status IN ({', '.join(str(int(s)) for s in sorted(IN_PROCESS))}) AND received_at IS NOT NULL"
)

event_log = sa.Table(
    "metrics_event_log",
    metadata,
    # A dossier's history in order; event ids are de-duplicated by the inbox, so not indexed here.
    sa.Column("subject", sa.String(100), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(60), nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("unit_path", sa.String(255), nullable=False),
    sa.Column("handling_unit_path", sa.String(255), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    # True while an earlier event of the same dossier is missing; applied and cleared when it comes.
    sa.Column("waiting", sa.Boolean, nullable=False, default=False),
    sa.Column("logged_at", UTCDateTime, nullable=False),
    sa.Index(
        "ix_metrics_event_log_waiting",
        "subject",
        "sequence",
        postgresql_where=sa.text("waiting"),
        sqlite_where=sa.text("waiting"),
    ),
)

dossier_facts = sa.Table(
    "metrics_dossier_facts",
    metadata,
    sa.Column("code", sa.String(60), primary_key=True),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("handling_unit", sa.String(40), nullable=False),
    sa.Column("procedure_code", sa.String(40), nullable=False),
    sa.Column("procedure_field", sa.String(60), nullable=False),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("return_method", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("online_level", sa.String(10), nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=True),
    sa.Column("received_on", sa.Date, nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("original_due_at", UTCDateTime, nullable=True),
    sa.Column("clock_stopped_at", UTCDateTime, nullable=True),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("decision", sa.String(20), nullable=True),
    sa.Column("timeliness", sa.String(10), nullable=True),
    sa.Column("working_days", sa.Float, nullable=True),
    sa.Column("returned_at", UTCDateTime, nullable=True),
    sa.Column("returned_by", sa.String(10), nullable=True),
    sa.Column("withdrawn_at", UTCDateTime, nullable=True),
    sa.Column("supplements", sa.Integer, nullable=False, default=0),
    sa.Column("clock_stops", sa.Integer, nullable=False, default=0),
    sa.Column("apologies", sa.Integer, nullable=False, default=0, server_default="0"),
    *(sa.Column(name, sa.Integer, nullable=False, default=0, server_default="0") for name in INTAKE_COUNTS),
    *(
        sa.Column(name, sa.Boolean, nullable=False, default=False, server_default=sa.false())
        for name in FACT_FLAGS
    ),
    sa.Column("last_sequence", sa.Integer, nullable=False),
    sa.Index("ix_metrics_dossier_facts_unit_received_on", "receiving_unit", "received_on"),
    # The gauges read only dossiers in process, a small slice of the table, and only these columns:
    # an index-only scan at every scrape.
    sa.Index(
        "ix_metrics_dossier_facts_in_process",
        "receiving_unit",
        "procedure_field",
        "original_due_at",
        "clock_stopped_at",
        postgresql_where=sa.text(IN_PROCESS_PREDICATE),
        sqlite_where=sa.text(IN_PROCESS_PREDICATE),
    ),
)

totals = sa.Table(
    "metrics_totals",
    metadata,
    sa.Column("unit", sa.String(40), primary_key=True),
    sa.Column("procedure_field", sa.String(60), primary_key=True),
    sa.Column("channel", sa.SmallInteger, primary_key=True, autoincrement=False),
    *(
        sa.Column(name, sa.BigInteger, nullable=False, default=0)
        for name in (*COUNTER_COLUMNS, *RATING_COLUMNS)
    ),
)

ratings = sa.Table(
    "metrics_ratings",
    metadata,
    sa.Column("dossier_code", sa.String(60), primary_key=True),
    sa.Column("unit", sa.String(40), nullable=False),
    sa.Column("rating", sa.String(20), nullable=False),
    sa.Column("rated_at", UTCDateTime, nullable=False),
    sa.Column("rated_by", sa.String(200), nullable=False),
)
