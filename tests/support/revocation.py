"""A test PKI that publishes revocation, and its OCSP responder and CRL server as a real process.

The development PKI of services/esign/keys.py publishes no revocation data (no AIA, no CRL distribution
point), so verification has nothing to fetch there. This one does, as a province's CA does: every
certificate it issues names ``<base>/ocsp`` (Authority Information Access) and/or ``<base>/crl`` (CRL
distribution point) on a local port, and :func:`responder_process` answers there
(``python -m tests.support.revocation_responder``), reading which serials are revoked from the folder
at each request, so a test can revoke while it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from services.esign.keys import Issued

ROOT = Path(__file__).resolve().parents[2]
ROOT_CERT, ROOT_KEY, REVOKED = "root.pem", "root.key.pem", "revoked.json"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MOTCUA REVOCATION TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class RevocationPki:
    """A root in ``folder`` whose certificates point at ``base_url`` for their revocation status."""

    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder, self.base_url = folder, base_url.rstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("MOTCUA REVOCATION TEST ROOT"))
            .issuer_name(_name("MOTCUA REVOCATION TEST ROOT"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.root = Issued(cert, key)
        (folder / ROOT_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / ROOT_KEY).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (folder / REVOKED).write_text("{}", encoding="utf-8")

    def issue(self, common_name: str, *, ocsp: bool = True, crl: bool = True) -> Issued:
        """A signer's certificate (digitalSignature + nonRepudiation) naming the responder's URLs."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.root.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root.key.public_key()), critical=False
            )
        )
        if ocsp:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"{self.base_url}/ocsp"),
                        )
                    ]
                ),
                critical=False,
            )
        if crl:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(f"{self.base_url}/crl")],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        return Issued(builder.sign(self.root.key, hashes.SHA256()), key)

    def revoke(self, issued: Issued, when: datetime | None = None) -> None:
        """From now on the responder says this certificate was revoked (key compromise) at ``when``."""
        path = self.folder / REVOKED
        revoked = json.loads(path.read_text(encoding="utf-8"))
        moment = when or datetime.now(UTC) - timedelta(minutes=5)
        revoked[str(issued.certificate.serial_number)] = moment.isoformat()
        path.write_text(json.dumps(revoked), encoding="utf-8")


@contextmanager
def responder_process(folder: Path, port: int) -> Iterator[str]:
    """The OCSP responder and CRL server of the PKI in ``folder``, on ``port``; yields its base URL."""
    log_path = folder / "responder.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.revocation_responder",
                "--pki-dir",
                str(folder),
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the responder exited: {log_path.read_text()[-2000:]}")
                try:
                    if requests.get(f"{url}/stats", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the revocation responder did not start within 30 s") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def served(url: str) -> dict[str, int]:
    """How many OCSP requests and CRL downloads the responder has answered."""
    return requests.get(f"{url}/stats", timeout=5).json()
