"""E-signature figures, each against a baseline measured in the same run.

* Complete results per second: the result PDF rendered, the leader's visible PAdES signature and the
  organisation's seal in a second revision, both timestamped by the local test TSA (a process) — against
  raw RSA-2048/PSS signatures of SHA-256 digests with ``cryptography`` (the floor: two of those per
  result, plus everything PAdES adds).
* Verifications per second of such a result (both signatures, chain, timestamps, difference analysis).
* The p99 of a signer's confirm call: ``POST /api/v1/signing-requests/{id}/signature`` on the running
  service (SQLite), sequential calls, each on a fresh request.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from benchmarks.common import ROOT, RunningService, free_port
from services.esign import pades
from services.esign.document import ResultDocument, render_result
from services.esign.keys import DevelopmentPki, FileKeyStore
from services.esign.tsa import TsaClient
from shared.auth import DEV_SECRET, mint

PASSPHRASE = "benchmark-passphrase-not-a-secret"
UNIT = "26740"


def _wait(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def raw_signatures(seconds: float) -> float:
    """RSA-2048 PSS signatures of SHA-256 digests per second, one thread, ``cryptography``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"motcua")
    value = digest.finalize()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        key.sign(value, pss, utils.Prehashed(hashes.SHA256()))
        done += 1
    return done / (time.perf_counter() - started)


def _document(n: int) -> bytes:
    return render_result(
        ResultDocument(
            unit_name="Ủy ban nhân dân Phường Bến Nghé",
            unit_code=UNIT,
            series=f"KQ-{UNIT}",
            drafted_at=datetime.now(UTC),
            place="Thành phố Hồ Chí Minh",
            dossier_code=f"BENCH-{n}",
            procedure="1.001193",
            applicant_reference=f"BENCH-{n}",
            decision="approved",
            reason=None,
            verify_url=f"http://127.0.0.1:8002/api/v1/verifications/{n}",
            signer_title="Chủ tịch",
        )
    )


def complete_results(folder: Path, tsa_url: str, seconds: float) -> tuple[float, bytes]:
    keys = FileKeyStore(DevelopmentPki(folder / "pki", PASSPHRASE))
    leader = keys.signer_for("person:bench.leader", "Nguyễn Văn An")
    seal = keys.signer_for(f"org:{UNIT}", "Ủy ban nhân dân Phường Bến Nghé")
    stamper = TsaClient(tsa_url)
    done, last, started = 0, b"", time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        signed = pades.sign_as_leader(
            _document(done),
            leader,
            signer_name="Nguyễn Văn An",
            location="HCM",
            now=datetime.now(UTC),
            timestamper=stamper,
        )
        last = pades.seal(
            signed,
            seal,
            unit_name="Ủy ban nhân dân Phường Bến Nghé",
            location="HCM",
            document_number=f"{done + 1:02d}/KQ-{UNIT}",
            issued_at=datetime.now(UTC),
            timestamper=stamper,
        )
        done += 1
    return done / (time.perf_counter() - started), last


def verifications(folder: Path, pdf: bytes, seconds: float) -> float:
    roots = FileKeyStore(DevelopmentPki(folder / "pki", PASSPHRASE)).trust_roots()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        assert pades.overall(pades.verify(pdf, roots)) == "valid and trusted"
        done += 1
    return done / (time.perf_counter() - started)


def confirm_latency(amqp_uri: str, folder: Path, tsa_url: str, calls: int) -> dict:
    env = {
        "ESIGN_KEY_PASSPHRASE": PASSPHRASE,
        "ESIGN_PKI_DIR": str(folder / "pki"),
        "ESIGN_STORE_DIR": str(folder / "documents"),
        "ESIGN_TSA_URL": tsa_url,
        "JWT_SECRET": DEV_SECRET,
    }
    opener = {
        "Authorization": "Bearer " + mint(DEV_SECRET, sub="bench", roles=["handling_officer"], units=[UNIT])
    }
    leader = {
        "Authorization": "Bearer " + mint(DEV_SECRET, sub="bench.leader", roles=["leader"], units=[UNIT])
    }
    with RunningService("esign", amqp_uri, f"sqlite:///{folder / 'esign.sqlite3'}", env=env) as service:
        base = f"{service.url}/api/v1"
        opened = []
        for n in range(calls + 3):
            r = requests.post(
                f"{base}/signing-requests",
                json={
                    "dossier_code": f"BENCH-{n}-{time.time_ns()}",
                    "decision": "approved",
                    "procedure_code": "1.001193",
                    "receiving_unit": UNIT,
                    "handling_unit": UNIT,
                },
                headers=opener,
                timeout=30,
            )
            r.raise_for_status()
            opened.append(r.json())
        latencies = []
        for n, request in enumerate(opened):
            started = time.perf_counter()
            r = requests.post(
                f"{base}/signing-requests/{request['id']}/signature",
                json={"document_sha256": request["document_sha256"], "signer_name": "Nguyễn Văn An"},
                headers=leader,
                timeout=60,
            )
            elapsed = time.perf_counter() - started
            r.raise_for_status()
            if n >= 3:  # the first calls load fonts and keys
                latencies.append(elapsed)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return {
        "calls": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
    }


def run(amqp_uri: str, seconds: float, calls: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="motcua-bench-esign-") as scratch:
        folder = Path(scratch)
        DevelopmentPki(folder / "pki", PASSPHRASE).obtain("tsa")
        port = free_port()
        tsa = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.esign.tsa",
                "--port",
                str(port),
                "--pki-dir",
                str(folder / "pki"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "ESIGN_KEY_PASSPHRASE": PASSPHRASE},
            stdout=subprocess.DEVNULL,
        )
        tsa_url = f"http://127.0.0.1:{port}/"
        try:
            _wait(tsa_url)
            baseline = raw_signatures(seconds)
            per_s, sample = complete_results(folder, tsa_url, seconds)
            verify_per_s = verifications(folder, sample, seconds)
            latency = confirm_latency(amqp_uri, folder, tsa_url, calls)
        finally:
            tsa.terminate()
            tsa.wait(timeout=10)
    return {
        "raw_rsa2048_pss_signatures_per_s": round(baseline, 1),
        "complete_results_per_s": round(per_s, 2),
        "complete_results_ratio": round(per_s / baseline, 5),
        "raw_signatures_per_complete_result": round(baseline / per_s, 1),
        "verifications_per_s": round(verify_per_s, 2),
        "verifications_ratio": round(verify_per_s / baseline, 5),
        "confirm_call": latency,
    }
