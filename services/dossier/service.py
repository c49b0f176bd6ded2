"""The dossier service's entrypoints: parse, check who may act, call the domain, respond.

Where a dossier's life is decided: :mod:`services.dossier.domain.model`.
Where its events leave: the outbox of :class:`shared.uow.UnitOfWork`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.dossier import repository
from services.dossier.catalogue import Catalogue, UnknownProcedure
from services.dossier.domain.model import Channel, DomainError, Dossier, ReturnMethod
from services.dossier.events import collect
from services.dossier.models import SERVICE, pipeline
from services.dossier.openapi import document as openapi_document
from services.dossier.schemas import (
    CHANNELS,
    RETURN_METHODS,
    DossierSchema,
    ReceiptRequestSchema,
)
from shared.auth import Auth
from shared.http import api, idempotent, read_json
from shared.operations import OperationalEndpoints
from shared.problems import Conflict, Forbidden, NotFound, ValidationFailed
from shared.providers import Calendar, Units
from shared.uow import UnitOfWork
from shared.workcalendar import Duration

CATALOGUE = Catalogue.load()


def _field_error(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"pointer": pointer, "detail": detail}])


class DossierService(OperationalEndpoints):
    name = SERVICE
    openapi_document = staticmethod(openapi_document)

    uow = UnitOfWork(pipeline)
    auth = Auth()
    units = Units()
    calendar = Calendar()

    @api("POST", "/api/v1/dossiers")
    def receive(self, request):
        """Receive a dossier at the desk: code, appointment, ``dossier.received``."""
        principal = self.auth.principal(request)
        principal.require_role("desk_officer")
        body = read_json(request, ReceiptRequestSchema())
        unit_code = body["receiving_unit"]
        if unit_code not in self.units:
            raise _field_error("/receiving_unit", f"unknown unit code {unit_code!r}")
        if not principal.covers(self.units, unit_code):
            raise Forbidden(f"unit {unit_code} is outside your jurisdiction")
        now = datetime.now(UTC)
        try:
            procedure = CATALOGUE.get(body["procedure_code"], at=now)
        except UnknownProcedure as exc:
            raise _field_error("/procedure_code", str(exc.args[0])) from exc
        if body["channel"] not in procedure.channels:
            raise _field_error(
                "/channel", f"procedure {procedure.code} is not offered through channel {body['channel']!r}"
            )
        if body["return_method"] == "postal" and not procedure.postal_return:
            raise _field_error(
                "/return_method", f"procedure {procedure.code} does not return results by post"
            )
        unit = self.units.get(unit_code)
        deadline = self.calendar.deadline(now, Duration.parse(procedure.duration))
        local_day = now.astimezone(self.calendar.timezone).date()

        def change(tx):
            code = repository.next_dossier_code(
                tx.session, unit=unit.code, identifier=unit.identifier, day=local_day
            )
            try:
                dossier = Dossier.receive(
                    code=code,
                    procedure_code=procedure.code,
                    procedure_version=procedure.version,
                    procedure_field=procedure.field,
                    receiving_unit=unit.code,
                    handling_unit=unit.code,
                    channel=Channel(CHANNELS[body["channel"]]),
                    return_method=ReturnMethod(RETURN_METHODS[body["return_method"]]),
                    received_at=now,
                    due_at=deadline,
                    applicant=body["applicant"],
                )
            except DomainError as exc:
                raise Conflict(str(exc)) from exc
            repository.add(tx.session, dossier)
            tx.emit(*collect(dossier, self.units))
            return 201, DossierSchema().dump(dossier), {"Location": f"/api/v1/dossiers/{code}"}

        return idempotent(self.uow, principal.sub, request, change)

    @api("GET", "/api/v1/dossiers/<string:code>")
    def get_dossier(self, request, code):
        principal = self.auth.principal(request)
        with self.uow.transaction() as tx:
            dossier = repository.get(tx.session, code)
            # Outside the caller's jurisdiction a dossier does not exist (CONTRACTS §2).
            if dossier is None or not (
                principal.covers(self.units, dossier.receiving_unit)
                or principal.covers(self.units, dossier.handling_unit)
            ):
                raise NotFound(f"no dossier {code}")
            return DossierSchema().dump(dossier)
