"""``make demo`` end to end: the demo drives a small working day against the real services.

The dossier and metrics services run in-process on the real broker and each
test database; the demo's ``main`` talks to them over HTTP only. Every figure of the printed summary is
checked against what the API itself answers afterwards, not against the demo's own counters.

Two unit maps: the default national map (no police/tax/social-insurance agencies, so the demo names a
stand-in unit or skips those hand-overs) and the same map with the province's agencies added, where the
service resolves every hand-over of an interlinked plan by itself.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.demo.__main__ import main as demo_main
from services.dossier.service import DossierService
from services.metrics.service import MetricsService
from services.outbound.service import OutboundService
from shared.migrate import upgrade
from tests.conftest import bearer, metrics_settings, service_settings
from tests.support.portal import portal_simulator

pytestmark = pytest.mark.e2e

PROVINCE = "79"
DOSSIERS, COMMUNES = 40, 4
AUDITOR = bearer("auditor", PROVINCE)
AGENCIES = textwrap.dedent(
    """\
    include_default: true
    units:
      - {code: "79-STP", name: "Sở Tư pháp Thành phố Hồ Chí Minh", level: agency, parent: "79"}
      - {code: "79-STC", name: "Sở Tài chính Thành phố Hồ Chí Minh", level: agency, parent: "79"}
      - {code: "79-VPDKDD", name: "Văn phòng Đăng ký đất đai", level: agency, parent: "79"}
      - {code: "79-CA", name: "Công an Thành phố Hồ Chí Minh", level: agency, parent: "79"}
      - {code: "79-CT", name: "Thuế Thành phố Hồ Chí Minh", level: agency, parent: "79"}
      - {code: "79-BHXH", name: "Bảo hiểm xã hội Thành phố Hồ Chí Minh", level: agency, parent: "79"}
    """
)


# Each unit map on one database kind (tests/conftest.py pairs them; MOTCUA_TEST_ALL_PAIRS=1 runs all four).
DATABASE_FOR_VARIANT = {"default-map": "sqlite", "with-agencies": "postgresql"}


@pytest.fixture(params=["default-map", "with-agencies"])
def system(request, service_config, container_factory, rabbit_config, database_url, tmp_path, monkeypatch):
    units_file = ""
    if request.param == "with-agencies":
        path = tmp_path / "units-79-agencies.yaml"
        path.write_text(AGENCIES, encoding="utf-8")
        units_file = str(path)
    # The demo reads the map as the services do: from UNITS_FILE.
    monkeypatch.setenv("UNITS_FILE", units_file)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    service_config["UNITS_FILE"] = units_file
    container_factory(DossierService, service_config).start()
    urls = {
        "dossier": f"http://{service_config['WEB_SERVER_ADDRESS']}",
        "agencies": bool(units_file),
    }
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'metrics.sqlite3'}"
    upgrade("metrics", database_url)
    config = metrics_settings(rabbit_config["AMQP_URI"], database_url, UNITS_FILE=units_file)
    container_factory(MetricsService, config).start()
    urls["metrics"] = f"http://{config['WEB_SERVER_ADDRESS']}"
    outbound_database = database_url
    if database_url.startswith("sqlite"):
        outbound_database = f"sqlite:///{tmp_path / 'outbound.sqlite3'}"
    upgrade("outbound", outbound_database)
    with portal_simulator() as portal:
        config = service_settings(
            rabbit_config["AMQP_URI"],
            outbound_database,
            MOTCUA_ENV="development",
            UNITS_FILE=units_file,
            PORTAL_URL=portal.url,
            PORTAL_SYNC_SECONDS=0.2,
            DOSSIER_URL=urls["dossier"],
            WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
            WEBHOOK_POLL_SECONDS=0.1,
        )
        container_factory(OutboundService, config).start()
        urls["outbound"], urls["portal"] = f"http://{config['WEB_SERVER_ADDRESS']}", portal
        yield urls


def samples(url: str, name: str) -> list:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("service") == "dossier"
    ]


def server_errors(url: str) -> float:
    return sum(s.value for s in samples(url, "motcua_http_requests_total") if int(s.labels["status"]) >= 500)


def published(url: str) -> float:
    return sum(s.value for s in samples(url, "motcua_events_published_total"))


def every_dossier(url: str) -> list[dict]:
    found, page = [], 1
    while True:
        answer = requests.get(
            f"{url}/api/v1/dossiers",
            headers=AUDITOR,
            params={"unit": PROVINCE, "page": page, "page_size": 500},
            timeout=10,
        ).json()
        found += answer["results"]
        if not answer["next"]:
            return found
        page += 1


def audit(url: str, code: str) -> list[dict]:
    response = requests.get(f"{url}/api/v1/dossiers/{code}/audit", headers=AUDITOR, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def one(pattern: str, text: str) -> tuple[int, ...]:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no line matching {pattern!r} in the summary:\n{text}"
    return tuple(int(group) for group in match.groups())


def test_a_working_day_through_the_api_matches_its_summary(system, capsys):
    url = system["dossier"]
    errors_before, events_before = server_errors(url), published(url)

    exit_code = demo_main(
        [
            *("--dossier-url", url, "--metrics-url", system["metrics"]),
            *("--outbound-url", system["outbound"], "--portal-simulator-url", system["portal"].url),
            *("--dossiers", str(DOSSIERS), "--communes", str(COMMUNES), "--seed", "11"),
            *("--workers", "3", "--wait", "15"),
        ]
    )
    out, err = capsys.readouterr()
    assert exit_code == 0, f"{out}\n{err}"

    # What the API says happened.
    dossiers = every_dossier(url)
    assert len(dossiers) == DOSSIERS
    assert len({d["receiving_unit"] for d in dossiers}) == COMMUNES
    statuses = Counter(d["status"] for d in dossiers)
    assert {3, 7, 10} <= set(statuses), statuses  # refused, withdrawn, returned: every final status
    assert statuses[9] and set(statuses) & {2, 4, 5, 6, 8}, statuses  # results waiting, some in process
    trails = {d["code"]: audit(url, d["code"]) for d in dossiers}
    actions = Counter(entry["action"] for trail in trails.values() for entry in trail)
    for action in (
        "refuse",
        "request_supplement",
        "supplement",
        "request_payment",
        "record_payment",
        "appraise",
        "decide",
        "sign",
        "stamp",
        "resolve",
        "return",
        "withdraw",
        "stop",
        "resume",
        "apologize",
    ):
        assert actions[action], f"no {action} in the day: {actions}"
    decisions = Counter(d["timeliness"] for d in dossiers if d["timeliness"])
    assert decisions["late"] >= 1  # apologised dossiers count as late
    if system["agencies"]:
        # The service placed every hand-over of an interlinked plan itself; none was skipped.
        assert actions["transfer"] >= 2
        assert "stood in" not in out and "had no unit" not in out

    # The summary says exactly that.
    printed = {
        int(m[1]): int(m[2]) for m in re.finditer(r"^\s+(\d+) [a-z_]+\s+.+?\s(\d+)\s+[\d.]+ %$", out, re.M)
    }
    assert printed == dict(statuses), out
    channels = Counter(d["channel"] for d in dossiers)
    counter, online, postal = one(r"^By channel: counter (\d+) .* online (\d+) .* postal (\d+) ", out)
    assert (counter, online, postal) == (channels["counter"], channels["online"], channels["postal"])
    returned = [d for d in dossiers if d["status"] == 10]
    by_post = sum(d["return_method"] == "postal" for d in returned)
    assert one(r"^Results handed over: (\d+) — (\d+) at the counter, (\d+) by post", out) == (
        len(returned),
        len(returned) - by_post,
        by_post,
    )
    assert one(r"early (\d+) · on time (\d+) · late (\d+)", out) == (
        decisions["early"],
        decisions["on_time"],
        decisions["late"],
    )
    assert one(r"^Interlinked transfers: (\d+) hand-overs", out) == (actions["transfer"],)
    assert one(r"^Supplements \(Form 02\): (\d+) requested — (\d+) supplied, (\d+) waiting", out) == (
        actions["request_supplement"],
        actions["supplement"],
        statuses[5],
    )
    assert one(r"^Fees: (\d+) payment requests — (\d+) paid", out) == (
        actions["request_payment"],
        actions["record_payment"],
    )
    assert one(r"^Refused at the desk: (\d+) · withdrawn: (\d+)", out) == (statuses[3], statuses[7])

    # Every change published its event; the expected refusals were shown; no server error at all.
    (events,) = one(r"^Events published: (\d+)", out)
    transitions = sum(len(trail) for trail in trails.values())
    assert transitions <= events <= published(url) - events_before
    assert one(r"expected 4xx, (\d+) server errors", out) == (0,)
    assert server_errors(url) == errors_before
    for status in ("409", "403", "422"):
        assert re.search(rf"^  {status}  ", out, re.M), f"no {status} shown:\n{out}"

    # The metrics service's SLA report for the province, read back the same way.
    received, by_the_run = one(r"^  received (\d+) \((\d+) by this run\) · decided", out)
    assert received == by_the_run == sum(1 for d in dossiers if d["received_at"])

    # The national portal simulator's copy of the day, read from the simulator itself: each dossier it
    # holds ends at the status the dossier service holds (national codes, never rewritten on the way).
    held = {code: item for code, item in system["portal"].received()["dossiers"].items() if code in trails}
    assert held, out
    assert one(r"^Portal dossiers synced: (\d+) of (\d+) ", out) == (len(held), DOSSIERS)
    status_of = {d["code"]: d["status"] for d in dossiers}
    assert {code: int(item["TrangThaiHoSo"]) for code, item in held.items()} == {
        code: status_of[code] for code in held
    }
    # One commune's HTTP subscriber: its events arrived, every signature verified.
    got, about, verified, sent = one(
        r"^Subscriber events received: (\d+) about (\d+) dossiers · signatures verified: (\d+) of (\d+)", out
    )
    commune = re.search(r"^Subscriber of commune (\S+) ", out, re.M)
    assert commune, out
    assert about == sum(1 for d in dossiers if d["receiving_unit"] == commune[1]) > 0
    assert got >= about
    assert verified == sent == got + 1  # the subscription's test event besides the day's
