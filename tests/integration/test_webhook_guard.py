"""The callback guard against DNS rebinding (services/outbound/webhooks.py): the host is resolved once,
every address is checked, and the connection goes to the checked address with the callback's name kept
for Host, SNI and the certificate. The resolver is the test's (a name server that changes its answer
between two questions is what an attacker runs); the subscriber is a real local server."""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from services.outbound.webhooks import WebhookSender
from tests.conftest import free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

PUBLIC = "93.184.215.14"  # a public address: nothing listens for us there
LOOPBACK = ipaddress.ip_network("127.0.0.1/32")


class Rebinding:
    """A name server that answers a public address to the first question and loopback afterwards."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return [PUBLIC] if self.asked == 1 else ["127.0.0.1"]


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def send(sender: WebhookSender, url: str):
    return sender.send(url, message_id="msg-1", body="{}", secrets=[], auth_header=None)


def test_a_name_that_rebinds_to_loopback_after_the_check_reaches_only_the_checked_address(receiver):
    resolver = Rebinding()
    sender = WebhookSender(allowed=(), timeout=0.5, max_bytes=1024, resolver=resolver)
    answer = send(sender, f"http://rebind.example.test:{receiver.port}/hook")
    # Checked once (public: allowed), connected to that address, never asked again: the loopback
    # subscriber a second resolution would have reached heard nothing.
    assert resolver.asked == 1
    assert not answer.ok and PUBLIC in (answer.error or "")
    assert receiver.received == []


def test_every_address_of_the_name_is_checked(receiver):
    sender = WebhookSender(
        allowed=(), timeout=0.5, max_bytes=1024, resolver=lambda host, port: [PUBLIC, "127.0.0.1"]
    )
    answer = send(sender, f"http://two.example.test:{receiver.port}/hook")
    assert answer.error and "refused" in answer.error and "loopback" in answer.error
    assert receiver.received == []


def test_the_pinned_connection_keeps_the_name_in_host(receiver):
    sender = WebhookSender(
        allowed=(LOOPBACK,), timeout=2, max_bytes=1024, resolver=lambda host, port: ["127.0.0.1"]
    )
    answer = send(sender, f"http://hooks.example.test:{receiver.port}/hook")
    assert answer.status == 204
    assert receiver.received[0]["headers"]["Host"] == f"hooks.example.test:{receiver.port}"


def _certificate(name: str, directory: Path) -> tuple[str, str]:
    """A self-signed certificate for ``name``: its file (the sender's trust) and its key's."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


def https_probe(directory: str) -> None:
    """Send over HTTPS to a local server whose certificate names hooks.example.test; print what the
    server saw (SNI, Host) and what the sender answered, as JSON."""
    cert_file, key_file = _certificate("hooks.example.test", Path(directory))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    hosts: list[str] = []

    def app(environ, start_response):
        hosts.append(Request(environ).headers.get("Host"))
        return Response(status=204)(environ, start_response)

    port = free_port()
    server = make_server("127.0.0.1", port, app, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = WebhookSender(
        allowed=(LOOPBACK,),
        timeout=2,
        max_bytes=1024,
        resolver=lambda host, port: ["127.0.0.1"],
        verify=cert_file,
    )
    good = send(sender, f"https://hooks.example.test:{port}/hook")
    other = send(sender, f"https://other.example.test:{port}/hook")
    server.shutdown()
    print(
        json.dumps({"port": port, "names": names, "hosts": hosts, "good": good.status, "other": other.error})
    )


def test_over_https_the_pinned_connection_keeps_the_name_in_sni_and_the_certificate_check(tmp_path):
    # In a process of its own that patches eventlet first, as shared/runner.py does: in the test
    # process a plugin has imported ssl before the patch, and no TLS client context can be made there.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import eventlet; eventlet.monkey_patch(); "
            "from tests.integration.test_webhook_guard import https_probe; "
            f"https_probe({str(tmp_path)!r})",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["good"] == 204
    assert seen["names"][0] == "hooks.example.test" and seen["hosts"] == [
        f"hooks.example.test:{seen['port']}"
    ]
    # The certificate is checked against the name, not the address: another name is refused.
    assert "certificate" in (seen["other"] or "").lower()
