"""An OCSP responder (RFC 6960) and CRL server (RFC 5280) for the test PKI of tests/support/revocation.py.

    python -m tests.support.revocation_responder --pki-dir DIR --port PORT

* ``POST /ocsp`` (``application/ocsp-request``): one response per request, signed by the CA itself,
  ``good`` or ``revoked`` (with its time and reason) by the serials in ``DIR/revoked.json``, the request's
  nonce echoed; valid for an hour.
* ``GET /crl``: the CA's CRL (DER) with those serials, valid for an hour.
* ``GET /stats``: ``{"ocsp": n, "crl": n}``, what was served, so a test can see that fetching happened.

Built with ``cryptography``'s OCSP and CRL builders; the revoked list is read at every request.
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.support.revocation import REVOKED, ROOT_CERT, ROOT_KEY


class Authority:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cert = x509.load_pem_x509_certificate((folder / ROOT_CERT).read_bytes())
        self.key = serialization.load_pem_private_key((folder / ROOT_KEY).read_bytes(), password=None)
        self.counts = {"ocsp": 0, "crl": 0}
        self.lock = threading.Lock()

    def revoked(self) -> dict[int, datetime]:
        data = json.loads((self.folder / REVOKED).read_text(encoding="utf-8"))
        return {int(serial): datetime.fromisoformat(when) for serial, when in data.items()}

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def ocsp_response(self, der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(der)
        now = datetime.now(UTC)
        revoked = self.revoked().get(request.serial_number)
        # The builder needs the certificate being answered for; only its serial and issuer are used,
        # so a stand-in with the requested serial, issued by this CA, is enough.
        stand_in = (
            x509.CertificateBuilder()
            .subject_name(self.cert.subject)
            .issuer_name(self.cert.subject)
            .public_key(self.cert.public_key())
            .serial_number(request.serial_number)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=stand_in,
            issuer=self.cert,
            algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - timedelta(minutes=1),
            next_update=now + timedelta(hours=1),
            revocation_time=revoked,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        response = builder.sign(self.key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def crl(self) -> bytes:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(hours=1))
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()), critical=False
            )
        )
        for serial, when in self.revoked().items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def handler_for(authority: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/ocsp":
                self._answer(404, b"", "text/plain")
                return
            der = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = authority.ocsp_response(der)
            except ValueError:
                body = ocsp.OCSPResponseBuilder.build_unsuccessful(
                    ocsp.OCSPResponseStatus.MALFORMED_REQUEST
                ).public_bytes(serialization.Encoding.DER)
            authority.count("ocsp")
            self._answer(200, body, "application/ocsp-response")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/crl":
                authority.count("crl")
                self._answer(200, authority.crl(), "application/pkix-crl")
            elif self.path == "/stats":
                self._answer(200, json.dumps(authority.counts).encode(), "application/json")
            else:
                self._answer(404, b"", "text/plain")

        def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pki-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(Authority(args.pki_dir)))
    server.serve_forever()


if __name__ == "__main__":
    main()
