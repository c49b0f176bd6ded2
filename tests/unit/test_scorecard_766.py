"""Decision 766/QĐ-TTg's scorecard (docs/domain.md §12): the definitions file and the points of a tally.

Expected values are worked by hand from the table of §12, never printed by the code first.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from services.metrics.projection import Tally
from services.metrics.scorecard import DEFINITIONS, DefinitionError, definitions, parse

RAW = yaml.safe_load(DEFINITIONS.read_text(encoding="utf-8"))


def test_the_file_holds_five_groups_of_100_points_with_the_confirmed_maxima():
    card = definitions()
    assert [(g.key, g.points) for g in card.groups] == [
        ("transparency", 18),
        ("progress", 20),
        ("online", 22),
        ("digitisation", 22),
        ("satisfaction", 18),
    ]
    # measured: progress 20 + online 12 + 10 + digitisation 6 + 8 + 8 + satisfaction 6 = 70
    assert card.measured_points == 70


def scored(tally: Tally) -> dict[str, dict]:
    card = definitions().score(tally)
    indicators = {i["key"]: i for g in card["groups"] for i in g["indicators"]}
    return {"card": card, "groups": {g["key"]: g for g in card["groups"]}, **indicators}


def test_every_measured_indicator_of_a_worked_example():
    # 200 received: 150 decided (100 early, 30 on time, 20 late), 10 withdrawn, 30 within deadline,
    # 10 overdue; 60 fully and 40 partly online; 80 paid fees, 20 of them online; 90 of the decided
    # results sealed digitally; 120 digitised, 50 of them reusing data; 15 rated not satisfied.
    tally = Tally(
        received=200,
        decided_early=100,
        decided_on_time=30,
        decided_late=20,
        withdrawn=10,
        in_process_within_deadline=30,
        in_process_overdue=10,
        received_online=100,
        received_fully_online=60,
        received_partly_online=40,
        paid=80,
        paid_online=20,
        result_digital=90,
        digitised=120,
        reused_data=50,
        rated=40,
        rated_not_satisfied=15,
    )
    s = scored(tally)
    # progress: (30 + 100 + 30 + 10) / 200 = 0.85 -> 20 x 0.85 = 17
    assert s["handled_on_time"]["value"] == pytest.approx(0.85)
    assert s["handled_on_time"]["points"] == pytest.approx(17.0)
    # online dossiers: (60 + 40) / 200 = 0.5 -> 12 x 0.5 = 6; online payment 20 / 80 = 0.25 -> 2.5
    assert s["online_dossiers"]["points"] == pytest.approx(6.0)
    assert s["online_payment"]["points"] == pytest.approx(2.5)
    # digital results 90 / 150 = 0.6 -> 3.6; digitised 120 / 200 = 0.6 -> 4.8; reused 50 / 200 -> 2
    assert s["digital_results"]["points"] == pytest.approx(3.6)
    assert s["dossiers_digitised"]["points"] == pytest.approx(4.8)
    assert s["data_reused"]["points"] == pytest.approx(2.0)
    # satisfied (150 - 15) / 150 = 0.9 -> 6 x 0.9 = 5.4
    assert s["satisfied"]["points"] == pytest.approx(5.4)
    # transparency is not measured: null, and no points
    assert s["groups"]["transparency"]["points"] == 0
    assert s["procedures_published"] == {
        "key": "procedures_published",
        "measured": False,
        "value": None,
        "points": None,
        "max_points": 4.0,
    }
    assert s["groups"]["online"]["points"] == pytest.approx(8.5)
    assert s["groups"]["digitisation"]["points"] == pytest.approx(10.4)
    # 17 + 8.5 + 10.4 + 5.4 = 41.3 of the 70 measured
    assert s["card"]["points"] == pytest.approx(41.3)
    assert (s["card"]["max_points"], s["card"]["measured_points"]) == (100, 70)


def test_nothing_to_divide_by_is_null_not_zero():
    s = scored(Tally())
    assert all(
        s[key]["value"] is None and s[key]["points"] is None
        for key in ("handled_on_time", "online_payment", "digital_results", "satisfied")
    )
    assert s["card"]["points"] == 0


def test_a_target_below_one_gives_all_points_at_the_target_and_never_more():
    raw = copy.deepcopy(RAW)
    online = next(g for g in raw["groups"] if g["key"] == "online")
    online["indicators"][0]["target"] = 0.5  # full 12 points once half the dossiers are online
    card = parse(raw)
    half = card.score(Tally(received=10, received_fully_online=5))
    quarter = card.score(Tally(received=8, received_partly_online=2))
    everything = card.score(Tally(received=4, received_fully_online=4))
    points = [c["groups"][2]["indicators"][0]["points"] for c in (half, quarter, everything)]
    # 5/10 = target -> 12; 2/8 = 0.25 = half the target -> 6; 4/4 -> capped at 12
    assert points == pytest.approx([12.0, 6.0, 12.0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["groups"][1]["indicators"][0].update(points=19), "do not add up to 20"),
        (lambda raw: raw["groups"][1].update(points=21), "do not add up to"),
        (lambda raw: raw["groups"][2]["indicators"][0].update(measure="guess"), "unknown measure 'guess'"),
        (lambda raw: raw["groups"][2]["indicators"][0].update(target=0), "target in (0, 1]"),
        (lambda raw: raw["groups"][4]["indicators"][0].update(key="online"), "unique"),
    ],
)
def test_a_definitions_file_that_does_not_add_up_is_refused_with_the_entry(change, message):
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(raw)


def test_the_gauges_sum_each_units_counts_to_its_label_before_scoring():
    """Two communes of one province: the province's scorecard is that of the summed counts, not the
    average of the communes' (docs/domain.md §12 Roll-up)."""
    from services.metrics.exposition import scorecard

    small = Tally(received=10, decided_on_time=10, paid=1, paid_online=1)  # 100 % paid online
    large = Tally(received=90, decided_on_time=45, decided_late=45, paid=9)  # none paid online
    points, ratios = scorecard([("26734", small), ("26737", large)], lambda unit: "79")
    # progress: (10 + 45) / 100 = 0.55 -> 11 points (the average of the communes' 20 and 10 would be 15)
    assert ratios["79", "handled_on_time"] == pytest.approx(0.55)
    assert points["79", "progress"] == pytest.approx(11.0)
    # online payment: 1 / 10 = 0.1 -> 1 point; satisfaction: 100 decided, none rated -> 6 points
    assert points["79", "online"] == pytest.approx(1.0)
    assert points["79", "total"] == pytest.approx(11.0 + 1.0 + 6.0)
    # nothing digitised and no result sealed digitally: ratios 0, present; online dossiers 0 / 100
    assert ratios["79", "digital_results"] == 0 and ratios["79", "online_dossiers"] == 0
    assert {unit for unit, _ in points} == {"79"}
    assert sorted(group for _, group in points) == sorted(
        ["transparency", "progress", "online", "digitisation", "satisfaction", "total"]
    )
