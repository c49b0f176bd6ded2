"""The postal service's tables (it owns them; no other service reads them).

* ``postal_shipments`` — one row per consignment, either direction, with the contact it goes to or
  comes from. **Addresses and phones live here and in the operator's orders, nowhere else.**
* ``postal_webhooks`` — every verified operator report, stored before the operator gets its 2xx;
  the unique ``(operator, webhook_id)`` makes a repeated delivery a no-op.
* ``postal_webhook_rejections`` — forged or stale deliveries, kept for forensics; they change nothing.
* ``postal_handover_records`` / ``postal_handover_items`` — biên bản giao nhận, co-signed.
* ``postal_returns`` — how each dossier's result goes back by post (recipient, address, result
  document), given through an authorised call; a delivery shipment opens from it.
* ``postal_event_sequences`` — the per-dossier ``sequence`` of the ``postal.*`` events.
* ``postal_operator_calls`` — cancels and hand-over notices owed to the operator, until it took them.
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigId, UTCDateTime, add_pipeline_tables

SERVICE = "postal"
metadata = sa.MetaData()
pipeline = add_pipeline_tables(metadata, SERVICE)

shipments = sa.Table(
    "postal_shipments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("dossier_code", sa.String(60), nullable=False, index=True),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("operator", sa.String(40), nullable=False),
    sa.Column("consignment", sa.String(60), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("unit_path", sa.String(255), nullable=False),
    sa.Column("packages", sa.Integer, nullable=False),
    sa.Column("fee_vnd", sa.Integer, nullable=False),
    sa.Column("charged_to", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("promised_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("status_at", UTCDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("handed_over_at", UTCDateTime, nullable=True),
    sa.Column("lost_at", UTCDateTime, nullable=True),
    sa.Column("recipient_kind", sa.String(20), nullable=True),
    sa.Column("recipient_name", sa.String(200), nullable=True),
    sa.Column("result_document", sa.JSON, nullable=True),
    # Each distinct attempt the operator reported: [{"status": ..., "at": ...}] (attempts counts them).
    sa.Column("attempt_reports", sa.JSON, nullable=True),
    sa.Column("loss_cause", sa.String(30), nullable=True),
    sa.Column("compensation_vnd", sa.Integer, nullable=True),
    sa.Column("cancel_reason", sa.String(40), nullable=True),
    sa.Column("redelivery_cause", sa.String(30), nullable=True),
    # Personal data: the applicant's (pickup) or the recipient's (delivery) contact.
    sa.Column("contact_name", sa.String(200), nullable=False),
    sa.Column("contact_phone", sa.String(20), nullable=False),
    sa.Column("contact_address", sa.String(500), nullable=False),
    sa.UniqueConstraint("operator", "consignment", name="uq_postal_shipments_consignment"),
    sa.Index("ix_postal_shipments_open", "status", "promised_at"),
)

webhooks = sa.Table(
    "postal_webhooks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator", sa.String(40), nullable=False),
    sa.Column("webhook_id", sa.String(200), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("shipment_id", sa.String(36), sa.ForeignKey("postal_shipments.id"), nullable=False),
    sa.Column("operator_status", sa.String(60), nullable=False),
    sa.Column("status", sa.String(30), nullable=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.UniqueConstraint("operator", "webhook_id", name="uq_postal_webhooks_id"),
)

webhook_rejections = sa.Table(
    "postal_webhook_rejections",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator", sa.String(40), nullable=False),
    sa.Column("webhook_id", sa.String(200), nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("remote_addr", sa.String(60), nullable=True),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

handover_records = sa.Table(
    "postal_handover_records",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("operator_signed_by", sa.String(200), nullable=True),
    sa.Column("operator_signed_at", UTCDateTime, nullable=True),
    sa.Column("desk_signed_by", sa.String(200), nullable=True),
    sa.Column("desk_signed_at", UTCDateTime, nullable=True),
)

handover_items = sa.Table(
    "postal_handover_items",
    metadata,
    sa.Column("record_id", sa.String(36), sa.ForeignKey("postal_handover_records.id"), primary_key=True),
    sa.Column("shipment_id", sa.String(36), sa.ForeignKey("postal_shipments.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("packages_counted", sa.Integer, nullable=False),
    sa.Column("discrepancy", sa.String(20), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("reason", sa.String(1000), nullable=True),
    sa.Column("reason_code", sa.String(40), nullable=True),
)

returns = sa.Table(
    "postal_returns",
    metadata,
    sa.Column("dossier_code", sa.String(60), primary_key=True),
    sa.Column("receiving_unit", sa.String(40), nullable=False),
    sa.Column("recipient_name", sa.String(200), nullable=True),
    sa.Column("recipient_phone", sa.String(20), nullable=True),
    sa.Column("recipient_address", sa.String(500), nullable=True),
    sa.Column("result_document", sa.JSON, nullable=True),
    sa.Column("given_by", sa.String(200), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Set from dossier.resolved (return method postal): the result is ready to go.
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    # Set from the dossier's final event (withdrawn, refused, returned): no delivery opens any more.
    sa.Column("closed_at", UTCDateTime, nullable=True),
)

# Calls motcua owes the operator (cancel an order; tell it its worker took a result on a co-signed
# record), written in the transaction that decided them and made after the commit; the watch retries
# those that failed, so none is dropped.
operator_calls = sa.Table(
    "postal_operator_calls",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("shipment_id", sa.String(36), sa.ForeignKey("postal_shipments.id"), nullable=False),
    sa.Column("call", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.UniqueConstraint("shipment_id", "call", name="uq_postal_operator_calls"),
    sa.Index("ix_postal_operator_calls_pending", "done_at"),
)

event_sequences = sa.Table(
    "postal_event_sequences",
    metadata,
    sa.Column("subject", sa.String(100), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)
