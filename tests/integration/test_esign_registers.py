"""The issuing unit's register and the esign events' sequence, on both databases (issue 17).

The rules, as the lead wrote them: a result document is numbered when it is issued — at the seal, by
the clerk — in its issuing unit's register of the Vietnam-local year, 01, 02, … from 1 January; two
seals at the same moment get two numbers, never one, and the register has no gap. The ``sequence`` of
the esign events counts per dossier, across its signing requests: a refusal and the next request
continue one count. Expected values are written out by hand.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.esign import service_layer
from services.esign.dependencies import build_context
from services.esign.document import ResultDocument, render_result
from services.esign.models import pipeline, signing_requests
from services.esign.repository import SigningRequests
from services.esign.service_layer import Confirm, Decided, EsignContext, Refuse
from shared.auth import Principal
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.uow import UnitOfWorkFactory
from tests.support.esign import PASSPHRASE

pytestmark = pytest.mark.integration

REGISTRY = UnitRegistry.default()
COMMUNE, OTHER_COMMUNE = (unit.code for unit in REGISTRY.children("79")[:2])
LEADER, CLERK = "leader.an", "clerk.binh"


def person(sub: str, unit: str) -> Principal:
    return Principal(sub, frozenset({sub.split(".")[0]}), (unit,))


def series(unit: str) -> str:
    return f"KQ-{REGISTRY.get(unit).identifier or unit}"


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> EsignContext:
    folder = tmp_path_factory.mktemp("esign")
    return build_context(
        {
            "UNITS_FILE": "",
            "ESIGN_KEYSTORE": "files",
            "ESIGN_PKI_DIR": str(folder / "pki"),
            "ESIGN_KEY_PASSPHRASE": PASSPHRASE,
            "ESIGN_KEY_ALGORITHM": "ecdsa-p256",
            "ESIGN_TSA_URL": "",
            "ESIGN_STORE_DIR": str(folder / "documents"),
            "ESIGN_RETENTION_DAYS": 30,
            "ESIGN_PUBLIC_URL": "http://127.0.0.1:8002",
            "ESIGN_PLACE": "Thành phố Hồ Chí Minh",
            "ESIGN_LEADER_TITLE": "Chủ tịch",
            "ESIGN_VERIFY_MAX_BYTES": 1000,
            "ESIGN_VERIFY_PER_MINUTE": 10,
        }
    )


@pytest.fixture
def uow(database_url):
    upgrade("esign", database_url)
    engine = create_engine(database_url)
    yield UnitOfWorkFactory(engine, pipeline, None, "")
    engine.dispose()


class Desk:
    """The use cases on a real database, each in its own transaction, at a time the test chooses."""

    def __init__(self, uow: UnitOfWorkFactory, tools: EsignContext) -> None:
        self.uow, self.tools = uow, tools

    def run(self, use_case, command, at: datetime):
        with self.uow.transaction() as tx:
            return use_case(command, tx, dataclasses.replace(self.tools, clock=lambda: at))

    def open(self, code: str, at: datetime, unit: str = COMMUNE, decision: str = "approved"):
        reason_code = "other" if decision == "rejected" else None
        command = Decided(code, decision, reason_code, "1.001193", unit, unit)
        request, _ = self.run(service_layer.open_from_decision, command, at)
        return request

    def sign(self, request, at: datetime):
        command = Confirm(person(LEADER, request.handling_unit), request.id, request.document_sha256)
        return self.run(service_layer.sign, command, at)

    def seal(self, request, at: datetime):
        command = Confirm(person(CLERK, request.issuing_unit), request.id, request.document_sha256)
        return self.run(service_layer.seal, command, at)

    def refuse(self, request, at: datetime):
        command = Refuse(
            person(LEADER, request.handling_unit), request.id, "Cần xác minh", "verification_needed"
        )
        return self.run(service_layer.refuse, command, at)

    def issue(self, code: str, at: datetime, unit: str = COMMUNE):
        """Opened and signed the day before, sealed (issued) at ``at``."""
        return self.seal(self.sign(self.open(code, at - timedelta(days=1), unit), at), at)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_document_is_numbered_at_its_seal_in_the_register_of_its_vietnam_year(uow, tools):
    desk = Desk(uow, tools)
    opened = desk.open("D-1", utc(2026, 12, 30, 2))
    assert opened.document_number is None  # a draft has no number
    signed = desk.sign(opened, utc(2026, 12, 30, 3))
    assert signed.document_number is None  # the leader signs; the clerk issues
    first = desk.seal(signed, utc(2026, 12, 31, 9))  # 16:00 on 31 December in Vietnam
    # 23:59 on 31 December in Vietnam: still 2026's register
    second = desk.issue("D-2", utc(2026, 12, 31, 16, 59))
    # 00:30 on 1 January 2027 in Vietnam, still 31 December in UTC: the new year's register starts at 01
    third = desk.issue("D-3", utc(2026, 12, 31, 17, 30))
    fourth = desk.issue("D-4", utc(2027, 1, 2, 3))
    elsewhere = desk.issue("D-5", utc(2027, 1, 2, 3), unit=OTHER_COMMUNE)
    s = series(COMMUNE)
    assert [(r.document_number, r.register_year) for r in (first, second, third, fourth)] == [
        (f"01/{s}", 2026),
        (f"02/{s}", 2026),
        (f"01/{s}", 2027),
        (f"02/{s}", 2027),
    ]
    assert (elsewhere.document_number, elsewhere.register_year) == (f"01/{series(OTHER_COMMUNE)}", 2027)
    # the number and date of issue are in the sealed document, and the event carries the number
    sealed_events = [e for e in outbox(uow) if e["type"] == "vn.motcua.esign.sealed"]
    assert [e["data"]["document_number"] for e in sealed_events] == [
        f"01/{s}",
        f"02/{s}",
        f"01/{s}",
        f"02/{s}",
        f"01/{series(OTHER_COMMUNE)}",
    ]
    assert all("document_number" not in e["data"] for e in outbox(uow) if e["type"].endswith(".signed"))


def test_a_refused_request_takes_no_number(uow, tools):
    desk = Desk(uow, tools)
    desk.refuse(desk.open("D-1", utc(2027, 3, 1, 2)), utc(2027, 3, 1, 3))
    assert desk.issue("D-2", utc(2027, 3, 2, 3)).document_number == f"01/{series(COMMUNE)}"


def outbox(uow: UnitOfWorkFactory) -> list[dict]:
    with uow.engine.connect() as connection:
        bodies = connection.execute(
            sa.select(pipeline.outbox.c.body).order_by(pipeline.outbox.c.id)
        ).scalars()
        return [json.loads(body) for body in bodies]


def test_the_sequence_counts_per_dossier_across_its_signing_requests(uow, tools):
    desk = Desk(uow, tools)
    first = desk.open("D-1", utc(2027, 3, 1, 2))
    desk.refuse(first, utc(2027, 3, 1, 3))
    other = desk.issue("D-2", utc(2027, 3, 1, 4))  # another dossier counts on its own
    second = desk.open("D-1", utc(2027, 3, 2, 2), decision="rejected")  # decided again after appraisal
    desk.seal(desk.sign(second, utc(2027, 3, 2, 3)), utc(2027, 3, 2, 4))
    events = outbox(uow)
    of_d1 = [
        (e["type"].rsplit(".", 1)[1], int(e["sequence"]), e["data"]["request_id"])
        for e in events
        if e["subject"] == "D-1"
    ]
    assert of_d1 == [("refused", 1, first.id), ("signed", 2, second.id), ("sealed", 3, second.id)]
    assert [(int(e["sequence"]), e["data"]["request_id"]) for e in events if e["subject"] == "D-2"] == [
        (1, other.id),
        (2, other.id),
    ]


def test_concurrent_seals_take_distinct_numbers_with_no_gap(database_url, uow, tools):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: concurrency is PostgreSQL's test")
    desk = Desk(uow, tools)
    at = utc(2027, 1, 1, 2)
    signed = [
        desk.sign(desk.open(f"C-{i}", at - timedelta(hours=2)), at - timedelta(hours=1)) for i in range(8)
    ]
    start = threading.Barrier(len(signed))
    failures: list[BaseException] = []

    class SealFailed(Exception):
        """The seal's transaction failed after the number was taken (say, the TSA timed out)."""

    def seal(request, fail: bool) -> None:
        try:
            start.wait(timeout=30)
            with uow.transaction() as tx:
                command = Confirm(person(CLERK, COMMUNE), request.id, request.document_sha256)
                service_layer.seal(command, tx, dataclasses.replace(tools, clock=lambda: at))
                if fail:
                    raise SealFailed(request.id)
        except SealFailed:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=seal, args=(r, i in (2, 5))) for i, r in enumerate(signed)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    with uow.engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                signing_requests.c.register_year, signing_requests.c.register_number, signing_requests.c.stage
            )
        ).all()
    numbers = sorted(r.register_number for r in rows if r.stage == "sealed")
    assert numbers == [1, 2, 3, 4, 5, 6]  # six issued: 01 to 06, none twice, none skipped
    assert {r.register_year for r in rows if r.stage == "sealed"} == {2027}
    assert [r for r in rows if r.stage != "sealed" and r.register_number is not None] == []


def test_the_migration_keeps_existing_numbers_and_counts(database_url, tools):
    upgrade("esign", database_url, "0001")
    engine = create_engine(database_url)
    old = sa.table(
        "esign_signing_requests",
        *(sa.column(name) for name in ("id", "dossier_code", "decision", "procedure_code", "receiving_unit")),
        *(
            sa.column(name)
            for name in ("handling_unit", "issuing_unit", "document_number", "document_sha256")
        ),
        sa.column("created_at", signing_requests.c.created_at.type),
        sa.column("stage"),
        sa.column("event_sequence"),
    )
    row = dict(decision="approved", procedure_code="1.001193", receiving_unit=COMMUNE, handling_unit=COMMUNE)
    printed = ResultDocument(
        "Ủy ban",
        COMMUNE,
        "KQ-1",
        utc(2026, 12, 31, 18),
        "Huế",
        "D-1",
        "1.001193",
        "D-1",
        "approved",
        None,
        "-",
        "x",
    )
    row.update(issuing_unit=COMMUNE, document_sha256=tools.documents.put(render_result(printed)))
    with engine.begin() as connection:
        connection.execute(
            old.insert(),
            [
                # numbered at opening, by the UTC year: 2/KQ is 2026's although it is 2027 in Vietnam
                dict(
                    row,
                    id="r1",
                    dossier_code="D-1",
                    document_number="1/KQ-1",
                    stage="refused",
                    event_sequence=1,
                    created_at=utc(2026, 12, 30, 3),
                ),
                dict(
                    row,
                    id="r2",
                    dossier_code="D-1",
                    document_number="2/KQ-1",
                    stage="awaiting_seal",
                    event_sequence=1,
                    created_at=utc(2026, 12, 31, 18),
                ),
            ],
        )
    upgrade("esign", database_url)
    with engine.connect() as connection:
        migrated = connection.execute(
            sa.select(
                signing_requests.c.id, signing_requests.c.register_year, signing_requests.c.register_number
            ).order_by(signing_requests.c.id)
        ).all()
    assert [tuple(r) for r in migrated] == [("r1", 2026, 1), ("r2", 2026, 2)]
    desk = Desk(UnitOfWorkFactory(engine, pipeline, None, ""), tools)
    with desk.uow.transaction() as tx:
        legacy = SigningRequests(tx, tools.units).get("r2")
    # the request still awaiting its seal keeps the number its document already prints
    assert desk.seal(legacy, utc(2027, 1, 2, 3)).document_number == "2/KQ-1"
    # 2026's register resumes after its highest number; D-1's events after the two it published
    assert desk.issue("D-3", utc(2026, 12, 31, 10)).document_number == f"03/{series(COMMUNE)}"
    assert [(e["subject"], int(e["sequence"])) for e in outbox(desk.uow)][:1] == [("D-1", 3)]
    engine.dispose()
