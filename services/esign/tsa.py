"""A local RFC 3161 test timestamp authority, run as its own process.

``python -m services.esign.tsa --port 8010`` answers ``POST /`` with ``application/timestamp-query``
bodies, signing the tokens with the test PKI's timestamping certificate (extendedKeyUsage
timeStamping, issued by "MOTCUA TEST ROOT"). ``make run`` starts one; the tests start their own.
A province points ``ESIGN_TSA_URL`` at its accredited TSA instead.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import logging
import os
import secrets
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from asn1crypto import cms, tsp, x509
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.esign.keys import DevelopmentPki, LoadedKeySigner, to_asn1_cert
from shared import clock

log = logging.getLogger("motcua.tsa")
MAX_QUERY_BYTES = 16 * 1024


def _real_socket_module():
    # Inside a nameko process every socket is eventlet's; a green socket waited on from within
    # pyHanko's private asyncio loop is never woken, so the TSA is asked over a real socket.
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("socket"):
        return patcher.original("socket")
    return socket


class TsaClient(TimeStamper):
    """An RFC 3161 client (``ESIGN_TSA_URL``): POST the query, read the reply, in the calling thread."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        super().__init__()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) TSA URL: {url!r}")
        self.url, self.parts, self.timeout = url, parts, timeout

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        https = self.parts.scheme == "https"
        port = self.parts.port or (443 if https else 80)
        connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
        connection = connection_class(self.parts.hostname, port, timeout=self.timeout)
        try:
            raw = _real_socket_module().create_connection((self.parts.hostname, port), self.timeout)
            connection.sock = (
                ssl.create_default_context().wrap_socket(raw, server_hostname=self.parts.hostname)
                if https
                else raw
            )
            connection.request(
                "POST",
                self.parts.path or "/",
                body=req.dump(),
                headers={"Content-Type": "application/timestamp-query"},
            )
            response = connection.getresponse()
            body = response.read()
        except OSError as exc:
            raise TimestampRequestError(f"timestamp authority {self.url} unreachable: {exc}") from exc
        finally:
            connection.close()
        if response.status != 200 or response.getheader("Content-Type") != "application/timestamp-reply":
            raise TimestampRequestError(f"timestamp authority {self.url} answered {response.status}")
        return tsp.TimeStampResp.load(body)

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self.request_tsa_response(req)


# The test TSA's policy: any OID identifies a policy; this one is under the private-use arc of the test PKI.
TEST_POLICY = "1.3.6.1.4.1.4146.2.2"


class TestTimestampAuthority:
    """RFC 3161 tokens from the test PKI's timestamping key, at :func:`shared.clock.now`.

    The token is a CMS SignedData over a ``TSTInfo`` (the policy, the query's message imprint and nonce,
    a random serial number, the time), signed with PKCS #1 v1.5 and carrying the ESS
    signing-certificate-v2 attribute (RFC 5816) and the chain — built with pyHanko's signer, whose
    key is parsed once (:class:`~services.esign.keys.LoadedKeySigner`). The development clock moves
    the time, so a moved clock moves the test TSA too.
    """

    def __init__(self, signer: LoadedKeySigner) -> None:
        self.signer = signer

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        fields = {
            "version": "v1",
            "policy": TEST_POLICY,
            "message_imprint": req["message_imprint"],
            "serial_number": secrets.randbits(63),
            "gen_time": clock.now().replace(microsecond=0),
            "tsa": x509.GeneralName(name="directory_name", value=self.signer.signing_cert.subject),
        }
        if req["nonce"].native is not None:
            fields["nonce"] = req["nonce"]
        content = cms.EncapsulatedContentInfo(
            {"content_type": "tst_info", "content": cms.ParsableOctetString(tsp.TSTInfo(fields).dump())}
        )
        digest = req["message_imprint"]["hash_algorithm"]["algorithm"].native
        token = asyncio.run(
            self.signer.async_sign_general_data(content, digest, detached=False, use_cades=True)
        )
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})


def timestamper(pki: DevelopmentPki) -> TestTimestampAuthority:
    issued = pki.obtain("tsa")
    return TestTimestampAuthority(
        LoadedKeySigner(
            signing_cert=to_asn1_cert(issued.certificate),
            private_key=issued.key,
            cert_registry=SimpleCertificateStore.from_certs([to_asn1_cert(pki.root.certificate)]),
            prefer_pss=False,
        )
    )


def handler_for(authority: TestTimestampAuthority) -> type[BaseHTTPRequestHandler]:
    class TimestampRequestHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Content-Type") != "application/timestamp-query":
                return self._answer(415, b"send application/timestamp-query", "text/plain")
            if not 0 < length <= MAX_QUERY_BYTES:
                return self._answer(413, b"timestamp queries are small", "text/plain")
            try:
                request = tsp.TimeStampReq.load(self.rfile.read(length))
                response = authority.request_tsa_response(request)
            except (ValueError, TypeError, KeyError) as exc:
                return self._answer(400, f"not a timestamp query: {exc}".encode(), "text/plain")
            self._answer(200, response.dump(), "application/timestamp-reply")

        def do_GET(self) -> None:
            self._answer(200, b"motcua test TSA (RFC 3161): POST application/timestamp-query", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug(fmt, *args)

    return TimestampRequestHandler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local RFC 3161 test timestamp authority.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ESIGN_TSA_PORT", "8010")))
    parser.add_argument("--pki-dir", default=os.environ.get("ESIGN_PKI_DIR", "data/esign/pki"))
    args = parser.parse_args(argv)
    pki = DevelopmentPki(args.pki_dir, os.environ.get("ESIGN_KEY_PASSPHRASE", ""))
    server = ThreadingHTTPServer((args.host, args.port), handler_for(timestamper(pki)))
    print(f"test TSA listening on http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
