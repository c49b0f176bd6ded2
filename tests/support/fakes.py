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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from services.dossier.domain.model import Dossier
from services.dossier.repository import AuditEntry, Dossiers, Search
from services.esign.document import ResultDocument
from services.esign.domain.model import SigningRequest
from services.esign.pades import NotAPdf, SignatureReport
from services.esign.repository import SigningRequests
from services.esign.storage import sha256_hex
from services.metrics.projection import DossierFacts
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


class _Row:
    """A stored hand-over row, read by attribute as SQLAlchemy rows are."""

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
