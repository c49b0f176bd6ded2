"""Signing requests in the database: :class:`SigningRequests`, the esign service's repository.

A :class:`shared.uow.TrackingRepository`: every request it loads or adds is tracked, and at commit its
recorded events become ``esign.*`` events in the outbox (shared/uow.py), then the request is written
(:meth:`SigningRequests.store`) — so no code path can forget one. Their ``sequence`` counts per
dossier in ``esign_event_sequences``, across its signing requests (a refused request and the next one
continue one count). The issuing units' registers and the document revisions are here too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.esign import schemas  # noqa: F401 - registers the event catalogue
from services.esign.domain.model import SigningRequest, Stage
from services.esign.models import document_counters, documents, event_sequences, signing_requests
from shared.units import UnitRegistry
from shared.uow import TrackingRepository, Transaction

_COLUMNS = [c.name for c in signing_requests.columns]
# Plain SQL, valid on SQLite (3.35+) and PostgreSQL: one atomic upsert, whose row stays locked to the commit.
_NEXT_DOCUMENT_NUMBER = sa.text(
    f"INSERT INTO {document_counters.name} (issuing_unit, year, last) VALUES (:unit, :year, 1) "
    f"ON CONFLICT (issuing_unit, year) DO UPDATE SET last = {document_counters.name}.last + 1 RETURNING last"
)


def _to_row(request: SigningRequest) -> dict[str, Any]:
    row = {name: getattr(request, name) for name in _COLUMNS}
    row["stage"] = request.stage.value
    return row


def _from_row(row) -> SigningRequest:
    values = dict(row._mapping)
    values["stage"] = Stage(values["stage"])
    return SigningRequest(**values)


class SigningRequests(TrackingRepository[SigningRequest]):
    """The signing requests of one transaction; what they record is published at its commit."""

    sequences = event_sequences  # several requests of one dossier share its count

    def __init__(self, tx: Transaction, units: UnitRegistry) -> None:
        super().__init__(tx, units)
        self._rows: dict[str, dict[str, Any]] = {}  # each tracked request's row as last read or written

    def identity(self, request: SigningRequest) -> str:
        return request.id

    def _loaded(self, row) -> SigningRequest | None:
        if row is None:
            return None
        request = _from_row(row)
        self._rows.setdefault(request.id, _to_row(request))
        return self.track(request)

    def get(self, request_id: str, *, for_update: bool = False) -> SigningRequest | None:
        query = sa.select(signing_requests).where(signing_requests.c.id == request_id)
        if for_update:
            query = query.with_for_update()
        return self._loaded(self.session.execute(query).first())

    def by_dossier(self, code: str) -> SigningRequest | None:
        """The dossier's latest request."""
        row = self.session.execute(
            sa.select(signing_requests)
            .where(signing_requests.c.dossier_code == code)
            .order_by(signing_requests.c.created_at.desc())
            .limit(1)
        ).first()
        return self._loaded(row)

    def add(self, request: SigningRequest) -> None:
        self.track(request)

    def store(self, request: SigningRequest) -> None:
        row, before = _to_row(request), self._rows.get(request.id)
        if before is None:
            self.session.execute(signing_requests.insert().values(**row))
        elif row != before:
            self.session.execute(
                signing_requests.update().where(signing_requests.c.id == request.id).values(**row)
            )
        self._rows[request.id] = row

    def next_document_number(self, issuing_unit: str, year: int) -> int:
        """The next number of ``issuing_unit``'s register of ``year``.

        Concurrent seals of one register wait on its counter row until the first commits; a seal that
        fails rolls its number back with it, so the register has no gap and no number twice.
        """
        return self.session.execute(_NEXT_DOCUMENT_NUMBER, {"unit": issuing_unit, "year": year}).scalar_one()

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

    def is_stored(self, sha256: str) -> bool:
        """Is ``sha256`` a revision this service issued (and still keeps)?"""
        found = self.session.execute(sa.select(documents.c.sha256).where(documents.c.sha256 == sha256))
        return found.first() is not None

    def expired_documents(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self.session.execute(
            sa.select(documents.c.sha256).where(documents.c.retain_until < now).limit(limit)
        )
        return [r.sha256 for r in rows]

    def forget_documents(self, digests: list[str]) -> None:
        if digests:
            self.session.execute(documents.delete().where(documents.c.sha256.in_(digests)))
