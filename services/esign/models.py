"""The e-signature service's tables: it owns them, and never reads another service's.

* ``esign_signing_requests`` — one row per result document to sign (a dossier sent back for appraisal
  after a refusal gets a new one when it is decided again): the state of its
  :class:`~services.esign.domain.model.SigningRequest` and who signed, sealed or refused, when.
* ``esign_documents`` — every revision of every result document (unsigned, signed, sealed), by its
  SHA-256. The bytes live in the content-addressed store (:mod:`services.esign.storage`); this row
  says what they are and until when they are kept.
* ``esign_document_counters`` — each issuing unit's register, one row per Vietnam-local year: the last
  number given. Its row stays locked from a seal's upsert to that seal's commit.
* ``esign_event_sequences`` — the per-dossier ``sequence`` of the ``esign.*`` events, across the
  dossier's signing requests.
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime, add_pipeline_tables

SERVICE = "esign"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

signing_requests = sa.Table(
    "esign_signing_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("dossier_code", sa.String(60), nullable=False, index=True),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("procedure_code", sa.String(60), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("handling_unit", sa.String(40), nullable=False),
    sa.Column("issuing_unit", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("document_sha256", sa.String(64), nullable=False),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("leader_sub", sa.String(200), nullable=True),
    sa.Column("leader_name", sa.String(120), nullable=True),
    sa.Column("signed_at", UTCDateTime, nullable=True),
    sa.Column("clerk_sub", sa.String(200), nullable=True),
    sa.Column("clerk_name", sa.String(120), nullable=True),
    sa.Column("sealed_at", UTCDateTime, nullable=True),
    sa.Column("refused_by", sa.String(200), nullable=True),
    sa.Column("refused_at", UTCDateTime, nullable=True),
    sa.Column("refusal_reason", sa.Text, nullable=True),
    # The register's number, given at the seal: (unit, Vietnam-local year, number) is unique.
    sa.Column("document_number", sa.String(80), nullable=True),
    sa.Column("register_year", sa.Integer, nullable=True),
    sa.Column("register_number", sa.Integer, nullable=True),
    sa.UniqueConstraint("issuing_unit", "register_year", "register_number", name="uq_esign_register_number"),
    sa.Index("ix_esign_requests_stage", "stage", "handling_unit"),
)

documents = sa.Table(
    "esign_documents",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(36), nullable=False, index=True),
    sa.Column("revision", sa.String(20), nullable=False),  # unsigned, signed, sealed
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("retain_until", UTCDateTime, nullable=False, index=True),
)

document_counters = sa.Table(
    "esign_document_counters",
    metadata,
    sa.Column("issuing_unit", sa.String(40), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

event_sequences = sa.Table(
    "esign_event_sequences",
    metadata,
    sa.Column("subject", sa.String(100), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)
