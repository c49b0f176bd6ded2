"""In-memory twins of the unit of work and of the repositories, for use-case tests.

They keep the contract of the real ones (shared/uow.py, a service's repository) that the service layer
relies on: what a transaction changes is kept only if it finishes without an error; at commit the events
of every aggregate the transaction loaded or added go to ``published``, collected, numbered and built by
the same :class:`shared.uow.TrackingRepository` code as in production; an Idempotency-Key's answer is
stored with the change. No database, no broker: a use-case test runs in milliseconds.

A service's fake repository subclasses its real one (so its envelopes are the production ones) and
:class:`FakeRepository`, and keeps its rows in ``tx.state.table(name)``: :class:`FakeDossiers` is the
example, :class:`FakeSigningRequests` the esign service's (with its adapters: :class:`FakeDocuments`,
:class:`FakeSignatures`, :func:`render_result`).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from services.dossier.domain.model import Dossier
from services.dossier.lookup import Guesses
from services.dossier.repository import AuditEntry, Dossiers, Search
from services.esign.document import ResultDocument
from services.esign.domain.model import SigningRequest
from services.esign.pades import NotAPdf, SignatureReport
from services.esign.repository import SigningRequests
from services.esign.storage import sha256_hex
from services.metrics.projection import DossierFacts
from services.postal.domain.model import Direction, HandoverRecord, PostalReturn, Shipment
from services.postal.operator import OperatorRejected, OperatorUnavailable, Order, OrderConfirmation
from services.postal.repository import AlreadyStored, HandoverRecords, Repositories, Returns, Shipments
from shared.domain import Aggregate
from shared.events import Event
from shared.units import UnitRegistry
from shared.uow import StoredResponse, TrackingRepository, Transaction
from shared.vocabulary import CLOCK_RUNNING, Channel, ReturnMethod
from shared.workcalendar import WorkingCalendar

A = TypeVar("A", bound=Aggregate)


@dataclass
class Committed:
    """What the fake database holds: the state every committed transaction left.

    ``tables``: a service's rows by table name (``table("dossiers")`` …); ``sequences``: the per-dossier
    counter tables of the repositories that number events there; the rest is the pipeline's."""

    tables: defaultdict[str, dict[Hashable, Any]] = field(default_factory=lambda: defaultdict(dict))
    sequences: dict[tuple[str, str], int] = field(default_factory=dict)
    responses: dict[tuple[str, str], StoredResponse] = field(default_factory=dict)
    delivered: set[tuple[str, str]] = field(default_factory=set)  # the inbox: (consumer, event id)

    def table(self, name: str) -> dict[Hashable, Any]:
        return self.tables[name]

    # The dossier service's tables, by name.
    @property
    def dossiers(self) -> dict[str, Dossier]:
        return self.tables["dossiers"]

    @property
    def counters(self) -> dict[tuple[str, str], int]:
        return self.tables["dossier_code_counters"]

    @property
    def audit(self) -> dict[str, list[AuditEntry]]:
        return self.tables["dossier_audit"]

    @property
    def handovers(self) -> dict[str, list[dict[str, Any]]]:
        return self.tables["dossier_handovers"]


class FakeTransaction(Transaction):
    """A :class:`shared.uow.Transaction` over a copy of the committed state."""

    def __init__(self, state: Committed) -> None:
        super().__init__(session=None, tables=None)  # type: ignore[arg-type]
        self.state = state

    def recall(self, principal: str, key: str) -> StoredResponse | None:
        return self.state.responses.get((principal, key))

    def remember(self, principal: str, key: str, response: StoredResponse) -> None:
        self.state.responses[principal, key] = response

    def first_delivery(self, event: Event, consumer: str) -> bool:
        if (consumer, event.id) in self.state.delivered:
            return False
        self.state.delivered.add((consumer, event.id))
        return True


class FakeUnitOfWork:
    """:class:`shared.uow.UnitOfWorkFactory` in memory; ``published`` is the outbox."""

    def __init__(self) -> None:
        self.state = Committed()
        self.published: list[Event] = []
        self.commits = 0

    @contextmanager
    def transaction(self) -> Iterator[FakeTransaction]:
        tx = FakeTransaction(copy.deepcopy(self.state))
        yield tx  # an exception here leaves state and published as they were: a rollback
        self.published.extend(tx.collect_events())
        self.state = tx.state
        self.commits += 1

    def published_names(self) -> list[str]:
        return [event.name for event in self.published]


class FakeRepository(TrackingRepository[A]):
    """The in-memory half of a fake repository: its transaction's state, and a per-dossier counter
    table kept in ``state.sequences`` for a repository that numbers its events there."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry) -> None:
        TrackingRepository.__init__(self, tx, units)
        self.state = tx.state

    def first_sequence(self, aggregate: A, count: int) -> int:
        if self.sequences is None:
            return super().first_sequence(aggregate, count)
        key = (self.sequences.name, aggregate.subject)
        last = self.state.sequences[key] = self.state.sequences.get(key, 0) + count
        return last - count + 1


class FakeDossiers(FakeRepository[Dossier], Dossiers):
    """:class:`services.dossier.repository.Dossiers` in memory: its envelopes are the real ones."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry, *, actor: str | None) -> None:
        FakeRepository.__init__(self, tx, units)
        self.actor = actor
        self.reason_code: str | None = None

    def get(self, code: str, *, for_update: bool = False) -> Dossier | None:
        dossier = self.seen.get(code) or self.state.dossiers.get(code)
        return None if dossier is None else self.track(dossier)

    def read(self, code: str) -> Dossier | None:
        return self.state.dossiers.get(code)

    def add(self, dossier: Dossier, *, identifier: str, day: date) -> None:
        self.units.routing_path(dossier.receiving_unit)  # an unknown unit fails here, as in SQL
        stamp = day.strftime("%y%m%d")  # a daily sequence per identifier, as in SQL
        number = self.state.counters.get((identifier, stamp), 0) + 1
        self.state.counters[identifier, stamp] = number
        dossier.number(f"{identifier}-{stamp}-{number:04d}")
        self.state.dossiers[dossier.code] = dossier
        self.track(dossier)

    def audit(self, code: str, entry: AuditEntry) -> None:
        self.state.audit.setdefault(code, []).append(entry)

    def audit_trail(self, code: str) -> list[AuditEntry]:
        return list(self.state.audit.get(code, []))

    def handovers(self, code: str) -> list[Any]:
        return [_Row(row) for row in self.state.handovers.get(code, [])]

    def search(self, query: Search, *, now: datetime, offset: int, limit: int) -> tuple[int, list[Dossier]]:
        raise NotImplementedError("search is SQL: tests/integration/test_dossier_api.py covers it")

    def due_for_watch(self, now: datetime, limit: int) -> list[str]:
        due = [
            d
            for d in self.state.dossiers.values()
            if d.status in CLOCK_RUNNING and d.watch_at is not None and d.watch_at <= now
        ]
        return [d.code for d in sorted(due, key=lambda d: d.watch_at)][:limit]

    def postpone_watch(self, code: str, at: datetime) -> None:
        self.state.dossiers[code].watch_at = at

    def store(self, dossier: Dossier) -> None:
        self.state.dossiers[dossier.code] = dossier
        pending, dossier.handovers = list(dossier.handovers), []
        rows = self.state.handovers.setdefault(dossier.code, [])
        rows.extend({**vars(handover), "actor": self.actor} for handover in pending)


class FakeLookups:
    """:class:`services.dossier.lookup_store.Lookups` in memory: a code's :class:`Guesses`."""

    def __init__(self, tx: FakeTransaction) -> None:
        self.rows: dict[str, Guesses] = tx.state.table("dossier_lookups")  # type: ignore[assignment]

    def get(self, code: str) -> Guesses | None:
        return self.rows.get(code)

    def set_secret(self, code: str, secret_hmac: str) -> None:
        self.rows[code] = Guesses(secret_hmac=secret_hmac)

    def failed(self, code: str, *, max_failures: int, until: datetime) -> None:
        row = self.rows.get(code) or Guesses()
        failures = row.failures + 1
        locked = failures >= max_failures
        self.rows[code] = replace(
            row, failures=0 if locked else failures, locked_until=until if locked else None
        )

    def succeeded(self, code: str) -> None:
        if code in self.rows:
            self.rows[code] = replace(self.rows[code], failures=0)


class FakeSigningRequests(FakeRepository[SigningRequest], SigningRequests):
    """:class:`services.esign.repository.SigningRequests` in memory: its envelopes are the real ones,
    numbered per dossier in the fake ``esign_event_sequences``."""

    @property
    def _requests(self) -> dict[Hashable, SigningRequest]:
        return self.state.table("esign_signing_requests")

    def get(self, request_id: str, *, for_update: bool = False) -> SigningRequest | None:
        request = self.seen.get(request_id) or self._requests.get(request_id)
        return None if request is None else self.track(request)

    def by_dossier(self, code: str) -> SigningRequest | None:
        mine = [r for r in self._requests.values() if r.dossier_code == code]
        return self.track(max(mine, key=lambda r: r.created_at)) if mine else None

    def store(self, request: SigningRequest) -> None:
        self._requests[request.id] = request

    def next_document_number(self, issuing_unit: str, year: int) -> int:
        counters = self.state.table("esign_document_counters")
        counters[issuing_unit, year] = counters.get((issuing_unit, year), 0) + 1
        return counters[issuing_unit, year]

    def record_document(
        self, sha256: str, request_id: str, revision: str, size: int, now: datetime, retention: timedelta
    ) -> None:
        row = {"request_id": request_id, "revision": revision, "size": size, "retain_until": now + retention}
        self.state.table("esign_documents").setdefault(sha256, row)

    def is_stored(self, sha256: str) -> bool:
        return sha256 in self.state.table("esign_documents")

    def expired_documents(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self.state.table("esign_documents").items()
        return [str(digest) for digest, row in rows if row["retain_until"] < now][:limit]

    def forget_documents(self, digests: list[str]) -> None:
        for digest in digests:
            self.state.table("esign_documents").pop(digest, None)


class FakeDocuments:
    """The content-addressed document store in memory (services/esign/storage.py ``DocumentStore``)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        self.files[digest] = data
        return digest

    def get(self, digest: str) -> bytes | None:
        return self.files.get(digest)

    def purge(self, digests: Iterable[str]) -> int:
        return sum(self.files.pop(digest, None) is not None for digest in digests)


class FakeSignatures:
    """The signatures without keys or pyHanko (services/esign/pades.py ``PadesSignatures``): each
    appends a line saying who signed, so a revision's bytes (and SHA-256) differ from the one before.
    ``failing``: raise it instead, as an unreachable timestamp authority does."""

    def __init__(self) -> None:
        self.failing: Exception | None = None

    def sign(self, pdf: bytes, *, signer_sub: str, signer_name: str, now: datetime) -> bytes:
        return self._append(pdf, f"signed by {signer_sub} ({signer_name}) at {now.isoformat()}")

    def seal(
        self, pdf: bytes, *, unit: str, unit_name: str, document_number: str, issued_at: datetime
    ) -> bytes:
        return self._append(
            pdf, f"sealed by {unit} ({unit_name}) as {document_number} on {issued_at.isoformat()}"
        )

    def verify(self, pdf: bytes) -> list[SignatureReport]:
        if not pdf.startswith(b"%PDF-"):
            raise NotAPdf("not a PDF: the file does not start with %PDF-")
        return []

    def _append(self, pdf: bytes, line: str) -> bytes:
        if self.failing is not None:
            raise self.failing
        return pdf + f"\n% {line}".encode()


def render_result(result: ResultDocument) -> bytes:
    """A result document's words without fpdf2: what the use case put in it, one line."""
    return f"%PDF-fake {result.dossier_code} {result.decision} {result.reason} {result.series}".encode()


# --- the postal service ------------------------------------------------------------------------


class FakeShipments(FakeRepository[Shipment], Shipments):
    """:class:`services.postal.repository.Shipments` in memory: its numbering and envelopes are the real
    ones (``postal_event_sequences``), its rows ``state.table("postal_shipments")`` and the others."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry) -> None:
        FakeRepository.__init__(self, tx, units)
        self.contacts: dict[str, dict[str, str]] = {}
        self.table = tx.state.table("postal_shipments")

    def _seen(self, shipment: Shipment | None) -> Shipment | None:
        return None if shipment is None else self.track(self.seen.get(shipment.id, shipment))

    def get(self, shipment_id: str, *, for_update: bool = False) -> Shipment | None:
        return self._seen(self.table.get(shipment_id))

    def by_consignment(self, operator: str, consignment: str, *, for_update: bool = False) -> Shipment | None:
        found = [s for s in self.table.values() if (s.operator, s.consignment) == (operator, consignment)]
        return self._seen(found[0] if found else None)

    def of_dossier(self, dossier_code: str) -> list[Shipment]:
        mine = sorted(
            (s for s in self.table.values() if s.dossier_code == dossier_code), key=lambda s: s.created_at
        )
        return [self._seen(s) for s in mine]

    def store(self, shipment: Shipment) -> None:
        self.units.routing_path(shipment.receiving_unit)  # an unknown unit fails here, as in SQL
        if shipment.id in self.contacts:
            self.state.table("postal_contacts")[shipment.id] = self.contacts.pop(shipment.id)
        self.table[shipment.id] = shipment

    def keep_report(self, report: dict[str, Any]) -> None:
        reports = self.state.table("postal_webhooks")
        if (report["operator"], report["webhook_id"]) in reports:
            raise AlreadyStored(report["webhook_id"])
        reports[report["operator"], report["webhook_id"]] = report

    def keep_rejection(self, rejection: dict[str, Any]) -> None:
        rejections = self.state.table("postal_webhook_rejections")
        rejections[len(rejections) + 1] = rejection

    def owe_call(self, shipment_id: str, call: str, now: datetime) -> None:
        calls = self.state.table("postal_operator_calls")
        if (shipment_id, call) not in calls:
            calls[shipment_id, call] = {
                "id": len(calls) + 1,
                "shipment_id": shipment_id,
                "call": call,
                "done": None,
            }

    def owed_calls(self, *, dossier_code: str | None = None, limit: int = 100) -> list[Any]:
        owed = []
        for row in self.state.table("postal_operator_calls").values():
            shipment = self.table[row["shipment_id"]]
            if row["done"] is None and dossier_code in (None, shipment.dossier_code):
                owed.append(
                    _Row(
                        {
                            **row,
                            "consignment": shipment.consignment,
                            "handed_over_at": shipment.handed_over_at,
                        }
                    )
                )
        return sorted(owed, key=lambda row: row.id)[:limit]

    def settle_call(self, call_id: int, *, outcome: str | None, error: str | None, now: datetime) -> None:
        for row in self.state.table("postal_operator_calls").values():
            if row["id"] == call_id and outcome is not None:
                row["done"] = outcome

    def census(self, now: datetime) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        by_status: dict[tuple[str, str], int] = defaultdict(int)
        overdue: dict[str, int] = defaultdict(int)
        for s in self.table.values():
            by_status[s.direction.value, s.status.value] += 1
            if not s.is_final and s.lost_at is None and s.promised_at is not None and s.promised_at < now:
                overdue[s.direction.value] += 1
        return dict(by_status), dict(overdue)


class FakeHandoverRecords(FakeRepository[HandoverRecord], HandoverRecords):
    """:class:`services.postal.repository.HandoverRecords` in memory (``postal_handover_records``)."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry, shipments: FakeShipments) -> None:
        FakeRepository.__init__(self, tx, units)
        self.shipments = shipments
        self.table = tx.state.table("postal_handover_records")

    def get(self, record_id: str, *, for_update: bool = False) -> HandoverRecord | None:
        record = self.seen.get(record_id) or self.table.get(record_id)
        if record is None:
            return None
        for item in record.items:  # one object per shipment in the transaction
            item.shipment = self.shipments._seen(item.shipment)
        return self.track(record)

    def add(self, record: HandoverRecord, *, created_by: str) -> None:
        self.track(record)

    def store(self, record: HandoverRecord) -> None:
        self.table[record.id] = record


class FakeReturns(FakeRepository[PostalReturn], Returns):
    """:class:`services.postal.repository.Returns` in memory (``postal_returns``)."""

    def __init__(self, tx: FakeTransaction, units: UnitRegistry) -> None:
        FakeRepository.__init__(self, tx, units)
        self.table = tx.state.table("postal_returns")

    def get(self, dossier_code: str, *, for_update: bool = False) -> PostalReturn | None:
        found = self.seen.get(dossier_code) or self.table.get(dossier_code)
        return None if found is None else self.track(found)

    def add(self, postal_return: PostalReturn) -> None:
        self.track(postal_return)

    def store(self, postal_return: PostalReturn) -> None:
        self.table[postal_return.dossier_code] = postal_return

    def awaiting_delivery(self, limit: int = 100) -> list[PostalReturn]:
        shipments = self.state.table("postal_shipments").values()
        delivering = {s.dossier_code for s in shipments if s.direction == Direction.DELIVERY}
        waiting = [
            r
            for r in self.table.values()
            if r.resolved_at is not None and r.closed_at is None and r.dossier_code not in delivering
        ]
        return waiting[:limit]


def fake_postal_repositories(tx: FakeTransaction, units: UnitRegistry) -> Repositories:
    """The postal context's ``repositories`` for the fake unit of work."""
    shipments = FakeShipments(tx, units)
    return Repositories(shipments, FakeHandoverRecords(tx, units, shipments), FakeReturns(tx, units))


class FakeOperator:
    """The postal operator's adapter in memory: orders by idempotency key, the calls it took; it can be
    made ``unavailable`` (every call fails, as after its retries) or to refuse a consignment's calls."""

    name = "vnpost"

    def __init__(self) -> None:
        self.orders: dict[str, tuple[Order, OrderConfirmation]] = {}
        self.calls: list[tuple[str, str]] = []
        self.unavailable = False
        self.refused: set[str] = set()

    def _answer(self) -> None:
        if self.unavailable:
            raise OperatorUnavailable("the operator did not answer")

    def create_order(self, order: Order, *, idempotency_key: str) -> OrderConfirmation:
        self._answer()
        if idempotency_key not in self.orders:
            consignment = f"EP{len(self.orders) + 1:09d}VN"
            self.orders[idempotency_key] = (
                order,
                OrderConfirmation(consignment, 25_000, order.packages, None),
            )
        return self.orders[idempotency_key][1]

    def cancel(self, consignment: str) -> None:
        self._call("cancel", consignment)

    def confirm_handover(self, consignment: str, *, handed_over_at: datetime) -> None:
        self._call("handover", consignment)

    def close(self) -> None:
        """Nothing to release: the fake holds no connection."""

    def _call(self, call: str, consignment: str) -> None:
        self._answer()
        if consignment in self.refused:
            raise OperatorRejected(409, f"{consignment} cannot be changed any more")
        self.calls.append((call, consignment))


class FakeRegistrar:
    """The dossier service's registration API in memory: one code per idempotency key."""

    def __init__(self) -> None:
        self.registered: dict[str, dict[str, Any]] = {}

    def register(self, body: dict[str, Any], *, authorization: str, idempotency_key: str) -> str:
        self.registered.setdefault(idempotency_key, body)
        number = list(self.registered).index(idempotency_key) + 1
        return f"000.00.{body['receiving_unit']}-260302-{number:04d}"


class _Row:
    """A stored row, read by attribute as SQLAlchemy rows are."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# --- example data ------------------------------------------------------------------------------

UNITS = UnitRegistry.default()
CALENDAR = WorkingCalendar.from_settings(None)
MONDAY = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Vietnam
UNIT = "26740"  # a commune of Hồ Chí Minh City (79)


@dataclass(frozen=True)
class Step:
    code: str
    name: str
    agency: str
    allotment: str


@dataclass(frozen=True)
class Procedure:
    """A procedure's terms as the lifecycle reads them (the catalogue's Procedure has more)."""

    code: str = "1.001193"
    version: int = 1
    field: str = "civil_status"
    duration: str = "3 working_days"
    online_level: str | None = None
    steps: tuple[Step, ...] = (
        Step("receive", "Tiếp nhận", "receiving_unit", "same_day"),
        Step("appraise", "Thẩm định", "commune", "3 working_days"),
    )


def received_at_counter(code: str, now: datetime = MONDAY) -> Dossier:
    return Dossier.receive_at_counter(
        code=code,
        procedure=Procedure(),
        receiving_unit=UNIT,
        channel=Channel.COUNTER,
        return_method=ReturnMethod.COUNTER,
        applicant={"full_name": "Trần Thị Bình", "id_number": "079203001234"},
        now=now,
        calendar=CALENDAR,
    )


class FakeRatings:
    """:class:`services.metrics.service_layer.Projection` in memory, for rating: facts by code, one
    rating each (the SLA report's tallies are SQL: tests/integration/test_metrics_service.py)."""

    def __init__(self, *facts: DossierFacts) -> None:
        self.by_code = {f.code: f for f in facts}
        self.ratings: dict[str, tuple[str, datetime, str]] = {}

    def facts(self, code: str) -> DossierFacts | None:
        return self.by_code.get(code)

    def add(self, facts: DossierFacts, rating: str, rated_at: datetime, rated_by: str) -> bool:
        if facts.code in self.ratings:
            return False
        self.ratings[facts.code] = (rating, rated_at, rated_by)
        return True
