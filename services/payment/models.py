"""The payment service's tables (it owns them; no other service reads them).

* ``payment_transactions`` — one row per transaction reference (MaThamChieu): the dossier, the amount
  due, what the platform said and when, whether the dossier took the payment, the receipt (biên lai).
  No card data: the citizen pays on the platform's page.
* ``payment_confirmations`` — every verified confirmation the platform sent, stored before it is
  answered; a repeat is stored again (the platform's retries are evidence too) and changes nothing.
* ``payment_rejections`` — confirmations refused (a wrong checksum, another partner, not JSON), kept
  for forensics; they change nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigId, UTCDateTime, add_pipeline_tables

SERVICE = "payment"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

transactions = sa.Table(
    "payment_transactions",
    metadata,
    sa.Column("reference", sa.String(40), primary_key=True),
    sa.Column("dossier_code", sa.String(60), nullable=False, index=True),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("amount_vnd", sa.BigInteger, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("started_by", sa.String(200), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("payment_url", sa.String(1000), nullable=True),
    sa.Column("transaction", sa.String(100), nullable=True),
    sa.Column("error_code", sa.String(20), nullable=True),
    sa.Column("settled_at", UTCDateTime, nullable=True),
    sa.Column("settled_via", sa.String(20), nullable=True),
    sa.Column("recorded_at", UTCDateTime, nullable=True),
    sa.Column("record_outcome", sa.String(40), nullable=True),
    sa.Column("queried_at", UTCDateTime, nullable=True),
    sa.Column("receipt_url", sa.String(1000), nullable=True),
    sa.Column("receipt", sa.LargeBinary, nullable=True),
    sa.Column("receipt_type", sa.String(100), nullable=True),
    sa.Index("ix_payment_transactions_open", "status", "started_at"),
)

confirmations = sa.Table(
    "payment_confirmations",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reference", sa.String(40), nullable=False, index=True),
    sa.Column("error_code", sa.String(20), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

rejections = sa.Table(
    "payment_rejections",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("received_at", UTCDateTime, nullable=False, index=True),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("reference", sa.String(100), nullable=True),
    sa.Column("remote_addr", sa.String(100), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
)
