"""The oracle of issue 21: a district's half-year rebuilt from the sources' figures, through the real
projection, on SQLite and PostgreSQL; the report must print the sources' percentages and every Decision
766 indicator worked out by hand here (docs/domain.md §10, §12).

The district (a three-level map): its own desk received 4,566 dossiers from 1 January to 30 June 2026,
its 18 communes 35,170 — 39,736 in all, every one decided by 31 July. What the sources print, and how each
count of the generated history is chosen to give it:

* district desk: 3,810 of 4,566 decided early or on time (756 late); 1,888 results returned by post,
  15 results ready and never collected, the other 2,663 handed over at the counter (1,888 + 15 + 2,663 =
  4,566);
* the communes: 35,155 of 35,170 early or on time (15 late), every result handed over at the counter;
* partly online ("level 3") 17,075 and fully online ("level 4") 11,623 of the district's 39,736 dossiers
  (17,075 ÷ 39,736 = 0.429711 -> 42.97 %; 11,623 ÷ 39,736 = 0.292506 -> 29.25 %); the rest at the counter.

The figures the issue leaves open are chosen round so that each indicator is easy to work by hand: 6,000
dossiers paid fees, 1,500 of them online; 19,868 results (half of 39,736) sealed digitally; 29,802
dossiers (three quarters) had components digitised, 9,934 of them (a quarter of all) reusing data;
10,000 online filings from VNeID-verified accounts; 500 ratings, 400 of them "not satisfied".

The district desk's dossiers go through the consumer's own path (``Projection.write``, batches of 500,
as the service writes them); the communes' events are appended to the event log in bulk and the
projection is rebuilt from it (``repository.rebuild``, the real fold): the same fold, fast enough for
40,000 dossiers on both databases.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from services.dossier.domain.events import EVENTS
from services.dossier.events import envelope, public_data
from services.metrics import repository
from services.metrics.dependencies import Projection
from services.metrics.models import event_log
from services.metrics.projection import Period
from services.metrics.report import assemble
from services.metrics.service import QUEUE
from shared.bulk import execute_rows, insert_rows
from shared.db import create_engine
from shared.migrate import upgrade
from shared.units import UnitRegistry
from shared.vocabulary import Channel, ReturnMethod, Status, StatusFacts

pytestmark = pytest.mark.integration

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PROVINCE, DISTRICT = "89", "883"
COMMUNES = [f"{30001 + i}" for i in range(18)]
REGISTRY = UnitRegistry(
    [
        {"code": PROVINCE, "name": "Tỉnh An Giang", "level": "province"},
        {"code": DISTRICT, "name": "Thành phố Long Xuyên", "level": "district", "parent": PROVINCE},
        *({"code": c, "name": f"Phường {c}", "level": "commune", "parent": DISTRICT} for c in COMMUNES),
    ]
)
FIRST, LAST = date(2026, 1, 1), date(2026, 6, 30)
NOW = datetime(2026, 7, 31, 12, 0, tzinfo=UTC)
DAYS = (LAST - FIRST).days + 1  # 181
EVENT_CLASSES = {event.name: event for event in EVENTS}
LOG_COLUMNS = tuple(column.name for column in event_log.columns)

DESK_DOSSIERS, COMMUNE_DOSSIERS = 4_566, 35_170
ALL = DESK_DOSSIERS + COMMUNE_DOSSIERS  # 39,736
DESK_TIMELY, COMMUNE_TIMELY = 3_810, 35_155
DESK_POSTAL, UNCOLLECTED = 1_888, 15
PARTLY, FULLY = 17_075, 11_623
PAID, PAID_ONLINE, DIGITAL_RESULTS, DIGITISED, REUSED, VNEID = 6_000, 1_500, 19_868, 29_802, 9_934, 10_000
RATED, NOT_SATISFIED = 500, 400


def percent(ratio: float) -> str:
    """As the sources print a share: a percentage with two decimals."""
    return f"{ratio * 100:.2f}"


class History:
    """The district's half-year: who each dossier is, then its events as the dossier service writes them."""

    def __init__(self) -> None:
        rng = random.Random(766)
        units = [DISTRICT] * DESK_DOSSIERS + [COMMUNES[i % 18] for i in range(COMMUNE_DOSSIERS)]
        self.dossiers = [{"index": i, "unit": unit} for i, unit in enumerate(units)]
        desk = self.dossiers[:DESK_DOSSIERS]
        communes = self.dossiers[DESK_DOSSIERS:]
        # Each property on exactly the chosen number of dossiers, spread at random over the district.
        for dossier in desk:
            dossier["timely"] = dossier["index"] < DESK_TIMELY
        for offset, dossier in enumerate(communes):
            dossier["timely"] = offset < COMMUNE_TIMELY
        shuffled = rng.sample(desk, len(desk))
        for position, dossier in enumerate(shuffled):
            dossier["returned"] = (
                "postal"
                if position < DESK_POSTAL
                else None
                if position < DESK_POSTAL + UNCOLLECTED
                else "counter"
            )
        for dossier in communes:
            dossier["returned"] = "counter"
        everyone = rng.sample(self.dossiers, ALL)
        for position, dossier in enumerate(everyone):
            dossier["level"] = (
                "full" if position < FULLY else "partial" if position < FULLY + PARTLY else None
            )
        online = [d for d in everyone if d["level"]]
        for position, dossier in enumerate(online):
            dossier["vneid"] = position < VNEID
        for key, count in (("paid", PAID), ("digital", DIGITAL_RESULTS), ("digitised", DIGITISED)):
            for dossier in rng.sample(self.dossiers, count):
                dossier[key] = True
        paid = [d for d in self.dossiers if d.get("paid")]
        for dossier in rng.sample(paid, PAID_ONLINE):
            dossier["paid_online"] = True
        digitised = [d for d in self.dossiers if d.get("digitised")]
        for dossier in rng.sample(digitised, REUSED):
            dossier["reused"] = True

    def steps(self, dossier: dict) -> tuple[StatusFacts, list[tuple[str, Status, datetime, dict]]]:
        """One dossier's life: its facts at receipt, then (event, status after, time, own fields)."""
        i, unit = dossier["index"], dossier["unit"]
        received = datetime.combine(FIRST + timedelta(days=i % DAYS), datetime.min.time(), VN) + timedelta(
            hours=8, minutes=i % 300
        )
        due = received + timedelta(days=10)
        facts = StatusFacts(
            code=f"{unit}-{received:%y%m%d}-{i:05d}",
            status=Status.RECEIVED,
            procedure_code="1.001193",
            procedure_version=1,
            procedure_field="civil_status",
            receiving_unit=unit,
            handling_unit=unit,
            channel=Channel.ONLINE if dossier["level"] else Channel.COUNTER,
            return_method=ReturnMethod.POSTAL if dossier["returned"] == "postal" else ReturnMethod.COUNTER,
            online_level=dossier["level"] or "partial",  # the procedure's level; the channel decides
            received_at=received,
            due_at=due,
            original_due_at=due,
            occurred_at=received,
        )
        intake = {
            "components_digitised": 2 if dossier.get("digitised") and not dossier.get("reused") else 0,
            "components_reused": 1 if dossier.get("reused") else 0,
            "components_national": 1 if dossier.get("reused") and i % 2 else 0,
            "vneid_verified": bool(dossier.get("vneid")),
        }
        steps: list[tuple[str, Status, datetime, dict]] = [("received", Status.RECEIVED, received, intake)]
        if dossier.get("paid"):
            paid = received + timedelta(days=1)
            steps.append(("paid", Status.PROCESSING, paid, {"paid_online": bool(dossier.get("paid_online"))}))
        resolved = received + timedelta(days=5 if dossier["timely"] else 14)
        steps.append(("stamped", Status.PROCESSING, resolved, {"digital": bool(dossier.get("digital"))}))
        timeliness = "early" if dossier["timely"] else "late"
        work = 3.0 if dossier["timely"] else 10.0
        decided = {
            "decision": "approved",
            "resolved_at": resolved,
            "timeliness": timeliness,
            "working_days": work,
        }
        steps.append(("resolved", Status.RESOLVED, resolved, decided))
        if dossier["returned"]:
            returned = resolved + timedelta(days=2)
            steps.append(
                (
                    "returned",
                    Status.RETURNED,
                    returned,
                    {"method": dossier["returned"], "returned_at": returned},
                )
            )
        return facts, steps

    def events(self, dossier: dict) -> list[tuple[str, Any, datetime]]:
        """The dossier service's own event objects of one dossier."""
        facts, steps = self.steps(dossier)
        return [
            (name, EVENT_CLASSES[name](facts=replace(facts, status=status, occurred_at=at), **own), at)
            for name, status, at, own in steps
        ]

    def payloads(self, dossier: dict) -> tuple[str, list[tuple[str, dict, datetime]]]:
        """The same events' ``data`` as JSON carries it, built field by field from the facts' own
        ``as_data`` (the bulk path; ``test_the_bulk_payloads_are_the_dossier_services`` holds them equal)."""
        facts, steps = self.steps(dossier)
        base = wire(facts.as_data())
        return facts.code, [
            (
                name,
                {
                    **base,
                    "status": int(status),
                    "status_name": status.label,
                    "occurred_at": at.isoformat(),
                    **wire(own),
                },
                at,
            )
            for name, status, at, own in steps
        ]


def wire(value: dict) -> dict:
    """A payload as JSON carries it (what the consumer reads back from the broker)."""
    return {key: item.isoformat() if isinstance(item, datetime) else item for key, item in value.items()}


def test_the_bulk_payloads_are_the_dossier_services():
    """The bulk path's payloads are exactly what the dossier service's event classes publish."""
    history = History()
    for dossier in history.dossiers[:: len(history.dossiers) // 50]:
        _, payloads = history.payloads(dossier)
        events = history.events(dossier)
        assert [(name, data) for name, data, _ in payloads] == [
            (name, json.loads(json.dumps(wire(public_data(event.data, None))))) for name, event, _ in events
        ]


# About 30 s of CPU for 40,000 dossiers and 170,000 events; the limit leaves room for a loaded machine.
@pytest.mark.timeout(400)
def test_the_district_half_year_prints_the_sources_figures_and_every_indicator(database_url):
    upgrade("metrics", database_url)
    engine = create_engine(database_url)
    history = History()
    path = {unit: REGISTRY.routing_path(unit) for unit in [DISTRICT, *COMMUNES]}

    # The district desk through the consumer's path, in batches of 500 as the service takes them.
    desk_events = [
        envelope(event, path[d["unit"]], path[d["unit"]], sequence, time=at)
        for d in history.dossiers[:DESK_DOSSIERS]
        for sequence, (_, event, at) in enumerate(history.events(d), 1)
    ]
    projection = Projection(engine, VN, QUEUE)
    for start in range(0, len(desk_events), 500):
        assert all(projection.write(desk_events[start : start + 500]))
    desk = report(engine, DISTRICT, "level")["district"]
    # 3,810 ÷ 4,566 = 0.834428 -> 83.44 %; 1,888 ÷ 4,566 = 0.413491 -> 41.35 %
    assert (desk["received"], desk["decided_early"] + desk["decided_on_time"]) == (4_566, 3_810)
    assert percent(desk["on_time_rate"]) == "83.44" and percent(desk["postal_share"]) == "41.35"
    assert desk["uncollected"] == 15

    # The communes' events appended to the event log in bulk, then the projection rebuilt from it.
    rows = [
        {
            "event_id": f"00000000-0000-4000-8000-{d['index'] * 10 + sequence:012d}",
            "subject": code,
            "sequence": sequence,
            "name": name,
            "time": at,
            "unit_path": path[d["unit"]],
            "handling_unit_path": path[d["unit"]],
            "data": data,
            "waiting": False,
            "logged_at": NOW,
        }
        for d in history.dossiers[DESK_DOSSIERS:]
        for code, payloads in [history.payloads(d)]
        for sequence, (name, data, at) in enumerate(payloads, 1)
    ]
    with engine.begin() as connection:
        append = insert_rows(connection, event_log, LOG_COLUMNS)
        for start in range(0, len(rows), 20_000):
            execute_rows(connection, append, LOG_COLUMNS, rows[start : start + 20_000])
        assert repository.rebuild(connection, VN) == ALL
    rate(engine, history)

    by_level = report(engine, DISTRICT, "level")
    district, communes, total = by_level["district"], by_level["commune"], by_level["total"]
    # The sources' figures, as printed.
    assert percent(district["on_time_rate"]) == "83.44" and percent(district["postal_share"]) == "41.35"
    # 35,155 ÷ 35,170 = 0.999573 -> 99.96 %
    assert (communes["received"], communes["decided_early"], communes["decided_late"]) == (35_170, 35_155, 15)
    assert percent(communes["on_time_rate"]) == "99.96"
    assert (
        percent(total["partly_online_share"]) == "42.97" and percent(total["fully_online_share"]) == "29.25"
    )
    assert total["uncollected"] == 15 and total["received"] == ALL
    # The roll-up: the district's total is its desk's and its communes' summed, the province's the same.
    assert total["received"] == district["received"] + communes["received"]
    assert report(engine, PROVINCE, "unit")["total"]["scorecard"] == total["scorecard"]

    # Every indicator of the scorecard, worked by hand (docs/domain.md §12; targets all 1).
    card = total["scorecard"]
    indicators = {i["key"]: i for g in card["groups"] for i in g["indicators"]}
    expected = {
        # progress: (0 in process + 38,965 early/on time + 0 withdrawn) ÷ 39,736 received
        #   = 0.980597 -> 20 × 0.980597 = 19.611939
        "handled_on_time": (38_965 / 39_736, 20 * 38_965 / 39_736),
        # online: (11,623 + 17,075) ÷ 39,736 = 28,698 ÷ 39,736 = 0.722217 -> 12 × 0.722217 = 8.666600
        "online_dossiers": (28_698 / 39_736, 12 * 28_698 / 39_736),
        # fees: 1,500 paid online ÷ 6,000 paid = 0.25 -> 10 × 0.25 = 2.5
        "online_payment": (0.25, 2.5),
        # digitisation: 19,868 ÷ 39,736 decided = 0.5 -> 6 × 0.5 = 3; 29,802 ÷ 39,736 = 0.75 -> 8 × 0.75 = 6;
        #   9,934 ÷ 39,736 = 0.25 -> 8 × 0.25 = 2
        "digital_results": (0.5, 3.0),
        "dossiers_digitised": (0.75, 6.0),
        "data_reused": (0.25, 2.0),
        # satisfaction: (39,736 − 400 not satisfied) ÷ 39,736 = 0.989934 -> 6 × = 5.939601
        "satisfied": (39_336 / 39_736, 6 * 39_336 / 39_736),
    }
    for key, (value, points) in expected.items():
        assert indicators[key]["value"] == pytest.approx(value, abs=1e-12), key
        assert indicators[key]["points"] == pytest.approx(points, abs=1e-9), key
    for key in ("procedures_published", "dossiers_synchronised", "progress_published", "other_satisfaction"):
        assert indicators[key]["measured"] is False and indicators[key]["points"] is None
    # 19.611939 + 8.666600 + 2.5 + 3 + 6 + 2 + 5.939601 = 47.718140 of the 70 measured points
    assert card["points"] == pytest.approx(sum(points for _, points in expected.values()), abs=1e-9)
    assert card["points"] == pytest.approx(47.718140, abs=1e-6)
    assert (card["max_points"], card["measured_points"]) == (100, 70)
    # 10,000 of the 28,698 online filings from VNeID-verified accounts: 34.85 %
    assert total["vneid_verified"] == 10_000 and percent(total["vneid_share"]) == "34.85"

    # The CSV prints the same figures (its total row).
    csv_total = csv_row(engine, DISTRICT, "total")
    assert percent(float(csv_total["partly_online_share"])) == "42.97"
    assert float(csv_total["points_766"]) == pytest.approx(card["points"], abs=1e-9)
    engine.dispose()


def rate(engine, history: History) -> None:
    """500 desk-tablet ratings, 400 "not satisfied", through the projection's own rating path."""
    returned = [d for d in history.dossiers if d["returned"]][:RATED]
    with sa.orm.Session(engine) as session, session.begin():
        for position, d in enumerate(returned):
            code = history.steps(d)[0].code
            facts = repository.load_facts(session, code)
            rating = "not_satisfied" if position < NOT_SATISFIED else "satisfied"
            assert repository.add_rating(session, facts, rating, NOW, "tablet")


def sla(engine, unit: str, group_by: str):
    with sa.orm.Session(engine) as session:
        rows = repository.report_tallies(
            session, REGISTRY.descendants(unit), Period(FIRST, LAST, VN), NOW, group_by
        )
    return assemble(rows, unit=unit, first=FIRST, last=LAST, group_by=group_by, as_of=NOW, registry=REGISTRY)


def report(engine, unit: str, group_by: str) -> dict[str, dict]:
    answer = sla(engine, unit, group_by).as_dict()
    return {"total": answer["total"], **{group["key"]: group for group in answer["groups"]}}


def csv_row(engine, unit: str, key: str) -> dict[str, str]:
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(sla(engine, unit, "level").to_csv())))
    return next(row for row in rows if row["level"] == key)
