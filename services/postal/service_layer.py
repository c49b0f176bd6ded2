"""The postal service's use cases: plain functions over a unit of work, called by thin entrypoints.

Each function takes a command (what was asked), the unit of work (``uow.transaction()``: one
database transaction whose events reach the outbox at commit) and the adapters it needs (the
operator, the dossier service, the unit map, the calendar). Calls to the operator happen outside
any transaction, with idempotency keys derived from the shipment's id, so a retry — of the call, of
the request or of a consumed event — repeats nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from services.postal import metrics, repository
from services.postal.domain.model import (
    Direction,
    HandoverRecord,
    ItemOutcome,
    PostalError,
    Report,
    Shipment,
    ShipmentStatus,
    TrackingOutcome,
    check_redelivery,
    may_change_address,
)
from services.postal.domain.tracking import is_lost, map_status
from services.postal.models import returns, shipments, webhook_rejections, webhooks
from services.postal.operator import Contact, OperatorAdapter, OperatorRejected, OperatorUnavailable, Order
from services.postal.schemas import HandoverRecordSchema, ShipmentSchema, TrackingWebhookSchema
from services.postal.webhooks import WebhookRejected, WebhookVerifier
from shared.auth import Principal
from shared.events import build_event
from shared.problems import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar

log = logging.getLogger(__name__)
IDS = uuid.UUID("5b0c3f2e-6d1a-4c51-9a7e-2f1d7c9e4b10")  # namespace of the derived shipment ids
TRACKING = TrackingWebhookSchema()
SHIPMENT = ShipmentSchema()
RECORD = HandoverRecordSchema()
SIDES = {"postal_operator": "operator", "desk_officer": "desk"}


def derived_id(*parts: str) -> str:
    """A stable id from what identifies a request, so a retried request finds its first result."""
    return str(uuid.uuid5(IDS, "\n".join(parts)))


def _publish(tx, shipment: Shipment, unit_path: str) -> None:
    """Move a shipment's domain events to the outbox, numbered in its dossier's postal sequence."""
    pending, shipment.events = shipment.events, []
    if not pending:
        return
    first = repository.next_sequences(tx.session, shipment.dossier_code, len(pending))
    tx.emit(
        *(
            build_event(
                "postal",
                event.name,
                subject=shipment.dossier_code,
                data=event.data,
                unit_path=unit_path,
                sequence=first + offset,
            )
            for offset, event in enumerate(pending)
        )
    )


def present_shipment(shipment: Shipment) -> dict[str, Any]:
    return SHIPMENT.dump(shipment)


# --- the operator's webhooks -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveWebhook:
    operator: str
    raw_body: bytes
    headers: Mapping[str, str]
    remote_addr: str | None = None


def receive_webhook(
    cmd: ReceiveWebhook, uow, verifier: WebhookVerifier, calendar: WorkingCalendar, now: datetime
) -> tuple[int, dict[str, Any]]:
    """docs/contracts.md §3: verify, then store and apply in one transaction before answering 2xx.

    The report's row is inserted before the shipment is saved: a ``webhook-id`` seen before fails
    that insert on its unique key, and the whole transaction, whatever it did, is rolled back.

    401 (kept in ``postal_webhook_rejections``) for a forged or stale delivery; 400 for a body that
    is not a tracking report; 404 for a consignment this service never ordered; 200 and no change
    for a ``webhook-id`` seen before.
    """
    if not verifier.knows(cmd.operator):
        raise NotFound(f"no postal operator {cmd.operator!r} sends webhooks here")
    try:
        verifier.verify(cmd.operator, cmd.raw_body, cmd.headers)
    except WebhookRejected as exc:
        _keep_for_forensics(uow, cmd, exc.reason, now)
        metrics.WEBHOOK_VERIFICATION_FAILURES.labels(cmd.operator, exc.reason).inc()
        log.warning("webhook from %s refused (%s): %s", cmd.operator, exc.reason, exc.detail)
        raise Unauthorized(f"webhook refused: {exc.detail}") from exc
    webhook_id = cmd.headers["webhook-id"]
    report = _parse_report(cmd)
    try:
        with uow.transaction() as tx:
            found = repository.shipment_for_report(tx.session, cmd.operator, report["consignment"])
            if found is None:
                raise NotFound(f"no consignment {report['consignment']} of {cmd.operator} is known here")
            shipment, unit_path = found
            recipient = report["recipient"] or {}
            compensation = report["compensation"] or {}
            mapped = map_status(cmd.operator, report["status"])
            outcome = shipment.track(
                Report(
                    operator_status=report["status"],
                    status=mapped,
                    occurred_at=report["occurred_at"],
                    recipient_kind=recipient.get("kind"),
                    recipient_name=recipient.get("name"),
                    note=report["note"],
                    lost=is_lost(report["status"]),
                    compensation_vnd=compensation.get("amount_vnd"),
                    loss_cause=compensation.get("cause"),
                )
            )
            tx.session.execute(
                webhooks.insert().values(
                    operator=cmd.operator,
                    webhook_id=webhook_id,
                    received_at=now,
                    shipment_id=shipment.id,
                    operator_status=report["status"],
                    status=None if mapped is None else mapped.value,  # as reported, mapped
                    occurred_at=report["occurred_at"],
                    outcome=outcome.value,
                    body=cmd.raw_body.decode("utf-8"),
                )
            )
            if outcome not in (TrackingOutcome.BEFORE_HANDOVER, TrackingOutcome.UNKNOWN_STATUS):
                # a late or repeated report may still be an attempt, or bring a loss's compensation
                repository.save_shipment(tx.session, shipment)
                _publish(tx, shipment, unit_path)
    except sa.exc.IntegrityError:
        # The webhook-id is stored already (uq_postal_webhooks_id): a repeated delivery, or the same one
        # delivered twice at once. The transaction is rolled back, so nothing it did remains.
        metrics.WEBHOOKS.labels(cmd.operator, "duplicate").inc()
        return 200, {"webhook_id": webhook_id, "outcome": "duplicate"}
    metrics.WEBHOOKS.labels(cmd.operator, outcome.value).inc()
    if outcome == TrackingOutcome.LOST:
        metrics.LOST.labels(shipment.direction.value).inc()
        log.warning("%s lost consignment %s of %s", cmd.operator, shipment.consignment, shipment.dossier_code)
    if outcome == TrackingOutcome.BEFORE_HANDOVER:
        metrics.REPORTS_BEFORE_HANDOVER.labels(cmd.operator).inc()
        log.warning(
            "%s reported %r for delivery %s of %s before its hand-over record was co-signed; "
            "stored, no movement",
            cmd.operator,
            report["status"],
            shipment.consignment,
            shipment.dossier_code,
        )
    if outcome == TrackingOutcome.UNKNOWN_STATUS:
        metrics.UNKNOWN_STATUSES.labels(cmd.operator).inc()
        log.warning(
            "%s reported unknown status %r for %s; stored, no movement",
            cmd.operator,
            report["status"],
            shipment.consignment,
        )
    if outcome == TrackingOutcome.APPLIED and shipment.status == ShipmentStatus.DELIVERED:
        start = (
            shipment.handed_over_at
            if shipment.direction == Direction.DELIVERY and shipment.handed_over_at
            else shipment.created_at
        )
        metrics.DELIVERY_WORKING_SECONDS.labels(shipment.direction.value).observe(
            calendar.working_time_between(start, shipment.delivered_at).total_seconds()
        )
    return 200, {"webhook_id": webhook_id, "outcome": outcome.value, "shipment_status": shipment.status.value}


def _parse_report(cmd: ReceiveWebhook) -> dict[str, Any]:
    try:
        document = json.loads(cmd.raw_body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 and bad JSON, and an integer of more than 4,300 digits, which
        # Python refuses to convert (sys.int_info.default_max_str_digits).
        raise BadRequest(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("the webhook body must be a JSON object")
    try:
        return TRACKING.load(document)
    except ValidationError as exc:
        problem = ValidationFailed.from_messages(exc.messages)
        raise BadRequest(f"not a tracking report: {problem.detail}", errors=problem.errors) from exc


def _keep_for_forensics(uow, cmd: ReceiveWebhook, reason: str, now: datetime) -> None:
    headers = {
        k.lower(): v
        for k, v in cmd.headers.items()
        if k.lower().startswith("webhook-") or k.lower() in ("user-agent", "content-type", "x-forwarded-for")
    }
    with uow.transaction() as tx:
        tx.session.execute(
            webhook_rejections.insert().values(
                operator=cmd.operator,
                webhook_id=(headers.get("webhook-id") or "")[:200] or None,
                received_at=now,
                reason=reason,
                remote_addr=cmd.remote_addr,
                headers=headers,
                body=cmd.raw_body.decode("utf-8", errors="replace"),
            )
        )


# --- pickups ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPickup:
    shipment_id: str
    principal: Principal
    authorization: str
    body: dict[str, Any]


@dataclass
class PreparedPickup:
    command: RequestPickup
    dossier_code: str
    confirmation: Any
    unit_path: str


def prepare_pickup(
    cmd: RequestPickup, operator: OperatorAdapter, dossiers, units: UnitRegistry
) -> PreparedPickup:
    """Register the dossier (status 1, channel postal) and place the operator's order; both idempotent."""
    body = cmd.body
    unit = body["receiving_unit"]
    if unit not in units:
        raise ValidationFailed(
            f"receiving_unit: unknown unit code {unit!r}",
            errors=[{"pointer": "/receiving_unit", "detail": f"unknown unit code {unit!r}"}],
        )
    pickup = body["pickup"]
    applicant = {**body["applicant"], "address": pickup["address"]}
    applicant.setdefault("phone", pickup["phone"])
    code = dossiers.register(
        {
            "procedure_code": body["procedure_code"],
            "receiving_unit": unit,
            "channel": "postal",
            "return_method": body["return_method"],
            "applicant": applicant,
        },
        authorization=cmd.authorization,
        idempotency_key=f"postal-pickup-{cmd.shipment_id}",
    )
    order = Order(
        reference=cmd.shipment_id,
        direction=Direction.PICKUP.value,
        unit=unit,
        contact=Contact(pickup["name"], pickup["phone"], pickup["address"]),
        packages=body["packages"],
        documents=tuple(f"{d['name']} ×{d['copies']}" for d in body["documents"]),
    )
    confirmation = _order(operator, order)
    return PreparedPickup(cmd, code, confirmation, units.routing_path(unit))


def _order(operator: OperatorAdapter, order: Order):
    try:
        return operator.create_order(order, idempotency_key=order.reference)
    except OperatorUnavailable as exc:
        raise ServiceUnavailable(
            f"the postal operator cannot take the order now; retry later: {exc}"
        ) from exc
    except OperatorRejected as exc:
        raise Conflict(f"the postal operator refused the order: {exc.detail}") from exc


def store_pickup(
    tx, prepared: PreparedPickup, operator_name: str, now: datetime
) -> tuple[int, dict[str, Any]]:
    cmd, body, confirmation = prepared.command, prepared.command.body, prepared.confirmation
    existing = repository.shipment(tx.session, cmd.shipment_id)
    if existing is not None:
        return 201, present_shipment(existing)
    shipment = Shipment.order(
        id=cmd.shipment_id,
        dossier_code=prepared.dossier_code,
        direction=Direction.PICKUP,
        operator=operator_name,
        consignment=confirmation.consignment,
        receiving_unit=body["receiving_unit"],
        packages=confirmation.packages,
        fee_vnd=confirmation.fee_vnd,
        charged_to="applicant",
        created_at=now,
        promised_at=confirmation.promised_at,
    )
    repository.add_shipment(tx.session, shipment, unit_path=prepared.unit_path, contact=body["pickup"])
    if body["return_method"] == "postal":
        recipient = body["return_to"] or body["pickup"]
        repository.put_return(
            tx.session,
            prepared.dossier_code,
            {
                "receiving_unit": body["receiving_unit"],
                "recipient_name": recipient["name"],
                "recipient_phone": recipient["phone"],
                "recipient_address": recipient["address"],
                "given_by": cmd.principal.sub,
                "updated_at": now,
            },
        )
    _publish(tx, shipment, prepared.unit_path)
    return 201, present_shipment(shipment)


# --- hand-over records ------------------------------------------------------------------------------------


def _side(principal: Principal) -> str:
    sides = {side for role, side in SIDES.items() if principal.has_role(role)}
    if len(sides) != 1:
        raise Forbidden(
            "a hand-over record is signed by two parties: use a token with exactly one of the roles "
            "postal_operator, desk_officer"
        )
    return sides.pop()


def present_record(record: HandoverRecord) -> dict[str, Any]:
    return RECORD.dump(
        {
            **{
                k: getattr(record, k)
                for k in (
                    "id",
                    "created_at",
                    "receiving_unit",
                    "operator_signed_by",
                    "operator_signed_at",
                    "desk_signed_by",
                    "desk_signed_at",
                    "signed_at",
                )
            },
            "direction": record.direction.value,
            "items": [
                {
                    "consignment": item.shipment.consignment,
                    "dossier_code": item.shipment.dossier_code,
                    "packages_declared": item.shipment.packages,
                    "packages_counted": item.packages_counted,
                    "discrepancy": item.discrepancy,
                    "outcome": None if item.outcome is None else item.outcome.value,
                    "reason": item.reason,
                    "reason_code": item.reason_code,
                }
                for item in record.items
            ],
        }
    )


def draw_up_record(
    tx, principal: Principal, body: dict[str, Any], operator_name: str, units: UnitRegistry, now: datetime
) -> HandoverRecord:
    _side(principal)
    unit = body["receiving_unit"]
    if unit not in units:
        raise ValidationFailed(
            f"receiving_unit: unknown unit code {unit!r}",
            errors=[{"pointer": "/receiving_unit", "detail": "unknown unit code"}],
        )
    if not principal.covers(units, unit):
        raise Forbidden(f"unit {unit} is outside your jurisdiction")
    counted = []
    for index, item in enumerate(body["items"]):
        shipment = repository.shipment_by_consignment(
            tx.session, operator_name, item["consignment"], for_update=True
        )
        if shipment is None:
            raise ValidationFailed(
                f"items/{index}/consignment: no consignment {item['consignment']}",
                errors=[{"pointer": f"/items/{index}/consignment", "detail": "no such consignment"}],
            )
        counted.append((shipment, item["packages_counted"]))
    try:
        record = HandoverRecord.draw_up(
            id=str(uuid.uuid4()),
            direction=Direction(body["direction"]),
            receiving_unit=unit,
            counted=counted,
            now=now,
        )
    except PostalError as exc:
        raise Conflict(str(exc)) from exc
    repository.add_record(tx.session, record, created_by=principal.sub)
    return record


def alert_discrepancies(record: dict[str, Any]) -> None:
    """A missing package or a count that does not match: counted (alerted on) and logged."""
    for item in record["items"]:
        if item["discrepancy"]:
            metrics.HANDOVER_DISCREPANCIES.labels(item["discrepancy"]).inc()
            log.warning(
                "hand-over record %s: consignment %s %s (declared %d, counted %d)",
                record["id"],
                item["consignment"],
                item["discrepancy"],
                item["packages_declared"],
                item["packages_counted"],
            )


def readable_record(
    tx, principal: Principal, record_id: str, units: UnitRegistry, *, for_update: bool = False
) -> HandoverRecord:
    record = repository.record(tx.session, record_id, for_update=for_update)
    if record is None or not principal.covers(units, record.receiving_unit):
        raise NotFound(f"no hand-over record {record_id}")
    return record


def sign_record(
    tx, principal: Principal, record_id: str, body: dict[str, Any], units: UnitRegistry, now: datetime
) -> HandoverRecord:
    """One side signs; the second signature fixes the record and announces each consignment."""
    side = _side(principal)
    record = readable_record(tx, principal, record_id, units, for_update=True)
    other = record.desk_signed_by if side == "operator" else record.operator_signed_by
    if other == principal.sub:
        raise Conflict("the two signatures of a hand-over record must come from two people")
    decisions = {
        d["consignment"]: (ItemOutcome(d["outcome"]), d["reason"], d["reason_code"])
        for d in body["decisions"]
    }
    if side == "operator" and decisions:
        raise ValidationFailed(
            "decisions: only the desk decides on the dossiers",
            errors=[{"pointer": "/decisions", "detail": "only the desk decides"}],
        )
    try:
        complete = record.sign(
            side=side, signer=principal.sub, now=now, decisions=decisions if side == "desk" else None
        )
    except PostalError as exc:
        raise Conflict(str(exc)) from exc
    repository.save_record(tx.session, record)
    if complete:
        for item in record.items:
            _publish(tx, item.shipment, repository.unit_path_of(tx.session, item.shipment.id))
            if record.direction == Direction.DELIVERY:
                repository.owe_call(tx.session, item.shipment.id, HANDOVER_CALL, now)
    return record


# --- calls owed to the operator -------------------------------------------------------------------------

CANCEL_CALL, HANDOVER_CALL = "cancel", "handover"


def call_operator(uow, operator: OperatorAdapter, now: datetime, *, dossier_code: str | None = None) -> int:
    """Make the calls owed to the operator (all, or one dossier's); a failed one stays owed for the watch.

    A cancel the operator refuses (the order is delivered already, or unknown to it) is settled: there is
    nothing left to cancel, and its tracking says what happened. Returns how many are still owed.
    """
    with uow.transaction() as tx:
        owed = repository.owed_calls(tx.session, dossier_code=dossier_code)
    for call in owed:
        outcome, error = "done", None
        try:
            if call.call == CANCEL_CALL:
                operator.cancel(call.consignment)
            else:
                operator.confirm_handover(call.consignment, handed_over_at=call.handed_over_at)
        except OperatorRejected as exc:
            outcome = "refused"
            log.warning("%s refused to %s %s: %s", operator.name, call.call, call.consignment, exc.detail)
        except OperatorUnavailable as exc:
            outcome, error = None, str(exc)[:500]
            metrics.OPERATOR_CALL_FAILURES.labels(call.call).inc()
            log.warning("%s of %s not made yet (retried): %s", call.call, call.consignment, exc)
        with uow.transaction() as tx:
            repository.settle_call(tx.session, call.id, outcome=outcome, error=error, now=now)
    with uow.transaction() as tx:
        return len(repository.owed_calls(tx.session, dossier_code=dossier_code))


@dataclass(frozen=True)
class DossierEnded:
    """A final dossier event: withdrawn, refused, or returned (at the counter)."""

    dossier_code: str
    reason: str
    ended_at: datetime


DOSSIER_ENDINGS = {"withdrawn": "dossier_withdrawn", "refused": "dossier_refused"}


def dossier_ended(tx, cmd: DossierEnded) -> int:
    """Cancel at the operator whatever still runs for a dossier that ended; no delivery opens after.

    Idempotent: a shipment asked to cancel once is not asked again. Returns how many were asked now.
    """
    row = repository.postal_return(tx.session, cmd.dossier_code, for_update=True)
    if row is not None and row.closed_at is None:
        repository.put_return(tx.session, cmd.dossier_code, {"closed_at": cmd.ended_at})
    asked = 0
    for shipment in repository.shipments_of(tx.session, cmd.dossier_code):
        if shipment.request_cancel(cmd.reason):
            repository.save_shipment(tx.session, shipment)
            repository.owe_call(tx.session, shipment.id, CANCEL_CALL, cmd.ended_at)
            asked += 1
    return asked


# --- returns by post -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDelivery:
    dossier_code: str
    again: bool = False  # a new delivery after the last came back (returned, lost, cancelled)
    cause: str | None = None  # why it goes again: decides who pays
    recipient: dict[str, str] | None = None  # a corrected recipient and address for the new delivery


@dataclass
class DeliveryPlan:
    shipment_id: str
    receiving_unit: str
    recipient: dict[str, str]
    result_document: dict[str, Any] | None
    charged_to: str
    existing: Shipment | None = field(default=None)
    cause: str | None = None


def _plan_delivery(tx, cmd: OpenDelivery, now: datetime) -> DeliveryPlan | None:
    row = repository.postal_return(tx.session, cmd.dossier_code, for_update=True)
    if row is None or row.resolved_at is None or row.closed_at is not None:
        return None
    deliveries = [
        s for s in repository.shipments_of(tx.session, cmd.dossier_code) if s.direction == Direction.DELIVERY
    ]
    if deliveries and not cmd.again:  # opened already (a retry, or the other path: event, API, watch)
        open_ = [s for s in deliveries if not s.is_closed]
        existing = open_[-1] if open_ else deliveries[-1]
        return DeliveryPlan(existing.id, row.receiving_unit, {}, None, existing.charged_to, existing=existing)
    charged_to = "applicant"
    if cmd.again:
        try:
            charged_to = check_redelivery(deliveries[-1] if deliveries else None, cmd.cause or "")
        except PostalError as exc:
            raise Conflict(str(exc)) from exc
        if cmd.recipient is not None:
            values = {f"recipient_{k}": v for k, v in cmd.recipient.items()}
            repository.put_return(tx.session, cmd.dossier_code, {**values, "updated_at": now})
            row = repository.postal_return(tx.session, cmd.dossier_code)
    if row.recipient_address is None:
        return None
    return DeliveryPlan(
        shipment_id=derived_id(cmd.dossier_code, "delivery", str(len(deliveries) + 1)),
        receiving_unit=row.receiving_unit,
        recipient={
            "name": row.recipient_name,
            "phone": row.recipient_phone,
            "address": row.recipient_address,
        },
        result_document=row.result_document,
        charged_to=charged_to,
        cause=cmd.cause if cmd.again else None,
    )


def open_delivery(
    cmd: OpenDelivery, uow, operator: OperatorAdapter, units: UnitRegistry, now: datetime
) -> Shipment | None:
    """Open the delivery of a resolved dossier's result when its recipient is known; idempotent.

    None when the result is not ready or nobody gave the address yet; the existing delivery when one is open.
    """
    with uow.transaction() as tx:
        plan = _plan_delivery(tx, cmd, now)
    if plan is None or plan.existing is not None:
        return None if plan is None else plan.existing
    confirmation = _order(
        operator,
        Order(
            reference=plan.shipment_id,
            direction=Direction.DELIVERY.value,
            unit=plan.receiving_unit,
            contact=Contact(**plan.recipient),
            packages=1,
        ),
    )
    try:
        with uow.transaction() as tx:
            existing = repository.shipment(tx.session, plan.shipment_id)
            if existing is not None:
                return existing
            shipment = Shipment.order(
                id=plan.shipment_id,
                dossier_code=cmd.dossier_code,
                direction=Direction.DELIVERY,
                operator=operator.name,
                consignment=confirmation.consignment,
                receiving_unit=plan.receiving_unit,
                packages=confirmation.packages,
                fee_vnd=confirmation.fee_vnd,
                charged_to=plan.charged_to,
                redelivery_cause=plan.cause,
                created_at=now,
                promised_at=confirmation.promised_at,
                result_document=plan.result_document,
            )
            unit_path = units.routing_path(plan.receiving_unit)
            repository.add_shipment(tx.session, shipment, unit_path=unit_path, contact=plan.recipient)
            _publish(tx, shipment, unit_path)
            return shipment
    except sa.exc.IntegrityError:
        with uow.transaction() as tx:  # opened at the same moment by the other path (event, API, watch)
            return repository.shipment(tx.session, plan.shipment_id)


def watch(uow, operator: OperatorAdapter, units: UnitRegistry, now: datetime) -> None:
    """Refresh the shipment gauges, flag stuck shipments, and open deliveries an outage left unopened."""
    with uow.transaction() as tx:
        counts = tx.session.execute(
            sa.select(shipments.c.direction, shipments.c.status, sa.func.count()).group_by(
                shipments.c.direction, shipments.c.status
            )
        ).all()
        overdue = dict(
            tx.session.execute(
                sa.select(shipments.c.direction, sa.func.count())
                .where(
                    shipments.c.status.not_in(
                        [
                            s.value
                            for s in (
                                ShipmentStatus.DELIVERED,
                                ShipmentStatus.RETURNED_TO_SENDER,
                                ShipmentStatus.CANCELLED,
                            )
                        ]
                    )
                )
                .where(shipments.c.promised_at < now)
                .where(shipments.c.lost_at.is_(None))  # a lost one is alerted on as lost, not as stuck
                .group_by(shipments.c.direction)
            ).all()
        )
        waiting = tx.session.execute(
            sa.select(returns.c.dossier_code, returns.c.recipient_address)
            .where(returns.c.resolved_at.is_not(None))
            .where(returns.c.closed_at.is_(None))
            .where(
                ~sa.exists().where(
                    shipments.c.dossier_code == returns.c.dossier_code,
                    shipments.c.direction == Direction.DELIVERY.value,
                )
            )
            .limit(100)
        ).all()
    by_status = {(direction, status): count for direction, status, count in counts}
    for direction in Direction:
        for status in ShipmentStatus:  # every pair, so a status nobody is in any more reads 0
            metrics.SHIPMENTS.labels(direction.value, status.value).set(
                by_status.get((direction.value, status.value), 0)
            )
        metrics.SHIPMENTS_OVERDUE.labels(direction.value).set(overdue.get(direction.value, 0))
    metrics.RETURNS_AWAITING_ADDRESS.set(sum(1 for row in waiting if row.recipient_address is None))
    for row in waiting:
        if row.recipient_address is not None:
            try:
                open_delivery(OpenDelivery(row.dossier_code), uow, operator, units, now)
            except (ServiceUnavailable, Conflict) as exc:
                log.warning("delivery of %s not opened yet: %s", row.dossier_code, exc.detail)
    metrics.OPERATOR_CALLS_OWED.set(call_operator(uow, operator, now))


@dataclass(frozen=True)
class DossierResolved:
    dossier_code: str
    receiving_unit: str
    resolved_at: datetime


def mark_resolved(tx, cmd: DossierResolved) -> None:
    """The result is ready and goes back by post: remember it (the address may come later)."""
    row = repository.postal_return(tx.session, cmd.dossier_code, for_update=True)
    if row is None:
        repository.put_return(
            tx.session,
            cmd.dossier_code,
            {
                "receiving_unit": cmd.receiving_unit,
                "resolved_at": cmd.resolved_at,
                "updated_at": cmd.resolved_at,
            },
        )
    elif row.resolved_at is None:
        repository.put_return(tx.session, cmd.dossier_code, {"resolved_at": cmd.resolved_at})


@dataclass(frozen=True)
class GiveReturnAddress:
    dossier_code: str
    principal: Principal
    body: dict[str, Any]


def give_return_address(tx, cmd: GiveReturnAddress, units: UnitRegistry, now: datetime) -> None:
    """Where the result goes: changeable until a delivery is opened."""
    unit = cmd.body["receiving_unit"]
    if unit not in units:
        raise ValidationFailed(
            f"receiving_unit: unknown unit code {unit!r}",
            errors=[{"pointer": "/receiving_unit", "detail": "unknown unit code"}],
        )
    if not cmd.principal.covers(units, unit):
        raise Forbidden(f"unit {unit} is outside your jurisdiction")
    row = repository.postal_return(tx.session, cmd.dossier_code, for_update=True)
    if row is not None and row.receiving_unit != unit:
        raise Conflict(
            f"dossier {cmd.dossier_code} is returned through unit {row.receiving_unit}, not {unit}"
        )
    deliveries = [
        s for s in repository.shipments_of(tx.session, cmd.dossier_code) if s.direction == Direction.DELIVERY
    ]
    if not may_change_address(deliveries):
        raise Conflict(
            "the delivery is on its way or done; the address can change again only once it came back"
        )
    values: dict[str, Any] = {"receiving_unit": unit, "given_by": cmd.principal.sub, "updated_at": now}
    recipient = cmd.body.get("recipient")
    if recipient is not None:
        values.update(
            recipient_name=recipient["name"],
            recipient_phone=recipient["phone"],
            recipient_address=recipient["address"],
        )
    if cmd.body.get("result_document") is not None:
        values["result_document"] = cmd.body["result_document"]
    repository.put_return(tx.session, cmd.dossier_code, values)
