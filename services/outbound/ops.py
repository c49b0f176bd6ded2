"""The operator's outbound commands, run by ``python -m shared.ops portal-parked | portal-replay |
portal-resync | subscription-notices`` on the service's database (the running service picks the rows up
at its next round)."""

from __future__ import annotations

import json
from datetime import date
from typing import TextIO

from services.outbound import repository, service_layer
from services.outbound.models import pipeline
from shared.db import create_engine
from shared.units import UnitRegistry
from shared.uow import UnitOfWorkFactory
from shared.workcalendar import WorkingCalendar


def _open(database_url: str, units_file: str | None) -> tuple[UnitOfWorkFactory, service_layer.Courier]:
    uow = UnitOfWorkFactory(create_engine(database_url, pool_size=1), pipeline, None, "")
    context = service_layer.Courier(
        units=UnitRegistry.from_settings(units_file), calendar=WorkingCalendar.from_settings(None)
    )
    return uow, context


def parked(database_url: str, units_file: str | None, out: TextIO) -> list[dict]:
    uow, _ = _open(database_url, units_file)
    try:
        with uow.transaction() as tx:
            found = repository.parked(tx.session)
    finally:
        uow.engine.dispose()
    for row in found:
        out.write(
            f"{row['code']} ({row['receiving_unit']}) parked {row['parked_at']:%Y-%m-%d %H:%M:%S} UTC: "
            f"{row['parked_reason']}\n"
        )
    out.write(f"{len(found)} dossier(s) parked\n")
    return found


def replay(database_url: str, units_file: str | None, codes: list[str] | None, out: TextIO) -> list[str]:
    uow, context = _open(database_url, units_file)
    try:
        found = service_layer.replay(service_layer.Replay(tuple(codes) if codes else None), uow, context)
    finally:
        uow.engine.dispose()
    out.write(f"{len(found)} dossier(s) replayed: {', '.join(found) or '-'}\n")
    return found


def resync(
    database_url: str, units_file: str | None, unit: str, first: date, last: date, out: TextIO
) -> list[str]:
    uow, context = _open(database_url, units_file)
    try:
        codes = service_layer.resync(service_layer.Resync(unit, first, last), uow, context)
    finally:
        uow.engine.dispose()
    out.write(f"{len(codes)} dossier(s) of {unit} received {first} to {last} queued for a full re-sync\n")
    return codes


def mail_notices(database_url: str, units_file: str | None, out: TextIO) -> list[dict]:
    """The e-mail notices of dead deliveries not taken yet, one JSON line each (``to``, ``subscription``,
    ``notice``: the notice's JSON), for the operator's mailer; each is taken (marked sent) once."""
    uow, context = _open(database_url, units_file)
    try:
        taken = service_layer.take_mail_notices(uow, context)
    finally:
        uow.engine.dispose()
    for row in taken:
        line = {
            "to": row["contact"],
            "subscription": row["subscription_id"],
            "notice": json.loads(row["body"]),
        }
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return taken
