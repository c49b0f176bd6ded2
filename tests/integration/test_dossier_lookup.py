"""Tra cứu hồ sơ over HTTP, on the real broker and both databases: what proves the right to look, what
the citizen is shown, and how guesses are refused (the rules: docs/services.md "The citizen's side").

Expected values come from the rules: a code alone opens nothing; an unknown code, a wrong secret and a
locked code get one same answer; the answer names no person; the secret is shown once and kept nowhere.
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import datetime, timedelta

import pytest
import requests

from services.dossier.service import DossierService
from shared.units import EXAMPLE_3LEVEL_FILE
from tests.conftest import bearer
from tests.support.broker import Subscriber

pytestmark = pytest.mark.integration

DESK = "30280"
LAND = "1.012797"  # interlinked: the provincial land office handles it, the tax department in between
APPLICANT = {
    "full_name": "Trần Thị Bích Ngọc",
    "id_number": "079301007788",
    "phone": "0987654321",
    "email": "ngoc.tran@example.vn",
    "address": "45 Nguyễn Huệ, Phường Bến Nghé",
}
DESK_OFFICER = bearer("desk_officer", DESK)
PROVINCE_OFFICER = bearer("handling_officer", "89")


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def receive(self, headers: dict | None = None) -> requests.Response:
        body = {"procedure_code": LAND, "receiving_unit": DESK, "applicant": APPLICANT}
        return requests.post(
            f"{self.base}/api/v1/dossiers", json=body, headers={**DESK_OFFICER, **(headers or {})}, timeout=10
        )

    def filed(self) -> dict:
        response = self.receive()
        assert response.status_code == 201, response.text
        return response.json()

    def look_up(self, **body) -> requests.Response:
        return requests.post(f"{self.base}/api/v1/lookups", json=body, timeout=10)

    def act(self, code: str, action: str, headers: dict, body: dict | None = None) -> requests.Response:
        return requests.post(
            f"{self.base}/api/v1/dossiers/{code}/actions/{action}",
            json=body or {},
            headers=headers,
            timeout=10,
        )


def start(service_config, container_factory, **settings) -> Api:
    service_config["UNITS_FILE"] = str(EXAMPLE_3LEVEL_FILE)
    service_config.update({"LOOKUP_PER_MINUTE": 1000, "LOOKUP_PER_CODE_PER_MINUTE": 1000, **settings})
    container = container_factory(DossierService, service_config)
    container.start()
    return Api(f"http://{service_config['WEB_SERVER_ADDRESS']}")


@pytest.fixture
def api(service_config, container_factory) -> Api:
    return start(service_config, container_factory)


def personal(text: str) -> list[str]:
    """The applicant's data found in ``text`` (the view must have none)."""
    return [value for value in APPLICANT.values() if value in text]


def refusal(response: requests.Response) -> tuple[int, str, dict]:
    """What an answer says, less what differs on every request (its id and date)."""
    headers = {k: v for k, v in response.headers.items() if k not in ("X-Request-Id", "Date")}
    return response.status_code, response.text, headers


# --- what proves the right to look ----------------------------------------------------------------


def test_the_receipts_secret_opens_the_dossier_and_the_view_names_no_person(api):
    dossier = api.filed()
    code, lookup = dossier["code"], dossier["lookup"]
    assert len(lookup["secret"]) == 9 and lookup["secret"][4] == "-"
    assert lookup["url"].endswith(f"/tra-cuu#ma={code}&s={lookup['secret']}")

    response = api.look_up(code=code, secret=lookup["secret"])
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["code"] == code
    assert (view["status"], view["status_name"]) == (2, "Được tiếp nhận")
    assert view["procedure_name"] and view["receiving_unit_name"] != DESK
    assert view["received_at"] and view["appointment"]["due_at"] > view["received_at"]
    assert view["appointment"]["rescheduled_by_apology"] is False
    assert view["now_at"]["unit_name"] and view["to_do"] is None
    assert personal(response.text) == []
    assert response.headers["Cache-Control"] == "no-store"
    # Typed as read aloud: lower case, spaces, no hyphen.
    typed = lookup["secret"].replace("-", " ").lower()
    assert api.look_up(code=code, secret=typed).status_code == 200


def test_a_code_alone_opens_nothing(api):
    code = api.filed()["code"]
    for body in ({"code": code}, {"code": code, "secret": ""}, {"code": code, "id_number": ""}):
        response = api.look_up(**body)
        assert response.status_code == 422, body
        assert personal(response.text) == [] and "status_name" not in response.text


def test_the_identity_number_is_the_other_proof(api):
    code = api.filed()["code"]
    response = api.look_up(code=code, id_number=APPLICANT["id_number"])
    assert response.status_code == 200 and response.json()["code"] == code
    assert personal(response.text) == []
    assert api.look_up(code=code, id_number="079301007789").status_code == 404
    # Both proofs at once is not one proof.
    assert api.look_up(code=code, id_number=APPLICANT["id_number"], secret="ABCD-EFGH").status_code == 422


def test_an_unknown_code_a_wrong_secret_and_a_wrong_id_get_one_same_answer(api):
    code = api.filed()["code"]
    unknown = code[:-4] + "9999"
    wrong_secret = api.look_up(code=code, secret="ABCD-EFGH")
    no_such_code = api.look_up(code=unknown, secret="ABCD-EFGH")
    wrong_id = api.look_up(code=code, id_number="001001001001")
    unknown_id = api.look_up(code=unknown, id_number="001001001001")
    assert wrong_secret.status_code == 404
    assert refusal(wrong_secret) == refusal(no_such_code) == refusal(wrong_id) == refusal(unknown_id)


def test_an_unknown_code_and_a_wrong_secret_take_about_the_same_time(service_config, container_factory):
    api = start(service_config, container_factory, LOOKUP_MAX_FAILURES=1000)
    code = api.filed()["code"]
    unknown = code[:-4] + "9998"

    def timed(target: str) -> float:
        started = time.perf_counter()
        assert api.look_up(code=target, secret="ABCD-EFGH").status_code == 404
        return time.perf_counter() - started

    wrong, missing = [], []
    for _ in range(15):
        wrong.append(timed(code))
        missing.append(timed(unknown))
    a, b = statistics.median(wrong), statistics.median(missing)
    # Both read the code's rows and write one guess: no branch costs a query the other does not.
    assert abs(a - b) < max(a, b) * 0.5 + 0.005, (a, b)


def test_repeated_wrong_secrets_lock_the_code_for_a_while(service_config, container_factory):
    api = start(service_config, container_factory, LOOKUP_MAX_FAILURES=3, LOOKUP_LOCK_MINUTES=0.05)
    dossier = api.filed()
    code, secret = dossier["code"], dossier["lookup"]["secret"]
    unknown = code[:-4] + "9997"
    for _ in range(3):
        assert api.look_up(code=code, secret="ABCD-EFGH").status_code == 404
        assert api.look_up(code=unknown, secret="ABCD-EFGH").status_code == 404
    locked = api.look_up(code=code, secret=secret)
    # Locked, the right secret is refused as a wrong one is (and as an unknown, equally locked, code is).
    assert refusal(locked) == refusal(api.look_up(code=unknown, secret="ABCD-EFGH"))
    assert api.look_up(code=code, id_number=APPLICANT["id_number"]).status_code == 404
    time.sleep(3.2)  # LOOKUP_LOCK_MINUTES=0.05: 3 s
    assert api.look_up(code=code, secret=secret).status_code == 200


def test_rate_limits_per_client_and_per_code(service_config, container_factory):
    api = start(service_config, container_factory, LOOKUP_PER_CODE_PER_MINUTE=3, LOOKUP_PER_MINUTE=5)
    dossier = api.filed()
    code, secret = dossier["code"], dossier["lookup"]["secret"]
    answers = [api.look_up(code=code, secret=secret).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    # One more from this address is still allowed (5 a minute), the sixth is not, whatever the code.
    assert api.look_up(code=code[:-4] + "9996", secret=secret).status_code == 404
    flood = api.look_up(code=code[:-4] + "9995", secret=secret)
    assert flood.status_code == 429 and flood.json()["type"].endswith("/problems/too-many-requests")


# --- the secret: shown once, kept nowhere ---------------------------------------------------------


def test_the_secret_is_on_no_event_no_log_and_not_in_an_idempotent_replay(api, rabbit_config, caplog):
    subscriber = Subscriber(rabbit_config["AMQP_URI"], "dossier.#")
    caplog.set_level(logging.DEBUG)
    try:
        first = api.receive({"Idempotency-Key": "lookup-once"})
        secret = first.json()["lookup"]["secret"]
        replay = api.receive({"Idempotency-Key": "lookup-once"})
        api.look_up(code=first.json()["code"], secret=secret)
        api.look_up(code=first.json()["code"], secret="ZZZZ-ZZZZ")
        subscriber.drain(expect=1)
    finally:
        subscriber.close()
    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["lookup"] == {"secret": None, "url": None}
    assert replay.json()["code"] == first.json()["code"]
    bare = secret.replace("-", "")
    for text in [str(e) for e in subscriber.envelopes] + [r.getMessage() for r in caplog.records]:
        assert secret not in text and bare not in text and "ZZZZ" not in text


def test_the_receipt_carries_the_lookup_link_and_prints_the_secret_given(api):
    dossier = api.filed()
    code, secret = dossier["code"], dossier["lookup"]["secret"]
    form = requests.get(f"{api.base}/api/v1/dossiers/{code}/forms/receipt", headers=DESK_OFFICER, timeout=10)
    assert form.json()["lookup_url"].endswith(f"/tra-cuu#ma={code}") and secret not in form.text
    url = f"{api.base}/api/v1/dossiers/{code}/forms/receipt.pdf"
    printed = requests.post(url, json={"lookup_secret": secret}, headers=DESK_OFFICER, timeout=30)
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    wrong = requests.post(url, json={"lookup_secret": "ABCD-EFGH"}, headers=DESK_OFFICER, timeout=30)
    assert wrong.status_code == 422
    other_desk = bearer("desk_officer", "30283")
    assert (
        requests.post(url, json={"lookup_secret": secret}, headers=other_desk, timeout=30).status_code == 404
    )


def test_the_desk_issues_a_new_secret_and_the_old_one_stops_working(api):
    dossier = api.filed()
    code, old = dossier["code"], dossier["lookup"]["secret"]
    url = f"{api.base}/api/v1/dossiers/{code}/lookup-secret"
    assert requests.post(url, headers=PROVINCE_OFFICER, timeout=10).status_code in (403, 404)
    issued = requests.post(url, headers=DESK_OFFICER, timeout=10)
    assert issued.status_code == 200, issued.text
    new = issued.json()["lookup_secret"]
    assert issued.json()["form"] == "01" and issued.json()["lookup_url"].endswith(f"&s={new}")
    assert api.look_up(code=code, secret=old).status_code == 404
    assert api.look_up(code=code, secret=new).status_code == 200


# --- what the citizen is told to do -----------------------------------------------------------------


def test_the_view_says_what_to_bring_what_to_pay_and_the_apologys_new_appointment(api):
    dossier = api.filed()
    code, secret = dossier["code"], dossier["lookup"]["secret"]
    items = ["Bản sao Giấy chứng nhận quyền sử dụng đất", "Tờ khai lệ phí trước bạ"]
    answer = api.act(code, "request_supplement", DESK_OFFICER, {"items": items, "reason": "Thiếu giấy tờ"})
    assert answer.status_code == 200, answer.text
    view = api.look_up(code=code, secret=secret).json()
    assert (view["status"], view["status_name"]) == (5, "Yêu cầu bổ sung giấy tờ")
    assert view["to_do"] == {"kind": "supplement", "items": items, "amount_vnd": None}

    second = api.filed()
    code, secret = second["code"], second["lookup"]["secret"]
    assert api.act(code, "start_processing", DESK_OFFICER).status_code == 200
    new_due = (datetime.fromisoformat(second["due_at"]) + timedelta(days=3)).isoformat()
    apology = {"reason": "Chờ xác minh", "new_due_at": new_due}
    assert api.act(code, "apologize", PROVINCE_OFFICER, apology).status_code == 200
    assert api.act(code, "request_payment", PROVINCE_OFFICER, {"amount_vnd": 525_000}).status_code == 200
    view = api.look_up(code=code, secret=secret).json()
    assert (view["status"], view["status_name"]) == (6, "Yêu cầu thực hiện nghĩa vụ tài chính")
    assert view["to_do"] == {"kind": "payment", "items": [], "amount_vnd": 525_000}
    assert view["appointment"]["rescheduled_by_apology"] is True
    assert datetime.fromisoformat(view["appointment"]["due_at"]) == datetime.fromisoformat(new_due)
    assert personal(str(view)) == []


def test_the_page_is_served_with_a_strict_content_security_policy(api):
    page = requests.get(f"{api.base}/tra-cuu", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert "script-src 'sha256-" in policy and "connect-src 'self'" in policy
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert 'lang="vi"' in page.text and "http://" not in page.text and "https://" not in page.text
