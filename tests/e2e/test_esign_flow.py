"""Issue 10's "done": decided → document → the leader signs → the clerk seals → the dossier's sign and
stamp steps recorded from the events → resolved → returned; and a refusal that sends the dossier back
for appraisal. The dossier and e-signature services and the test TSA run as processes, on the real
broker and each database, with the keys in files and in SoftHSM2.

What is expected comes from the rules: the sign step is the leader's, the stamp step the clerk's,
each audited with the signer's account and "via esign"; the verifier says "valid and trusted" for both
signatures.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from shared.auth import DEV_SECRET
from tests.conftest import bearer, free_port
from tests.e2e.test_processes import start, wait_live
from tests.integration.test_dossier_receipt import APPLICANT, COMMUNE_PROCEDURE
from tests.support.broker import Subscriber, wait_for
from tests.support.esign import PASSPHRASE, softhsm_module, softhsm_token, tsa_process

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
COMMUNE = "26740"
DESK = bearer("desk_officer", COMMUNE)
HANDLING = bearer("handling_officer", COMMUNE)
LEADER = bearer("leader", COMMUNE, sub="leader.an@26740")
CLERK = bearer("clerk", COMMUNE, sub="clerk.binh@26740")


class System:
    def __init__(self, env: dict[str, str]) -> None:
        self.dossier = f"http://{env['DOSSIER_ADDRESS']}/api/v1"
        self.esign = f"http://{env['ESIGN_ADDRESS']}/api/v1"
        self.amqp_uri = env["AMQP_URI"]

    def act(self, code: str, action: str, headers: dict, body: dict | None = None) -> dict:
        r = requests.post(
            f"{self.dossier}/dossiers/{code}/actions/{action}", json=body or {}, headers=headers, timeout=10
        )
        assert r.status_code == 200, (action, r.text)
        return r.json()

    def dossier_of(self, code: str) -> dict:
        return requests.get(f"{self.dossier}/dossiers/{code}", headers=DESK, timeout=10).json()

    def audit(self, code: str) -> list[dict]:
        r = requests.get(f"{self.dossier}/dossiers/{code}/audit", headers=DESK, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        return body["entries"]

    def decided(self, decision: dict | None = None) -> str:
        r = requests.post(
            f"{self.dossier}/dossiers",
            json={"procedure_code": COMMUNE_PROCEDURE, "receiving_unit": COMMUNE, "applicant": APPLICANT},
            headers=DESK,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        self.act(code, "start_processing", DESK)
        self.act(code, "appraise", HANDLING, {"opinion": "Hồ sơ hợp lệ"})
        self.act(code, "decide", LEADER, decision or {"decision": "approved"})
        return code

    def refused_action(self, code: str, action: str, headers: dict) -> requests.Response:
        return requests.post(
            f"{self.dossier}/dossiers/{code}/actions/{action}", json={}, headers=headers, timeout=10
        )

    def signing_request(self, code: str) -> dict | None:
        r = requests.get(f"{self.esign}/results/{code}/signing-request", headers=LEADER, timeout=10)
        return r.json() if r.status_code == 200 else None

    def confirm(self, request: dict, step: str, headers: dict, name: str) -> dict:
        r = requests.post(
            f"{self.esign}/signing-requests/{request['id']}/{step}",
            json={"document_sha256": request["document_sha256"], "signer_name": name},
            headers=headers,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return r.json()


# Each key store on one database kind (tests/conftest.py pairs them; MOTCUA_TEST_ALL_PAIRS=1 runs all four).
DATABASE_FOR_VARIANT = {"files": "sqlite", "pkcs11": "postgresql"}


@pytest.fixture(params=["files", "pkcs11"])
def system(request, rabbit_config, database_url, tmp_path):
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "JWT_SECRET": DEV_SECRET,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_POLL_SECONDS": "0.2",
        "DOSSIER_DATABASE_URL": database_url,
        "ESIGN_DATABASE_URL": database_url,
        "DOSSIER_ADDRESS": f"127.0.0.1:{free_port()}",
        "ESIGN_ADDRESS": f"127.0.0.1:{free_port()}",
        "ESIGN_KEY_PASSPHRASE": PASSPHRASE,
        "ESIGN_PKI_DIR": str(tmp_path / "pki"),
        "ESIGN_STORE_DIR": str(tmp_path / "documents"),
        "ESIGN_KEYSTORE": request.param,
    }
    if request.param == "pkcs11" and softhsm_module() is None:
        message = "install Debian's softhsm2 package (scripts/ensure-services.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tsa_process(tmp_path / "pki", free_port()) as tsa_url:
        env["ESIGN_TSA_URL"] = tsa_url
        if request.param == "pkcs11":
            token_context = softhsm_token(tmp_path / "hsm")
            env.update(token_context.__enter__())
            env["SOFTHSM2_CONF"] = os.environ["SOFTHSM2_CONF"]
        processes: list[subprocess.Popen] = []
        try:
            processes = [start("dossier", env), start("esign", env)]
            wait_live(f"http://{env['DOSSIER_ADDRESS']}", processes[0])
            wait_live(f"http://{env['ESIGN_ADDRESS']}", processes[1])
            yield System(env)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                print(" ".join(process.args), "\n", process.stdout.read()[-6000:])
            if request.param == "pkcs11":
                token_context.__exit__(None, None, None)


def test_decided_signed_sealed_recorded_resolved_returned(system):
    code = system.decided()
    request = wait_for(lambda: system.signing_request(code), timeout=20)
    assert request, "the decided event opened no signing request"
    signed = system.confirm(request, "signature", LEADER, "Nguyễn Văn An")
    sealed = system.confirm(signed, "seal", CLERK, "Trần Thị Bình")
    assert sealed["stage"] == "sealed"

    def recorded() -> dict:
        return {e["action"]: e for e in system.audit(code) if e["action"] in ("sign", "stamp")}

    steps = wait_for(lambda: len(recorded()) == 2 and recorded(), timeout=20)
    assert steps, system.audit(code)
    assert steps["sign"]["actor"] == "leader.an@26740" and steps["sign"]["details"]["via"] == "esign"
    assert steps["stamp"]["actor"] == "clerk.binh@26740" and steps["stamp"]["details"]["via"] == "esign"
    assert steps["stamp"]["details"]["document_sha256"] == sealed["document_sha256"]

    system.act(code, "resolve", HANDLING)
    returned = system.act(code, "return", DESK, {"method": "counter"})
    assert returned["status"] == 10

    result = requests.get(f"{system.esign}/results/{code}", headers=DESK, timeout=10)
    assert result.status_code == 200
    report = requests.post(
        f"{system.esign}/verifications",
        data=result.content,
        headers={"Content-Type": "application/pdf"},
        timeout=30,
    ).json()
    assert report["verdict"] == "valid and trusted", report
    assert [s["timestamp"] is not None for s in report["signatures"]] == [True, True]


def test_a_refusal_sends_the_dossier_back_for_appraisal(system):
    subscriber = Subscriber(system.amqp_uri, "#")
    code = system.decided()
    request = wait_for(lambda: system.signing_request(code), timeout=20)
    r = requests.post(
        f"{system.esign}/signing-requests/{request['id']}/refusal",
        json={"reason": "Cần xác minh thêm", "reason_code": "verification_needed"},
        headers=LEADER,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    back = wait_for(lambda: (d := system.dossier_of(code)) and d.get("decision") is None and d, timeout=20)
    assert back and back["status"] == 4, system.dossier_of(code)
    (entry,) = [e for e in system.audit(code) if e["action"] == "send_back_for_appraisal"]
    assert entry["actor"] == "leader.an@26740" and "verification_needed" in entry["reason"]
    assert request["id"] in entry["reason"]
    # Appraised and decided again: a new signing request for the new decision.
    system.act(code, "appraise", HANDLING, {"opinion": "Đã xác minh"})
    system.act(code, "decide", LEADER, {"decision": "approved"})
    again = wait_for(
        lambda: (s := system.signing_request(code)) and s["id"] != request["id"] and s, timeout=20
    )
    assert again and again["stage"] == "awaiting_leader"
    system.confirm(again, "signature", LEADER, "Nguyễn Văn An")
    # Every source numbers its events of one dossier 1, 2, 3 … across its records of it (the dossier;
    # the e-signature service's two signing requests): no restart, no repeat, no gap.
    try:
        envelopes = wait_for(
            lambda: (
                (got := [e for e in subscriber_envelopes(subscriber) if e["subject"] == code])
                and {"vn.motcua.esign.signed", "vn.motcua.dossier.signed"} <= {e["type"] for e in got}
                and got
            ),
            timeout=20,
        )
    finally:
        subscriber.close()
    assert envelopes, "the signature's events did not arrive"
    by_source: dict[str, list[tuple[int, str]]] = {}
    for envelope in envelopes:
        by_source.setdefault(envelope["source"], []).append((int(envelope["sequence"]), envelope["type"]))
    assert set(by_source) == {"/motcua/dossier", "/motcua/esign"}
    for source, numbered in by_source.items():
        assert sorted(n for n, _ in numbered) == list(range(1, len(numbered) + 1)), (source, numbered)
    assert sorted(by_source["/motcua/esign"]) == [
        (1, "vn.motcua.esign.refused"),
        (2, "vn.motcua.esign.signed"),
    ]


def subscriber_envelopes(subscriber: Subscriber) -> list[dict]:
    subscriber.drain(timeout=0.5, quiet=0)
    return subscriber.envelopes


def test_a_rejection_is_signed_and_sealed_before_it_is_resolved(system):
    code = system.decided(
        {"decision": "rejected", "reason": "Không đủ điều kiện", "reason_code": "conditions_not_met"}
    )
    # Not resolvable unsigned: the leader's signature would otherwise arrive on a resolved dossier.
    refused = system.refused_action(code, "resolve", HANDLING)
    assert refused.status_code == 409, refused.text
    assert "resolve" not in refused.json()["allowed_actions"]
    request = wait_for(lambda: system.signing_request(code), timeout=20)
    assert request and request["decision"] == "rejected" and request["stage"] == "awaiting_leader"
    signed = system.confirm(request, "signature", LEADER, "Nguyễn Văn An")
    sealed = system.confirm(signed, "seal", CLERK, "Trần Thị Bình")
    assert sealed["stage"] == "sealed"
    steps = wait_for(lambda: {e["action"] for e in system.audit(code)} >= {"sign", "stamp"}, timeout=20)
    assert steps, system.audit(code)
    resolved = system.act(code, "resolve", HANDLING)
    assert resolved["status"] == 9 and resolved["decision"] == "rejected"
