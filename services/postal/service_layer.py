"""The postal service's use cases: plain functions ``(command, uow, context)``, called by thin entrypoints.

Each takes a command (what was asked, and who asks), the unit of work (a transaction the entrypoint
opened, or the factory when the use case opens its own) and a :class:`PostalContext` (the unit map,
the calendar, the clock, the operator, the dossier service, the webhook verifier, the repositories).
The rules live on the aggregates (:mod:`services.postal.domain.model`); what they record is published
at commit by the repositories (shared/uow.py). Errors are the domain's (shared/domain.py), answered
in one place (shared/http.py); the operator's own failures are :mod:`services.postal.operator`'s.

Calls to the operator happen outside any transaction, with idempotency keys derived from the
shipment's id, so a retry — of the call, of the request or of a consumed event — repeats nothing.
``tests/unit/test_postal_service_layer.py`` runs each of these on the in-memory unit of work.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from services.postal import metrics
from services.postal.domain.model import (
    SIDES,
    DeliveryPlan,
    Direction,
    HandoverRecord,
    ItemOutcome,
    PostalReturn,
    Report,
    Shipment,
    ShipmentStatus,
    TrackingOutcome,
)
from services.postal.domain.tracking import is_lost, map_status
from services.postal.operator import Contact, OperatorAdapter, OperatorRejected, OperatorUnavailable, Order
from services.postal.repository import AlreadyStored, Repositories
from services.postal.webhooks import WebhookRejected, WebhookVerifier
from shared.auth import Principal
from shared.domain import Conflict, Forbidden, Invalid, NotFound
from shared.uow import Transaction
from shared.usecase import Context, UnitOfWork

log = logging.getLogger(__name__)
IDS = uuid.UUID("5b0c3f2e-6d1a-4c51-9a7e-2f1d7c9e4b10")  # namespace of the derived shipment ids
CANCEL_CALL, HANDOVER_CALL = "cancel", "handover"
DOSSIER_ENDINGS = {"withdrawn": "dossier_withdrawn", "refused": "dossier_refused"}


class Registrar(Protocol):
    """Files a picked-up dossier with the dossier service (services/postal/dossier_client.py)."""

    def register(self, body: dict[str, Any], *, authorization: str, idempotency_key: str) -> str: ...


@dataclass(frozen=True, kw_only=True)
class PostalContext(Context):
    """The postal service's use-case context (shared/usecase.py): besides the unit map, the working
    calendar and the clock, the operator, the dossier service, the webhook verifier, and the
    repositories of a transaction (the fakes' in tests)."""

    operator: OperatorAdapter
    dossiers: Registrar
    verifier: WebhookVerifier | None = None
    repositories: Callable[[Transaction, Any], Repositories] = Repositories.of

    def open(self, tx: Transaction) -> Repositories:
        """The repositories of ``tx``: what they load or add is stored, and published, at commit."""
        return self.repositories(tx, self.units)


def derived_id(*parts: str) -> str:
    """A stable id from what identifies a request, so a retried request finds its first result."""
    return str(uuid.uuid5(IDS, "\n".join(parts)))


def _order(operator: OperatorAdapter, order: Order):
    """Place an order; the operator's refusal is a conflict, its silence stays OperatorUnavailable."""
    try:
        return operator.create_order(order, idempotency_key=order.reference)
    except OperatorRejected as exc:
        raise Conflict(f"the postal operator refused the order: {exc.detail}") from exc


# --- the operator's webhooks -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveWebhook:
    operator: str
    raw_body: bytes
    headers: Mapping[str, str]
    remote_addr: str | None = None


def verify_webhook(cmd: ReceiveWebhook, uow: UnitOfWork, context: PostalContext) -> None:
    """docs/contracts.md §3: a delivery from an operator this service knows, signed with one of its
    active secrets, fresh. A refused one is kept (``postal_webhook_rejections``) and counted, and
    :class:`WebhookRejected` raised; NotFound for an operator that sends no webhooks here."""
    if context.verifier is None or not context.verifier.knows(cmd.operator):
        raise NotFound(f"no postal operator {cmd.operator!r} sends webhooks here")
    try:
        context.verifier.verify(cmd.operator, cmd.raw_body, cmd.headers)
    except WebhookRejected as exc:
        headers = {
            k.lower(): v
            for k, v in cmd.headers.items()
            if k.lower().startswith("webhook-")
            or k.lower() in ("user-agent", "content-type", "x-forwarded-for")
        }
        with uow.transaction() as tx:
            context.open(tx).shipments.keep_rejection(
                {
                    "operator": cmd.operator,
                    "webhook_id": (headers.get("webhook-id") or "")[:200] or None,
                    "received_at": context.clock(),
                    "reason": exc.reason,
                    "remote_addr": cmd.remote_addr,
                    "headers": headers,
                    "body": cmd.raw_body.decode("utf-8", errors="replace"),
                }
            )
        metrics.WEBHOOK_VERIFICATION_FAILURES.labels(cmd.operator, exc.reason).inc()
        log.warning("webhook from %s refused (%s): %s", cmd.operator, exc.reason, exc.detail)
        raise


@dataclass(frozen=True)
class ApplyReport:
    """A verified tracking report (its body parsed by TrackingWebhookSchema)."""

    operator: str
    webhook_id: str
    report: dict[str, Any]
    raw_body: str


@dataclass(frozen=True)
class WebhookReceipt:
    webhook_id: str
    outcome: str  # a TrackingOutcome, or "duplicate"
    shipment_status: str | None = None


def apply_report(cmd: ApplyReport, uow: UnitOfWork, context: PostalContext) -> WebhookReceipt:
    """Store the report and apply it to its shipment in one transaction, before the operator's 2xx.

    The report's row is inserted before the shipment is stored (at commit): a ``webhook-id`` seen
    before fails that insert, and the whole transaction, whatever it did, is rolled back. NotFound for
    a consignment this service never ordered.
    """
    report = cmd.report
    try:
        with uow.transaction() as tx:
            shipments = context.open(tx).shipments
            shipment = shipments.by_consignment(cmd.operator, report["consignment"], for_update=True)
            if shipment is None:
                raise NotFound(f"no consignment {report['consignment']} of {cmd.operator} is known here")
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
            shipments.keep_report(
                {
                    "operator": cmd.operator,
                    "webhook_id": cmd.webhook_id,
                    "received_at": context.clock(),
                    "shipment_id": shipment.id,
                    "operator_status": report["status"],
                    "status": None if mapped is None else mapped.value,  # as reported, mapped
                    "occurred_at": report["occurred_at"],
                    "outcome": outcome.value,
                    "body": cmd.raw_body,
                }
            )
    except AlreadyStored:
        metrics.WEBHOOKS.labels(cmd.operator, "duplicate").inc()
        return WebhookReceipt(cmd.webhook_id, "duplicate")
    _observe(cmd, shipment, outcome, context)
    return WebhookReceipt(cmd.webhook_id, outcome.value, shipment.status.value)


def _observe(cmd: ApplyReport, shipment: Shipment, outcome: TrackingOutcome, context: PostalContext) -> None:
    """Count what a report did; alert on a loss, a report before the hand-over, an unknown status."""
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
            cmd.report["status"],
            shipment.consignment,
            shipment.dossier_code,
        )
    if outcome == TrackingOutcome.UNKNOWN_STATUS:
        metrics.UNKNOWN_STATUSES.labels(cmd.operator).inc()
        log.warning(
            "%s reported unknown status %r for %s; stored, no movement",
            cmd.operator,
            cmd.report["status"],
            shipment.consignment,
        )
    if outcome == TrackingOutcome.APPLIED and shipment.status == ShipmentStatus.DELIVERED:
        start = (
            shipment.handed_over_at
            if shipment.direction == Direction.DELIVERY and shipment.handed_over_at
            else shipment.created_at
        )
        metrics.DELIVERY_WORKING_SECONDS.labels(shipment.direction.value).observe(
            context.calendar.working_time_between(start, shipment.delivered_at).total_seconds()
        )


# --- pickups ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPickup:
    shipment_id: str
    principal: Principal
    authorization: str
    body: dict[str, Any]


@dataclass(frozen=True)
class PreparedPickup:
    """A pickup the dossier service registered and the operator accepted, to be stored."""

    command: RequestPickup
    dossier_code: str
    confirmation: Any


def order_pickup(cmd: RequestPickup, context: PostalContext) -> PreparedPickup:
    """Register the dossier (status 1, channel postal) and place the operator's order, both idempotent
    and outside any transaction; :func:`store_pickup` then records them (under the Idempotency-Key)."""
    body = cmd.body
    unit = body["receiving_unit"]
    if unit not in context.units:
        raise Invalid("receiving_unit", f"unknown unit code {unit!r}")
    pickup = body["pickup"]
    applicant = {**body["applicant"], "address": pickup["address"]}
    applicant.setdefault("phone", pickup["phone"])
    code = context.dossiers.register(
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
    return PreparedPickup(cmd, code, _order(context.operator, order))


def store_pickup(prepared: PreparedPickup, tx: Transaction, context: PostalContext) -> Shipment:
    """The pickup shipment (``ordered``) and, for a result returned by post, where it goes."""
    cmd, body, confirmation = prepared.command, prepared.command.body, prepared.confirmation
    store = context.open(tx)
    existing = store.shipments.get(cmd.shipment_id)
    if existing is not None:
        return existing
    shipment = Shipment.order(
        id=cmd.shipment_id,
        dossier_code=prepared.dossier_code,
        direction=Direction.PICKUP,
        operator=context.operator.name,
        consignment=confirmation.consignment,
        receiving_unit=body["receiving_unit"],
        packages=confirmation.packages,
        fee_vnd=confirmation.fee_vnd,
        charged_to="applicant",
        created_at=context.clock(),
        promised_at=confirmation.promised_at,
    )
    store.shipments.add(shipment, contact=body["pickup"])
    if body["return_method"] == "postal":
        postal_return = store.returns.get(prepared.dossier_code)
        if postal_return is None:
            postal_return = PostalReturn(
                dossier_code=prepared.dossier_code,
                receiving_unit=body["receiving_unit"],
                updated_at=context.clock(),
            )
            store.returns.add(postal_return)
        postal_return.receiving_unit = body["receiving_unit"]
        postal_return.address(
            given_by=cmd.principal.sub, now=context.clock(), recipient=body["return_to"] or body["pickup"]
        )
    return shipment


@dataclass(frozen=True)
class ReadShipments:
    principal: Principal
    dossier_code: str


def dossier_shipments(cmd: ReadShipments, tx: Transaction, context: PostalContext) -> list[Shipment]:
    """A dossier's shipments the caller's jurisdiction covers, both directions, oldest first."""
    found = context.open(tx).shipments.of_dossier(cmd.dossier_code)
    visible = [s for s in found if cmd.principal.covers(context.units, s.receiving_unit)]
    if not visible:
        raise NotFound(f"no shipments of dossier {cmd.dossier_code}")
    return visible


# --- hand-over records ------------------------------------------------------------------------------------


def _side(principal: Principal) -> str:
    sides = {side for role, side in SIDES.items() if principal.has_role(role)}
    if len(sides) != 1:
        raise Forbidden(
            "a hand-over record is signed by two parties: use a token with exactly one of the roles "
            "postal_operator, desk_officer"
        )
    return sides.pop()


@dataclass(frozen=True)
class DrawUpRecord:
    principal: Principal
    body: dict[str, Any]


def draw_up_record(cmd: DrawUpRecord, tx: Transaction, context: PostalContext) -> HandoverRecord:
    """List the consignments on the counter with the packages counted (discrepancies are kept)."""
    _side(cmd.principal)
    unit = cmd.body["receiving_unit"]
    cmd.principal.require_jurisdiction(context.units, unit, field="receiving_unit")
    store = context.open(tx)
    counted = []
    for index, item in enumerate(cmd.body["items"]):
        shipment = store.shipments.by_consignment(context.operator.name, item["consignment"], for_update=True)
        if shipment is None:
            raise Invalid(f"items/{index}/consignment", f"no consignment {item['consignment']}")
        counted.append((shipment, item["packages_counted"]))
    record = HandoverRecord.draw_up(
        id=str(uuid.uuid4()),
        direction=Direction(cmd.body["direction"]),
        receiving_unit=unit,
        counted=counted,
        now=context.clock(),
    )
    store.records.add(record, created_by=cmd.principal.sub)
    return record


@dataclass(frozen=True)
class ReadRecord:
    principal: Principal
    record_id: str


def read_record(cmd: ReadRecord, tx: Transaction, context: PostalContext) -> HandoverRecord:
    """A record the caller's jurisdiction covers (any other is not found)."""
    return _readable(context.open(tx), cmd, context)


def _readable(
    store: Repositories, cmd: ReadRecord, context: PostalContext, *, for_update: bool = False
) -> HandoverRecord:
    record = store.records.get(cmd.record_id, for_update=for_update)
    if record is None or not cmd.principal.covers(context.units, record.receiving_unit):
        raise NotFound(f"no hand-over record {cmd.record_id}")
    return record


@dataclass(frozen=True)
class SignRecord:
    principal: Principal
    record_id: str
    body: dict[str, Any]


def sign_record(cmd: SignRecord, tx: Transaction, context: PostalContext) -> HandoverRecord:
    """One side signs; the second signature fixes the record and hands each consignment over (a
    delivery's hand-over is owed to the operator: :func:`call_operator` makes it)."""
    side = _side(cmd.principal)
    store = context.open(tx)
    record = _readable(store, ReadRecord(cmd.principal, cmd.record_id), context, for_update=True)
    other = record.desk_signed_by if side == "operator" else record.operator_signed_by
    if other == cmd.principal.sub:
        raise Conflict("the two signatures of a hand-over record must come from two people")
    decisions = {
        d["consignment"]: (ItemOutcome(d["outcome"]), d["reason"], d["reason_code"])
        for d in cmd.body["decisions"]
    }
    if side == "operator" and decisions:
        raise Invalid("decisions", "only the desk decides on the dossiers")
    now = context.clock()
    complete = record.sign(
        side=side, signer=cmd.principal.sub, now=now, decisions=decisions if side == "desk" else None
    )
    if complete and record.direction == Direction.DELIVERY:
        for item in record.items:
            store.shipments.owe_call(item.shipment.id, HANDOVER_CALL, now)
    return record


# --- calls owed to the operator -------------------------------------------------------------------------


@dataclass(frozen=True)
class CallOperator:
    dossier_code: str | None = None  # one dossier's calls; None: all that are owed


def call_operator(cmd: CallOperator, uow: UnitOfWork, context: PostalContext) -> int:
    """Make the calls owed to the operator; a failed one stays owed for the watch.

    A cancel the operator refuses (the order is delivered already, or unknown to it) is settled: there is
    nothing left to cancel, and its tracking says what happened. Returns how many are still owed.
    """
    operator = context.operator
    with uow.transaction() as tx:
        owed = context.open(tx).shipments.owed_calls(dossier_code=cmd.dossier_code)
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
            context.open(tx).shipments.settle_call(call.id, outcome=outcome, error=error, now=context.clock())
    with uow.transaction() as tx:
        return len(context.open(tx).shipments.owed_calls(dossier_code=cmd.dossier_code))


@dataclass(frozen=True)
class DossierEnded:
    """A final dossier event: withdrawn, refused, or returned (at the counter)."""

    dossier_code: str
    reason: str
    ended_at: datetime


def dossier_ended(cmd: DossierEnded, tx: Transaction, context: PostalContext) -> int:
    """Cancel at the operator whatever still runs for a dossier that ended; no delivery opens after.

    Idempotent: a shipment asked to cancel once is not asked again. Returns how many were asked now.
    """
    store = context.open(tx)
    postal_return = store.returns.get(cmd.dossier_code, for_update=True)
    if postal_return is not None:
        postal_return.close(cmd.ended_at)
    asked = 0
    for shipment in store.shipments.of_dossier(cmd.dossier_code):
        if shipment.request_cancel(cmd.reason):
            store.shipments.owe_call(shipment.id, CANCEL_CALL, cmd.ended_at)
            asked += 1
    return asked


# --- returns by post -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDelivery:
    dossier_code: str
    again: bool = False  # a new delivery after the last came back (returned, lost, cancelled)
    cause: str | None = None  # why it goes again: decides who pays
    recipient: dict[str, str] | None = None  # a corrected recipient and address for the new delivery


def _deliveries(store: Repositories, dossier_code: str) -> list[Shipment]:
    return [s for s in store.shipments.of_dossier(dossier_code) if s.direction == Direction.DELIVERY]


def open_delivery(cmd: OpenDelivery, uow: UnitOfWork, context: PostalContext) -> Shipment | None:
    """Open the delivery of a resolved dossier's result when its recipient is known; idempotent.

    None when the result is not ready or nobody gave the address yet; the existing delivery when one is
    open. The operator's order is placed between two transactions (OperatorUnavailable: not now).
    """
    with uow.transaction() as tx:
        store = context.open(tx)
        postal_return = store.returns.get(cmd.dossier_code, for_update=True)
        if postal_return is None:
            return None
        deliveries = _deliveries(store, cmd.dossier_code)
        plan = postal_return.next_delivery(
            deliveries,
            shipment_id=derived_id(cmd.dossier_code, "delivery", str(len(deliveries) + 1)),
            now=context.clock(),
            again=cmd.again,
            cause=cmd.cause,
            recipient=cmd.recipient,
        )
    if not isinstance(plan, DeliveryPlan):
        return plan
    confirmation = _order(
        context.operator,
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
            shipments = context.open(tx).shipments
            existing = shipments.get(plan.shipment_id)
            if existing is not None:
                return existing
            shipment = Shipment.order(
                id=plan.shipment_id,
                dossier_code=cmd.dossier_code,
                direction=Direction.DELIVERY,
                operator=context.operator.name,
                consignment=confirmation.consignment,
                receiving_unit=plan.receiving_unit,
                packages=confirmation.packages,
                fee_vnd=confirmation.fee_vnd,
                charged_to=plan.charged_to,
                redelivery_cause=plan.cause,
                created_at=context.clock(),
                promised_at=confirmation.promised_at,
                result_document=plan.result_document,
            )
            shipments.add(shipment, contact=plan.recipient)
            return shipment
    except sa.exc.IntegrityError:
        with uow.transaction() as tx:  # opened at the same moment by the other path (event, API, watch)
            return context.open(tx).shipments.get(plan.shipment_id)


@dataclass(frozen=True)
class DeliverAgain:
    principal: Principal
    dossier_code: str
    cause: str
    recipient: dict[str, str] | None = None


def deliver_again(cmd: DeliverAgain, uow: UnitOfWork, context: PostalContext) -> Shipment:
    """After the last delivery came back, the desk sends the result again (to a corrected address, if
    given); the cause is recorded and the fee goes to whoever caused it."""
    with uow.transaction() as tx:
        postal_return = context.open(tx).returns.get(cmd.dossier_code)
    if postal_return is None or not cmd.principal.covers(context.units, postal_return.receiving_unit):
        raise NotFound(f"dossier {cmd.dossier_code} has no return by post")
    shipment = open_delivery(
        OpenDelivery(cmd.dossier_code, again=True, cause=cmd.cause, recipient=cmd.recipient), uow, context
    )
    if shipment is None:
        raise Conflict(f"the result of dossier {cmd.dossier_code} is not ready to go by post")
    return shipment


@dataclass(frozen=True)
class Watch:
    """The timer's round: gauges, stuck shipments, deliveries an outage left unopened, owed calls."""


def watch(cmd: Watch, uow: UnitOfWork, context: PostalContext) -> None:
    """Refresh the shipment gauges, flag stuck shipments, and open deliveries an outage left unopened."""
    with uow.transaction() as tx:
        store = context.open(tx)
        by_status, overdue = store.shipments.census(context.clock())
        waiting = store.returns.awaiting_delivery()
    for direction in Direction:
        for status in ShipmentStatus:  # every pair, so a status nobody is in any more reads 0
            metrics.SHIPMENTS.labels(direction.value, status.value).set(
                by_status.get((direction.value, status.value), 0)
            )
        metrics.SHIPMENTS_OVERDUE.labels(direction.value).set(overdue.get(direction.value, 0))
    metrics.RETURNS_AWAITING_ADDRESS.set(sum(1 for r in waiting if r.recipient is None))
    for postal_return in waiting:
        if postal_return.recipient is not None:
            try:
                open_delivery(OpenDelivery(postal_return.dossier_code), uow, context)
            except (OperatorUnavailable, Conflict) as exc:
                log.warning("delivery of %s not opened yet: %s", postal_return.dossier_code, exc)
    metrics.OPERATOR_CALLS_OWED.set(call_operator(CallOperator(), uow, context))


@dataclass(frozen=True)
class DossierResolved:
    dossier_code: str
    receiving_unit: str
    resolved_at: datetime


def mark_resolved(cmd: DossierResolved, tx: Transaction, context: PostalContext) -> None:
    """The result is ready and goes back by post: remember it (the address may come later)."""
    returns = context.open(tx).returns
    postal_return = returns.get(cmd.dossier_code, for_update=True)
    if postal_return is None:
        returns.add(PostalReturn.resolved(cmd.dossier_code, cmd.receiving_unit, cmd.resolved_at))
    else:
        postal_return.resolve(cmd.resolved_at)


@dataclass(frozen=True)
class GiveReturnAddress:
    dossier_code: str
    principal: Principal
    body: dict[str, Any]


def give_return_address(cmd: GiveReturnAddress, tx: Transaction, context: PostalContext) -> PostalReturn:
    """Where the result goes: changeable until a delivery is under way, and again once it came back."""
    unit = cmd.body["receiving_unit"]
    cmd.principal.require_jurisdiction(context.units, unit, field="receiving_unit")
    store = context.open(tx)
    postal_return = store.returns.get(cmd.dossier_code, for_update=True)
    if postal_return is None:
        postal_return = PostalReturn(
            dossier_code=cmd.dossier_code, receiving_unit=unit, updated_at=context.clock()
        )
        store.returns.add(postal_return)
    postal_return.give(
        unit=unit,
        deliveries=_deliveries(store, cmd.dossier_code),
        given_by=cmd.principal.sub,
        now=context.clock(),
        recipient=cmd.body.get("recipient"),
        result_document=cmd.body.get("result_document"),
    )
    return postal_return


@dataclass(frozen=True)
class ReadReturn:
    principal: Principal
    dossier_code: str


@dataclass(frozen=True)
class ReturnState:
    postal_return: PostalReturn
    delivery: Shipment | None  # the last delivery, if any


def read_return(cmd: ReadReturn, tx: Transaction, context: PostalContext) -> ReturnState:
    """A dossier's return by post as the caller's jurisdiction may see it (any other is not found)."""
    store = context.open(tx)
    postal_return = store.returns.get(cmd.dossier_code)
    if postal_return is None or not cmd.principal.covers(context.units, postal_return.receiving_unit):
        raise NotFound(f"dossier {cmd.dossier_code} has no return by post")
    deliveries = _deliveries(store, cmd.dossier_code)
    return ReturnState(postal_return, deliveries[-1] if deliveries else None)
