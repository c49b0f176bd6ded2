"""Verification checks revocation over the network (OCSP and CRLs), against a real responder process.

The rules (RFC 5280, RFC 6960; pyhanko-certvalidator's ``hard-fail``, the service's default): a signer's
certificate that names an OCSP responder or a CRL must be shown not revoked by one of them. So: a good
certificate verifies and the responder was asked; a revoked one fails, whether the OCSP responder or the
CRL says so; with the responder down, ``hard-fail`` refuses what it could not check and ``soft-fail``
lets it pass. The same holds in a process monkey-patched by eventlet, as the e-signature service is, and
oscrypto (which fails to import on some OpenSSL builds) is never imported on the way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.esign import pades, revocation
from services.esign.document import ResultDocument, render_result
from services.esign.keys import Issued, _private_key_info, to_asn1_cert
from shared import metrics, neighbours
from tests.conftest import free_port
from tests.support.revocation import RevocationPki, responder_process, served

ROOT = Path(__file__).resolve().parents[2]


def _document() -> bytes:
    return render_result(
        ResultDocument(
            unit_name="Ủy ban nhân dân Phường Sài Gòn",
            unit_code="26740",
            series="KQ-26740",
            drafted_at=datetime.now(UTC),
            place="Thành phố Hồ Chí Minh",
            dossier_code="26740-261207-0001",
            procedure="1.001193",
            applicant_reference="26740-261207-0001",
            decision="approved",
            reason=None,
            verify_url="https://dichvucong.example/api/v1/verifications/rev",
            signer_title="Chủ tịch",
        )
    )


def sign(pki: RevocationPki, issued: Issued) -> bytes:
    signer = SimpleSigner(
        signing_cert=to_asn1_cert(issued.certificate),
        signing_key=_private_key_info(issued.key),
        cert_registry=SimpleCertificateStore.from_certs([to_asn1_cert(pki.root.certificate)]),
    )
    return pades.sign_as_leader(
        _document(),
        signer,
        signer_name="Nguyễn Văn An",
        location="Thành phố Hồ Chí Minh",
        now=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pki(tmp_path_factory, port) -> RevocationPki:
    return RevocationPki(tmp_path_factory.mktemp("revocation-pki"), f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def responder(pki, port):
    with responder_process(pki.folder, port) as url:
        yield url


def roots(pki: RevocationPki):
    return [to_asn1_cert(pki.root.certificate)]


def test_a_good_certificate_verifies_after_the_ocsp_responder_said_so(pki, responder):
    before = served(responder)
    reports = pades.verify(sign(pki, pki.issue("Nguyễn Văn An")), roots(pki), pades.Revocation("hard-fail"))
    assert [r.verdict for r in reports] == ["valid and trusted"]
    assert served(responder)["ocsp"] == before["ocsp"] + 1  # asked over the network, once


def test_a_certificate_the_ocsp_responder_says_is_revoked_fails(pki, responder):
    revoked = pki.issue("Trần Văn Bình")
    pki.revoke(revoked)
    reports = pades.verify(sign(pki, revoked), roots(pki), pades.Revocation("hard-fail"))
    assert reports[0].verdict.startswith("revoked:"), reports[0].verdict
    assert not reports[0].verdict_ok and not reports[0].trusted
    assert pades.overall(reports).startswith("not valid: ChuKyLanhDao: revoked")


def test_a_certificate_with_only_a_crl_is_checked_against_the_crl(pki, responder):
    issued = pki.issue("Lê Thị Cúc", ocsp=False)
    pdf = sign(pki, issued)
    before = served(responder)
    assert pades.verify(pdf, roots(pki))[0].verdict == "valid and trusted"  # the service's default mode
    assert served(responder)["crl"] == before["crl"] + 1
    pki.revoke(issued)  # the same signed document, once its certificate is on the CRL
    assert pades.verify(pdf, roots(pki))[0].verdict.startswith("revoked:")


def test_with_the_responder_down_hard_fail_refuses_and_soft_fail_lets_pass(pki, tmp_path):
    # certificates that point at a port where nothing answers
    silent = RevocationPki(tmp_path / "silent", f"http://127.0.0.1:{free_port()}")
    pdf = sign(silent, silent.issue("Phạm Văn Dũng"))
    hard = pades.verify(pdf, roots(silent), pades.Revocation("hard-fail", timeout_seconds=2))
    assert not hard[0].verdict_ok and hard[0].verdict.startswith("not trusted:"), hard[0].verdict
    soft = pades.verify(pdf, roots(silent), pades.Revocation("soft-fail", timeout_seconds=2))
    assert soft[0].verdict == "valid and trusted"


def test_each_responder_is_a_neighbour_whose_circuit_opens_when_it_stays_dead(pki, tmp_path):
    """The fetches go through shared/neighbours.py (services/esign/revocation.py): a responder that
    refuses every connection opens its circuit after the policy's failed calls in a row, readiness names
    it, and the next verifications ask it nothing until the cool-down is over, still refusing (hard-fail)."""
    port = free_port()
    silent = RevocationPki(tmp_path / "dead", f"http://127.0.0.1:{port}")
    pdf = sign(silent, silent.issue("Lê Thị Hoa"))
    name = f"revocation 127.0.0.1:{port}"
    limit = revocation.policy(2).failures_to_open

    def count(outcome: str) -> float:
        return metrics.NEIGHBOUR_CALLS.labels("esign", name, outcome)._value.get()

    for _ in range(limit):  # each verification fails at least one fetch
        report = pades.verify(pdf, roots(silent), pades.Revocation("hard-fail", timeout_seconds=2))[0]
        assert not report.verdict_ok
        if count("failed") >= limit:
            break
    assert count("failed") >= limit
    [responder] = [n for n in neighbours.of_service("esign") if n.name == name]
    assert responder.health().startswith("circuit open")
    before = count("short_circuited")
    report = pades.verify(pdf, roots(silent), pades.Revocation("hard-fail", timeout_seconds=2))[0]
    assert not report.verdict_ok and report.verdict.startswith("not trusted:")
    assert count("short_circuited") > before and count("failed") < limit + 2


CHILD = """
import eventlet
eventlet.monkey_patch()  # as shared/runner.py does before a service starts
import json, sys
from asn1crypto import x509
from services.esign import pades, revocation
from shared import metrics, neighbours
root = x509.Certificate.load(bytes.fromhex(sys.argv[1]))
verdicts = [pades.verify(open(path, "rb").read(), [root])[0].verdict for path in sys.argv[2:]]
print(json.dumps({"verdicts": verdicts, "oscrypto": "oscrypto" in sys.modules}))
"""


def test_under_eventlet_as_in_the_service_and_without_oscrypto(pki, responder, tmp_path):
    good, revoked = pki.issue("Võ Thị Em"), pki.issue("Đỗ Văn Phúc")
    pki.revoke(revoked)
    paths = []
    for name, issued in (("good", good), ("revoked", revoked)):
        (path := tmp_path / f"{name}.pdf").write_bytes(sign(pki, issued))
        paths.append(str(path))
    root_hex = to_asn1_cert(pki.root.certificate).dump().hex()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, root_hex, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["verdicts"][0] == "valid and trusted"
    assert answer["verdicts"][1].startswith("revoked:")
    assert answer["oscrypto"] is False
