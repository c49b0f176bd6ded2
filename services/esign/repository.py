"""Signing requests in the database, and the unit of work the service layer runs in.

:class:`EsignUnitOfWork` wraps one :class:`shared.uow.Transaction`: it hands out the repository,
remembers every request it loaded or added, and at the end turns their domain events into
``esign.*`` events in the outbox — so no code path can forget one. Their ``sequence`` counts per
dossier, across its signing requests (a refused request and the next one continue one count).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from services.esign import schemas  # noqa: F401 - registers the event catalogue
from services.esign.domain.model import Refused, Sealed, Signed, SigningRequest, Stage
from services.esign.models import document_counters, documents, event_sequences, signing_requests
from shared.events import Event, build_event
from shared.units import UnitRegistry

_COLUMNS = [c.name for c in signing_requests.columns]
# Plain SQL, valid on SQLite (3.35+) and PostgreSQL: one atomic upsert, whose row stays locked to the commit.
_NEXT_DOCUMENT_NUMBER = sa.text(
    f"INSERT INTO {document_counters.name} (issuing_unit, year, last) VALUES (:unit, :year, 1) "
    f"ON CONFLICT (issuing_unit, year) DO UPDATE SET last = {document_counters.name}.last + 1 RETURNING last"
)
_NEXT_SEQUENCES = sa.text(
    f"INSERT INTO {event_sequences.name} (subject, last) VALUES (:subject, :count) "
    f"ON CONFLICT (subject) DO UPDATE SET last = {event_sequences.name}.last + :count RETURNING last"
)


def _to_row(request: SigningRequest) -> dict:
    row = {name: getattr(request, name) for name in _COLUMNS}
    row["stage"] = request.stage.value
    return row


def _from_row(row) -> SigningRequest:
    values = dict(row._mapping)
    values["stage"] = Stage(values["stage"])
    return SigningRequest(**values)


class SqlRequests:
    def __init__(self, session) -> None:
        self.session = session
        self.seen: list[SigningRequest] = []
        self._stored: set[str] = set()

    def _seen(self, request: SigningRequest | None) -> SigningRequest | None:
        if request is not None:
            self.seen.append(request)
            self._stored.add(request.id)
        return request

    def get(self, request_id: str, *, for_update: bool = False) -> SigningRequest | None:
        query = sa.select(signing_requests).where(signing_requests.c.id == request_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.execute(query).first()
        return self._seen(None if row is None else _from_row(row))

    def by_dossier(self, code: str) -> SigningRequest | None:
        row = self.session.execute(
            sa.select(signing_requests)
            .where(signing_requests.c.dossier_code == code)
            .order_by(signing_requests.c.created_at.desc())
            .limit(1)
        ).first()
        return self._seen(None if row is None else _from_row(row))

    def add(self, request: SigningRequest) -> None:
        self.session.execute(signing_requests.insert().values(**_to_row(request)))
        self.seen.append(request)
        self._stored.add(request.id)

    def save(self, request: SigningRequest) -> None:
        self.session.execute(
            signing_requests.update().where(signing_requests.c.id == request.id).values(**_to_row(request))
        )

    def next_document_number(self, issuing_unit: str, year: int) -> int:
        """The next number of ``issuing_unit``'s register of ``year``.

        Concurrent seals of one register wait on its counter row until the first commits; a seal that
        fails rolls its number back with it, so the register has no gap and no number twice.
        """
        return self.session.execute(_NEXT_DOCUMENT_NUMBER, {"unit": issuing_unit, "year": year}).scalar_one()

    def next_sequences(self, dossier_code: str, count: int) -> int:
        """Reserve ``count`` sequence numbers of a dossier's esign events; returns the first."""
        last = self.session.execute(_NEXT_SEQUENCES, {"subject": dossier_code, "count": count}).scalar_one()
        return last - count + 1

    def record_document(
        self, sha256: str, request_id: str, revision: str, size: int, now: datetime, retention: timedelta
    ) -> None:
        exists = self.session.execute(
            sa.select(documents.c.sha256).where(documents.c.sha256 == sha256)
        ).first()
        if exists is None:
            self.session.execute(
                documents.insert().values(
                    sha256=sha256,
                    request_id=request_id,
                    revision=revision,
                    size=size,
                    created_at=now,
                    retain_until=now + retention,
                )
            )

    def document(self, sha256: str):
        return self.session.execute(sa.select(documents).where(documents.c.sha256 == sha256)).first()

    def expired_documents(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self.session.execute(
            sa.select(documents.c.sha256).where(documents.c.retain_until < now).limit(limit)
        )
        return [r.sha256 for r in rows]

    def forget_documents(self, digests: list[str]) -> None:
        if digests:
            self.session.execute(documents.delete().where(documents.c.sha256.in_(digests)))


_ROLES = {Signed: "leader", Sealed: "clerk", Refused: "leader"}
_NAMES = {Signed: "signed", Sealed: "sealed", Refused: "refused"}


def messages(request: SigningRequest, units: UnitRegistry, first: int) -> list[Event]:
    """The request's pending domain events as envelopes, numbered from ``first`` (its dossier's count)."""
    pending, request.events = list(request.events), []
    out = []
    for offset, event in enumerate(pending):
        data = {
            "code": request.dossier_code,
            "request_id": request.id,
            "receiving_unit": request.receiving_unit,
            "handling_unit": request.handling_unit,
            "issuing_unit": request.issuing_unit,
            "signer_sub": event.signer_sub,
            "signer_name": event.signer_name,
            "signer_role": _ROLES[type(event)],
            "occurred_at": event.at,
        }
        if isinstance(event, Refused):
            # The leader's words stay behind the API (GET the request); the bus gets a code and a flag.
            data["reason_code"] = event.reason_code
            data["has_reason_text"] = bool(event.reason)
        else:
            data["document_sha256"] = event.document_sha256
        if isinstance(event, Sealed):
            # The number is given when the document is issued, at the seal.
            data["document_number"] = request.document_number
        out.append(
            build_event(
                "esign",
                _NAMES[type(event)],
                subject=request.dossier_code,
                data=data,
                unit_path=units.routing_path(request.receiving_unit),
                handling_unit_path=units.routing_path(request.handling_unit),
                sequence=first + offset,
            )
        )
    return out


class EsignUnitOfWork:
    """One transaction of the e-signature service: ``requests`` to load and store, events collected."""

    def __init__(self, tx, units: UnitRegistry) -> None:
        self.tx = tx
        self.units = units
        self.requests = SqlRequests(tx.session)

    def first_delivery(self, event: Event, consumer: str) -> bool:
        return self.tx.first_delivery(event, consumer)

    def collect(self) -> None:
        """Move every seen request's domain events to the outbox (called before the commit)."""
        for request in self.requests.seen:
            if request.events:
                first = self.requests.next_sequences(request.dossier_code, len(request.events))
                self.tx.emit(*messages(request, self.units, first))
