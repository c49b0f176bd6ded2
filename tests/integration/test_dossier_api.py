"""The dossier lifecycle over HTTP, against the real broker and both databases.

The three-level example map: province 89, district 883, communes 30280 and 30283 under it, agencies
89-STP (justice), 89-CT (tax). Land procedure 1.012797 is interlinked: received at the commune desk,
handled by the provincial land office (no unit of its own in the map: the province), the tax department
in between.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from prometheus_client import REGISTRY

from services.dossier.models import dossier_audit, dossiers, pipeline
from services.dossier.service import DossierService
from shared.migrate import upgrade
from shared.units import EXAMPLE_3LEVEL_FILE
from tests.conftest import bearer
from tests.support.broker import Subscriber
from tests.support.land_dossier import LIFE

pytestmark = pytest.mark.integration

DESK = "30280"
LAND = "1.012797"
BIRTH = "1.001193"
CERTIFICATE = "1.004873"  # marital status, 3 working days
APPLICANT = {"full_name": "Lê Thị Hồng Nhung", "id_number": "089190004567", "phone": "0912345678"}


class Api:
    def __init__(self, base: str, database_url: str) -> None:
        self.base, self.database_url = base, database_url

    def receive(self, unit: str = DESK, procedure: str = LAND, **extra) -> requests.Response:
        body = {"procedure_code": procedure, "receiving_unit": unit, "applicant": APPLICANT, **extra}
        return requests.post(
            f"{self.base}/api/v1/dossiers", json=body, headers=bearer("desk_officer", unit), timeout=10
        )

    def act(
        self, code: str, action: str, headers: dict, body: dict | None = None, **kwargs
    ) -> requests.Response:
        return requests.post(
            f"{self.base}/api/v1/dossiers/{code}/actions/{action}",
            json={} if body is None else body,
            headers=headers,
            timeout=10,
            **kwargs,
        )

    def get(self, path: str, headers: dict, **params) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=headers, params=params, timeout=10)

    def rows(self, table: sa.Table, **where) -> int:
        engine = sa.create_engine(self.database_url)
        query = sa.select(sa.func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with engine.connect() as connection:
            count = connection.execute(query).scalar_one()
        engine.dispose()
        return count

    def counts(self) -> tuple[int, int, int]:
        return self.rows(dossiers), self.rows(pipeline.outbox), self.rows(dossier_audit)


def start(service_config, container_factory, **settings) -> Api:
    service_config["UNITS_FILE"] = str(EXAMPLE_3LEVEL_FILE)
    service_config.update(settings)
    container = container_factory(DossierService, service_config)
    container.start()
    return Api(f"http://{service_config['WEB_SERVER_ADDRESS']}", service_config["DATABASE_URL"])


@pytest.fixture
def api(service_config, container_factory) -> Api:
    return start(service_config, container_factory)


DESK_OFFICER = bearer("desk_officer", DESK)
PROVINCE_OFFICER = bearer("handling_officer", "89")
TAX_OFFICER = bearer("handling_officer", "89-CT")
LEADER = bearer("leader", "89")
CLERK = bearer("clerk", "89")


def received(api: Api, **extra) -> dict:
    response = api.receive(**extra)
    assert response.status_code == 201, response.text
    return response.json()


# --- the happy path -------------------------------------------------------------------------------


def test_an_interlinked_dossier_from_receipt_to_return(api, rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    commune = Subscriber(uri, "dossier.*.89.883.30280")
    province = Subscriber(uri, "dossier.*.89")  # the provincial land office: handling unit 89
    tax = Subscriber(uri, "dossier.*.89.89-CT")
    try:
        dossier = received(api)
        code = dossier["code"]
        assert dossier["status"] == 2 and dossier["due_at"] > dossier["received_at"]
        steps = LIFE
        handling = []
        for action, headers, body in steps:
            response = api.act(code, action, headers, body)
            assert response.status_code == 200, (action, response.text)
            handling.append(response.json()["handling_unit"])
        final = response.json()
        commune.drain(expect=12)
        # the province (89) also gets the transfer that takes the dossier away from it (to 89-CT),
        # and the tax office the one that hands it back (CC carries both handling paths)
        province.drain(expect=11)
        tax.drain(expect=2)
    finally:
        for subscriber in (commune, province, tax):
            subscriber.close()
    assert handling[0] == "89" and handling[4] == "89-CT" and handling[5] == "89"
    assert final["status"] == 10 and final["timeliness"] == "early" and final["working_days"] >= 0
    names = [e["type"].rsplit(".", 1)[-1] for e in commune.envelopes]
    assert names == [
        "received",
        "processing_started",
        "appraised",
        "payment_requested",
        "paid",
        "transferred",
        "transferred",
        "decided",
        "signed",
        "stamped",
        "resolved",
        "returned",
    ]
    assert [int(e["sequence"]) for e in commune.envelopes] == list(range(1, 13))
    assert {e["subject"] for e in commune.envelopes} == {code}
    # The handling unit's jurisdiction gets the same message through the CC header.
    for message, envelope in zip(commune.messages, commune.envelopes, strict=True):
        name = envelope["type"].rsplit(".", 1)[-1]
        expected = {"30280": None, "89": [f"dossier.{name}.89"], "89-CT": [f"dossier.{name}.89.89-CT"]}
        if name == "transferred":  # the unit taking it, then the unit handing it over
            expected = {
                "89-CT": [f"dossier.{name}.89.89-CT", f"dossier.{name}.89"],
                "89": [f"dossier.{name}.89", f"dossier.{name}.89.89-CT"],
            }
        assert (message.headers or {}).get("CC") == expected[envelope["data"]["handling_unit"]]
    assert [e["id"] for e in province.envelopes] == [e["id"] for e in commune.envelopes[1:]]
    assert [(e["data"]["from_unit"], e["data"]["to_unit"]) for e in tax.envelopes] == [
        ("89", "89-CT"),
        ("89-CT", "89"),
    ]
    transferred = commune.envelopes[5]["data"]
    assert transferred["from_unit"] == "89" and transferred["step"] == "transfer"
    assert transferred["finished_step"] == "appraise" and transferred["step_timeliness"] in (
        "early",
        "on_time",
    )
    resolved = commune.envelopes[10]["data"]
    assert resolved["decision"] == "approved" and resolved["timeliness"] == "early"
    assert "applicant" not in str(commune.envelopes) and APPLICANT["id_number"] not in str(commune.envelopes)

    slip = api.get(f"/api/v1/dossiers/{code}/forms/process_control", bearer("auditor", "89")).json()
    assert [(h["from_unit"], h["to_unit"]) for h in slip["handovers"]] == [
        ("30280", "89"),
        ("89", "89-CT"),
        ("89-CT", "89"),
        ("89", "30280"),
        ("30280", None),
    ]
    assert all(h["timeliness"] in ("early", "on_time", "late") for h in slip["handovers"])
    trail = api.get(f"/api/v1/dossiers/{code}/audit", bearer("auditor", "883")).json()["entries"]
    assert [entry["action"] for entry in trail] == ["receive"] + [action for action, _, _ in steps]
    assert trail[2]["reason"] == "Hồ sơ hợp lệ" and trail[2]["actor"] == "handling_officer@89"
    assert (trail[3]["status_before"], trail[3]["status_after"]) == (4, 6)


def test_online_registration_is_tracked_by_its_portal_only(api):
    portal, other_portal = bearer("portal", "89", sub="portal-an-giang"), bearer("portal", "89", sub="other")
    body = {"procedure_code": BIRTH, "receiving_unit": DESK, "channel": "online", "applicant": APPLICANT}
    response = requests.post(f"{api.base}/api/v1/registrations", json=body, headers=portal, timeout=10)
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    assert response.json()["status"] == 1 and response.json()["received_at"] is None
    assert api.get(f"/api/v1/dossiers/{code}", portal).status_code == 200
    assert api.get(f"/api/v1/dossiers/{code}", other_portal).status_code == 404
    assert api.get("/api/v1/dossiers", other_portal).json()["count"] == 0
    assert [d["code"] for d in api.get("/api/v1/dossiers", portal).json()["results"]] == [code]
    assert api.get(f"/api/v1/dossiers/{code}/forms/receipt", portal).status_code == 404  # not received yet
    assert api.act(code, "receive", portal).status_code == 403
    receipt = api.act(code, "receive", DESK_OFFICER)
    assert receipt.status_code == 200 and receipt.json()["status"] == 2
    form = api.get(f"/api/v1/dossiers/{code}/forms/receipt", portal).json()
    assert form["form"] == "01" and form["channel"] == "online" and form["officer"] == f"desk_officer@{DESK}"
    withdrawal = api.act(code, "withdraw", portal, {"reason": "Đã đăng ký ở nơi khác"})
    assert withdrawal.status_code == 200 and withdrawal.json()["status"] == 7
    assert api.get(f"/api/v1/dossiers/{code}/audit", portal).status_code == 404  # officers' names: staff only


def test_a_filing_tells_decision_766_what_was_digitised_and_the_event_carries_counts_only(api):
    """docs/domain.md §12: counts of components and the VNeID flag at filing, on the dossier and its event."""
    engine = sa.create_engine(api.database_url)
    dossier = received(api, components={"digitised": 2, "national": 1}, vneid_verified=True)
    assert dossier["components"] == {"digitised": 2, "reused": 0, "national": 1}
    assert dossier["vneid_verified"] is True
    with engine.connect() as connection:
        body = connection.execute(
            sa.select(pipeline.outbox.c.body).where(pipeline.outbox.c.subject == dossier["code"])
        ).scalar_one()
    engine.dispose()
    event = json.loads(body)
    assert event["type"] == "vn.motcua.dossier.received"
    fields = ("components_digitised", "components_reused", "components_national", "vneid_verified")
    assert [event["data"][name] for name in fields] == [2, 0, 1, True]
    assert APPLICANT["id_number"] not in json.dumps(event)


# --- refusals of the rules --------------------------------------------------------------------------


def test_an_illegal_transition_is_409_and_changes_nothing(api, rabbit_config):
    code = received(api)["code"]
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    try:
        before = api.get(f"/api/v1/dossiers/{code}", DESK_OFFICER).json()
        counts = api.counts()
        response = api.act(code, "decide", bearer("leader", DESK), {"decision": "approved"})
        subscriber.drain(timeout=1.0)
    finally:
        subscriber.close()
    assert response.status_code == 409
    problem = response.json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert problem["current_status"] == 2 and problem["current_status_name"] == "received"
    assert problem["allowed_actions"] == [
        "start_processing",
        "request_supplement",
        "withdraw",
        "stop",
        "apologize",
    ]
    assert api.get(f"/api/v1/dossiers/{code}", DESK_OFFICER).json() == before
    # The receipt's own event may still be on its way from the outbox; nothing after it may appear.
    later = [e for e in subscriber.envelopes if e["subject"] != code or int(e["sequence"]) > 1]
    assert api.counts() == counts and later == []


def test_apology_stop_and_forms(api):
    code = received(api)["code"]
    assert api.act(code, "start_processing", DESK_OFFICER).status_code == 200
    dossier = api.get(f"/api/v1/dossiers/{code}", PROVINCE_OFFICER).json()
    new_due = (datetime.fromisoformat(dossier["due_at"]) + timedelta(days=3)).isoformat()
    apology = api.act(code, "apologize", PROVINCE_OFFICER, {"reason": "Chờ xác minh", "new_due_at": new_due})
    assert apology.status_code == 200, apology.text
    assert apology.json()["original_due_at"] == dossier["original_due_at"] != apology.json()["due_at"]
    form = api.get(f"/api/v1/dossiers/{code}/forms/apology", PROVINCE_OFFICER).json()
    assert form["form"] == "04" and form["reason"] == "Chờ xác minh"
    assert api.get(f"/api/v1/dossiers/{code}/forms/stop_notice", PROVINCE_OFFICER).status_code == 404
    assert api.act(code, "stop", PROVINCE_OFFICER, {"reason": "Tranh chấp đất đai"}).status_code == 200
    assert api.get(f"/api/v1/dossiers/{code}/forms/stop_notice", PROVINCE_OFFICER).json()["form"] == "05"
    assert api.get(f"/api/v1/dossiers/{code}/forms/refusal", PROVINCE_OFFICER).status_code == 404
    assert api.get(f"/api/v1/dossiers/{code}/forms/nonsense", PROVINCE_OFFICER).status_code == 404
    pdf = api.get(f"/api/v1/dossiers/{code}/forms/receipt.pdf", DESK_OFFICER)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_a_refused_registration_has_its_form_03(api):
    portal = bearer("portal", "89", sub="portal-an-giang")
    body = {"procedure_code": BIRTH, "receiving_unit": DESK, "channel": "online", "applicant": APPLICANT}
    code = requests.post(f"{api.base}/api/v1/registrations", json=body, headers=portal, timeout=10).json()[
        "code"
    ]
    assert api.act(code, "refuse", DESK_OFFICER, {"reason": "Không thuộc thẩm quyền"}).json()["status"] == 3
    form = api.get(f"/api/v1/dossiers/{code}/forms/refusal", portal).json()
    assert form["form"] == "03" and form["reason"] == "Không thuộc thẩm quyền"
    assert api.get(f"/api/v1/dossiers/{code}/forms/receipt.pdf", portal).status_code == 404


def test_a_dossier_that_came_by_post_is_not_received_or_refused_by_a_click(api):
    """Filed by its pickup's hand-over record only (Decision 45/2016): the desk's click is a 409."""
    operator = bearer("postal_operator", "89", sub="vnpost")
    body = {"procedure_code": BIRTH, "receiving_unit": DESK, "channel": "postal", "applicant": APPLICANT}
    registered = requests.post(f"{api.base}/api/v1/registrations", json=body, headers=operator, timeout=10)
    assert registered.status_code == 201, registered.text
    code = registered.json()["code"]
    assert registered.json()["allowed_actions"] == ["withdraw"]
    counts = api.counts()
    for action, action_body in (("receive", {}), ("refuse", {"reason": "Không thuộc thẩm quyền"})):
        answer = api.act(code, action, DESK_OFFICER, action_body)
        assert answer.status_code == 409, answer.text
        problem = answer.json()
        assert "hand-over record" in problem["detail"] and problem["allowed_actions"] == ["withdraw"]
    assert api.counts() == counts and api.get(f"/api/v1/dossiers/{code}", DESK_OFFICER).json()["status"] == 1


# --- idempotency ------------------------------------------------------------------------------------


def test_an_action_replayed_with_its_idempotency_key_happens_once(api):
    code = received(api)["code"]
    headers = {**DESK_OFFICER, "Idempotency-Key": "start-1"}
    first = api.act(code, "start_processing", headers)
    counts = api.counts()
    again = api.act(code, "start_processing", headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert api.counts() == counts
    other = api.act(code, "start_processing", headers, {"handling_unit": "89-STP"})
    assert other.status_code == 422 and other.json()["type"].endswith("/problems/idempotency-key-reused")


# --- bad input --------------------------------------------------------------------------------------


@pytest.fixture
def victim(api) -> str:
    return received(api)["code"]


BAD = [
    # (method, path, headers, body or raw, status, pointer)
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {
            "procedure_code": LAND,
            "receiving_unit": DESK,
            "applicant": APPLICANT,
            "components": {"reused": -1},
        },
        422,
        "/components/reused",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {
            "procedure_code": LAND,
            "receiving_unit": DESK,
            "applicant": APPLICANT,
            "vneid_verified": "yes please",
        },
        422,
        "/vneid_verified",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {"procedure_code": LAND, "receiving_unit": DESK, "applicant": APPLICANT, "priority": "high"},
        422,
        "/priority",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {"procedure_code": LAND, "receiving_unit": DESK, "applicant": {**APPLICANT, "full_name": 42}},
        422,
        "/applicant/full_name",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        bearer("desk_officer", "89"),
        {"procedure_code": LAND, "receiving_unit": "99999", "applicant": APPLICANT},
        422,
        "/receiving_unit",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {"procedure_code": "9.999999", "receiving_unit": DESK, "applicant": APPLICANT},
        422,
        "/procedure_code",
    ),
    (
        "POST",
        "/api/v1/dossiers",
        bearer("desk_officer", "30283"),
        {"procedure_code": LAND, "receiving_unit": DESK, "applicant": APPLICANT},
        403,
        None,
    ),
    (
        "POST",
        "/api/v1/dossiers",
        DESK_OFFICER,
        {"procedure_code": BIRTH, "receiving_unit": DESK, "channel": "postal", "applicant": APPLICANT},
        422,
        "/channel",
    ),
    (
        "POST",
        "/api/v1/registrations",
        bearer("portal", "89"),
        {"procedure_code": BIRTH, "receiving_unit": DESK, "channel": "counter", "applicant": APPLICANT},
        422,
        "/channel",
    ),
    (
        "POST",
        "{victim}/actions/request_supplement",
        DESK_OFFICER,
        {"items": "CCCD", "reason": "x"},
        422,
        "/items",
    ),
    (
        "POST",
        "{victim}/actions/request_supplement",
        DESK_OFFICER,
        {"items": [], "reason": "x"},
        422,
        "/items",
    ),
    ("POST", "{victim}/actions/refuse", DESK_OFFICER, {"reason": "x", "extra": 1}, 422, "/extra"),
    ("POST", "{victim}/actions/return", DESK_OFFICER, {"method": "postal"}, 422, "/method"),
    (
        "POST",
        "{victim}/actions/start_processing",
        DESK_OFFICER,
        {"handling_unit": "77777"},
        422,
        "/handling_unit",
    ),
    (
        "POST",
        "{victim}/actions/apologize",
        bearer("handling_officer", DESK),
        {"reason": "x", "new_due_at": "2999-01-01T00:00:00Z"},
        422,
        "/new_due_at",
    ),
    (
        "POST",
        "{victim}/actions/apologize",
        bearer("handling_officer", DESK),
        {"reason": "x", "new_due_at": "2030-01-01T00:00:00"},
        422,
        "/new_due_at",
    ),
    ("POST", "{victim}/actions/start_processing", bearer("desk_officer", "30283"), {}, 403, None),
    ("POST", "{victim}/actions/start_processing", bearer("auditor", "89"), {}, 403, None),
    ("POST", "{victim}/actions/teleport", DESK_OFFICER, {}, 404, None),
    ("POST", "/api/v1/dossiers/NO-SUCH-CODE/actions/refuse", DESK_OFFICER, {"reason": "x"}, 404, None),
    ("GET", "{victim}", bearer("auditor", "30283"), None, 404, None),
    ("GET", "{victim}/audit", bearer("desk_officer", "884"), None, 404, None),
    ("GET", "/api/v1/dossiers?received_from=1899-12-31", DESK_OFFICER, None, 422, "/received_from"),
    ("GET", "/api/v1/dossiers?page_size=501", DESK_OFFICER, None, 422, "/page_size"),
    ("GET", "/api/v1/dossiers?status=11", DESK_OFFICER, None, 422, "/status/0"),
    ("GET", "/api/v1/dossiers?unit=99999", DESK_OFFICER, None, 422, "/unit"),
    ("GET", "/api/v1/dossiers?unit=30283", DESK_OFFICER, None, 403, None),
    ("GET", "/api/v1/dossiers?colour=red", DESK_OFFICER, None, 422, "/colour"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "pointer"), BAD)
def test_bad_input_is_a_4xx_problem_naming_the_field_and_changes_nothing(
    api, victim, method, path, headers, body, status, pointer
):
    counts = api.counts()
    url = api.base + path.replace("{victim}", f"/api/v1/dossiers/{victim}")
    response = requests.request(method, url, json=body, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if pointer:
        assert pointer in [error["pointer"] for error in problem["errors"]], problem
    assert api.counts() == counts


def test_oversized_and_non_json_bodies(api, victim):
    counts = api.counts()
    url = f"{api.base}/api/v1/dossiers/{victim}/actions/refuse"
    huge = requests.post(
        url,
        data='{"reason": "' + "x" * 300_000 + '"}',
        timeout=10,
        headers={**DESK_OFFICER, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["status"] == 413
    text = requests.post(
        url, data="reason=x", timeout=10, headers={**DESK_OFFICER, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415 and text.json()["status"] == 415
    json_headers = {**DESK_OFFICER, "Content-Type": "application/json"}
    broken = requests.post(url, data="{", timeout=10, headers=json_headers)
    assert broken.status_code == 400
    deep = requests.post(url, data="[" * 50_000 + "]" * 50_000, timeout=10, headers=json_headers)
    assert deep.status_code == 400
    nul = requests.post(url, json={"reason": "a\x00b"}, timeout=10, headers=DESK_OFFICER)
    assert nul.status_code == 422 and nul.json()["errors"][0]["pointer"] == "/reason"
    assert api.get("/api/v1/dossiers/A%00B", DESK_OFFICER).status_code == 404
    replay = api.act(victim, "refuse", {**DESK_OFFICER, "Idempotency-Key": "k\x01"}, {"reason": "x"})
    assert replay.status_code == 400
    assert api.counts() == counts


# --- search -------------------------------------------------------------------------------------------


def test_search_by_jurisdiction_status_procedure_channel_date_and_pages(api):
    codes = [received(api)["code"] for _ in range(3)]
    other = received(api, unit="30316", procedure=BIRTH)["code"]  # district 884
    assert api.act(codes[0], "start_processing", DESK_OFFICER).status_code == 200
    district = bearer("auditor", "883")

    def search(headers=district, **params) -> dict:
        response = api.get("/api/v1/dossiers", headers, **params)
        assert response.status_code == 200, response.text
        return response.json()

    assert {d["code"] for d in search()["results"]} == set(codes)
    assert {d["code"] for d in search(bearer("auditor", "89"))["results"]} == {*codes, other}
    assert search(bearer("auditor", "89"), unit="884")["count"] == 1
    assert [d["code"] for d in search(status=4)["results"]] == [codes[0]]
    assert search(status=[2, 4])["count"] == 3
    assert search(procedure=BIRTH)["count"] == 0 and search(field="land")["count"] == 3
    assert search(channel="online")["count"] == 0 and search(overdue="false")["count"] == 3
    assert search(received_from="2000-01-01", received_to="2099-12-31")["count"] == 3
    assert search(received_to="2001-01-01")["count"] == 0
    first = search(page_size=2)
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    # Without PUBLIC_BASE_URL the links are paths (never the request's Host): resolved against the API's.
    assert first["next"].startswith("/api/v1/dossiers?")
    second = requests.get(api.base + first["next"], headers=district, timeout=10).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert {d["code"] for d in first["results"] + second["results"]} == set(codes)
    assert "applicant" not in first["results"][0]


# --- concurrency --------------------------------------------------------------------------------------


def test_twenty_parallel_receipts_get_twenty_consecutive_codes(api):
    barrier = threading.Barrier(20)

    def one(_):
        barrier.wait()
        return api.receive(procedure=BIRTH)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))
    assert [r.status_code for r in responses] == [201] * 20, [
        r.text for r in responses if r.status_code != 201
    ]
    codes = [r.json()["code"] for r in responses]
    prefixes = {code.rsplit("-", 1)[0] for code in codes}
    assert len(prefixes) == 1 and prefixes.pop().startswith("000.01.31.H01-")
    assert sorted(int(code.rsplit("-", 1)[1]) for code in codes) == list(range(1, 21))


# --- the overdue watch ----------------------------------------------------------------------------------


def test_the_overdue_watch_emits_once_per_due_time(service_config, container_factory, rabbit_config):
    api = start(service_config, container_factory, OVERDUE_WATCH_SECONDS=0.2)
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.overdue.#", "dossier.due_soon.#")
    code = received(api)["code"]
    # Travel in time: the appointment passed yesterday.
    now = datetime.now(UTC)
    engine = sa.create_engine(api.database_url)
    with engine.begin() as connection:
        connection.execute(
            dossiers.update()
            .where(dossiers.c.code == code)
            .values(due_at=now - timedelta(days=1), original_due_at=now - timedelta(days=1), watch_at=now)
        )
    engine.dispose()
    try:
        subscriber.drain(expect=1, timeout=10, quiet=2.0)
    finally:
        subscriber.close()
    appointment = [e for e in subscriber.envelopes if e["data"].get("step") is None]
    assert [e["type"] for e in appointment] == ["vn.motcua.dossier.overdue"]
    assert appointment[0]["subject"] == code and appointment[0]["data"]["overdue_since"]
    assert len({e["sequence"] for e in subscriber.envelopes}) == len(subscriber.envelopes)
    found = api.get("/api/v1/dossiers", DESK_OFFICER, overdue="true").json()
    assert [d["code"] for d in found["results"]] == [code] and found["results"][0]["overdue"] is True


def test_failing_dossiers_do_not_block_the_overdue_watch(
    service_config, container_factory, rabbit_config, caplog
):
    # batches of 3, and 8 dossiers the watch cannot process (their unit is gone from the map) ahead of
    # a good one: before, the same failing dossiers filled every batch and the good one never came up
    api = start(service_config, container_factory, OVERDUE_WATCH_SECONDS=0.2, OVERDUE_WATCH_BATCH=3)
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.overdue.#")
    codes = [received(api)["code"] for _ in range(9)]
    broken, good = codes[:8], codes[8]
    now = datetime.now(UTC)
    passed = now - timedelta(days=1)
    failures_before = (
        REGISTRY.get_sample_value("motcua_overdue_watch_failures_total", {"service": "dossier"}) or 0
    )
    engine = sa.create_engine(api.database_url)
    with engine.begin() as connection:
        for n, code in enumerate(broken):
            connection.execute(
                dossiers.update()
                .where(dossiers.c.code == code)
                .values(
                    receiving_unit="GONE",
                    due_at=passed,
                    original_due_at=passed,
                    watch_at=passed + timedelta(seconds=n),
                )
            )
        connection.execute(
            dossiers.update()
            .where(dossiers.c.code == good)
            .values(due_at=passed, original_due_at=passed, watch_at=now)
        )
    try:
        subscriber.drain(expect=1, timeout=15, quiet=1.0)
    finally:
        subscriber.close()
    assert [e["subject"] for e in subscriber.envelopes] == [good]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(dossiers.c.code, dossiers.c.watch_at).where(dossiers.c.code.in_(broken))
        ).all()
    engine.dispose()
    # each failing dossier was moved on (its watch_at is later than where it stood), and tried again
    assert all(row.watch_at > now for row in rows) and len(rows) == 8
    failures = REGISTRY.get_sample_value("motcua_overdue_watch_failures_total", {"service": "dossier"})
    assert failures - failures_before >= 8
    # ... but logged once each, however often it failed
    logged = [r for r in caplog.records if "overdue watch" in r.getMessage()]
    assert sorted(code for r in logged for code in broken if code in r.getMessage()) == sorted(broken)


# --- migration --------------------------------------------------------------------------------------------


def test_migration_0002_backfills_dossiers_received_under_0001(database_url):
    upgrade("dossier", database_url, "0001")
    engine = sa.create_engine(database_url)
    received_at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    # As the 0001 column stored it: aware on PostgreSQL, naive UTC on SQLite.
    stored = (
        (lambda moment: moment) if engine.dialect.name == "postgresql" else (lambda m: m.replace(tzinfo=None))
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO dossiers (code, procedure_code, procedure_version, procedure_field, "
                "receiving_unit, handling_unit, channel, return_method, status, received_at, due_at, "
                "applicant, event_sequence) "
                "VALUES ('X-1', :p, 1, 'civil_status', '26740', '26740', 1, 0, 2, :r, :d, '{}', 1)"
            ),
            {"p": CERTIFICATE, "r": stored(received_at), "d": stored(received_at + timedelta(days=2))},
        )
    upgrade("dossier", database_url)
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(
                dossiers.c.receiving_path,
                dossiers.c.duration,
                dossiers.c.created_at,
                dossiers.c.original_due_at,
            )
        ).one()
    engine.dispose()
    assert row.receiving_path == "79.26740" and row.duration == "3 working_days"
    assert row.created_at == received_at and row.original_due_at == received_at + timedelta(days=2)


def test_migration_0004_keeps_the_notices_of_dossiers_given_them_before(database_url):
    """Forms 02-05 now read the dossier's notices; a dossier given a supplement request and an apology
    under 0003 (when the forms read the audit rows' request bodies) shows the same forms after it."""
    upgrade("dossier", database_url, "0003")
    engine = sa.create_engine(database_url)
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    stored = (lambda m: m) if engine.dialect.name == "postgresql" else (lambda m: m.replace(tzinfo=None))
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO dossiers (code, procedure_code, procedure_version, procedure_field, "
                "receiving_unit, handling_unit, channel, return_method, status, received_at, due_at, "
                "applicant, event_sequence, created_at) "
                "VALUES ('X-1', :p, 1, 'civil_status', '26740', '26740', 1, 0, 4, :r, :d, '{}', 3, :r)"
            ),
            {"p": CERTIFICATE, "r": stored(at), "d": stored(at + timedelta(days=2))},
        )
        for offset, action, reason, details in (
            (
                1,
                "request_supplement",
                "Thiếu giấy tờ",
                '{"items": ["Bản sao CCCD"], "reason": "Thiếu giấy tờ"}',
            ),
            (
                2,
                "apologize",
                "Chờ xác minh",
                '{"reason": "Chờ xác minh", "new_due_at": "2026-03-09T17:00:00+07:00"}',
            ),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO dossier_audit (dossier_code, at, actor, roles, action, reason, "
                    "status_before, status_after, request_id, details) "
                    "VALUES ('X-1', :at, 'officer', '[]', :action, :reason, 4, 4, 'r', :details)"
                ),
                {
                    "at": stored(at + timedelta(hours=offset)),
                    "action": action,
                    "reason": reason,
                    "details": details,
                },
            )
    upgrade("dossier", database_url)
    with engine.connect() as connection:
        notices = connection.execute(sa.select(dossiers.c.notices)).scalar_one()
    engine.dispose()
    assert [(n.action.value, n.reason, n.items) for n in notices] == [
        ("request_supplement", "Thiếu giấy tờ", ("Bản sao CCCD",)),
        ("apologize", "Chờ xác minh", ()),
    ]
    assert notices[0].issued_at == at + timedelta(hours=1)
    assert notices[1].new_due_at == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)  # 17:00 in Vietnam


def test_the_audit_trail_is_append_only(api, victim):
    engine = sa.create_engine(api.database_url)
    with pytest.raises(sa.exc.DatabaseError), engine.begin() as connection:
        connection.execute(dossier_audit.update().values(reason="rewritten"))
    with pytest.raises(sa.exc.DatabaseError), engine.begin() as connection:
        connection.execute(dossier_audit.delete())
    engine.dispose()
    assert api.rows(dossier_audit, dossier_code=victim) == 1
