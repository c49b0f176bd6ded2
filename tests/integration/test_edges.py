"""The edges (issue 11 §4): links that ignore Host, chunked bodies, a readiness probe that is cheap and
says nothing about where things live. Against the real dossier service, broker and both databases."""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

import pytest
import requests

from services.dossier.service import DossierService
from tests.conftest import bearer
from tests.integration.test_http_and_outage import receipt
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

UNIT = "26740"
DESK = bearer("desk_officer", UNIT)


def start(service_config, container_factory, **settings) -> str:
    service_config.update(settings)
    container_factory(DossierService, service_config).start()
    return f"http://{service_config['WEB_SERVER_ADDRESS']}"


def test_pagination_links_never_reflect_the_host_header(service_config, container_factory):
    base = start(service_config, container_factory, PUBLIC_BASE_URL="https://api.motcua.example.gov.vn/")
    for _ in range(2):
        assert (
            requests.post(f"{base}/api/v1/dossiers", json=receipt(), headers=DESK, timeout=10).status_code
            == 201
        )
    page = requests.get(
        f"{base}/api/v1/dossiers",
        params={"page_size": 1},
        headers={**DESK, "Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        timeout=10,
    ).json()
    assert page["next"] == "https://api.motcua.example.gov.vn/api/v1/dossiers?page_size=1&page=2"
    second = requests.get(
        page["next"].replace("https://api.motcua.example.gov.vn", base), headers=DESK, timeout=10
    )
    assert second.json()["previous"].startswith("https://api.motcua.example.gov.vn/api/v1/dossiers?")


def test_without_a_public_base_url_links_are_paths(service_config, container_factory):
    base = start(service_config, container_factory)
    for _ in range(2):
        requests.post(f"{base}/api/v1/dossiers", json=receipt(), headers=DESK, timeout=10)
    page = requests.get(
        f"{base}/api/v1/dossiers",
        params={"page_size": 1},
        headers={**DESK, "Host": "evil.example"},
        timeout=10,
    ).json()
    assert page["next"] == "/api/v1/dossiers?page_size=1&page=2"


def chunks(data: bytes, size: int = 7):
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def test_a_chunked_body_is_read_whole_or_refused_when_too_large(service_config, container_factory):
    base = start(service_config, container_factory)
    headers = {**DESK, "Content-Type": "application/json"}
    body = json.dumps(receipt()).encode()
    created = requests.post(f"{base}/api/v1/dossiers", data=chunks(body), headers=headers, timeout=10)
    assert created.request.headers.get("Transfer-Encoding") == "chunked"
    assert created.status_code == 201, created.text
    assert created.json()["receiving_unit"] == UNIT
    huge = requests.post(
        f"{base}/api/v1/dossiers",
        data=chunks(b"[" + b"1," * 200_000 + b"1]", 8192),
        headers=headers,
        timeout=10,
    )
    assert huge.status_code == 413


@pytest.fixture
def proxy(rabbit_config):
    """RabbitMQ behind a proxy the test can cut; closed only after the service has stopped."""
    uri = urlparse(rabbit_config["AMQP_URI"])
    tcp = TcpProxy(uri.hostname, uri.port or 5672)
    yield tcp
    tcp.close()


def test_readiness_keeps_one_broker_connection_and_names_no_host(
    proxy, rabbit_config, service_config, container_factory
):
    uri = urlparse(rabbit_config["AMQP_URI"])
    base = start(
        service_config,
        container_factory,
        AMQP_URI=rabbit_config["AMQP_URI"].replace(uri.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}"),
    )
    assert requests.get(f"{base}/health/ready", timeout=10).status_code == 200
    time.sleep(0.5)
    before = proxy.accepted
    for _ in range(10):
        assert requests.get(f"{base}/health/ready", timeout=10).status_code == 200
    assert proxy.accepted == before  # no new connection per probe
    proxy.cut()
    down = requests.get(f"{base}/health/ready", timeout=10)
    assert down.status_code == 503 and down.json()["checks"]["broker"] == "down"
    # The broker's address is not told; the problem's type is a page of this service, at its own address.
    told = {key: value for key, value in down.json().items() if key != "type"}
    assert str(proxy.port) not in str(told) and "127.0.0.1" not in str(told)
    assert down.json()["type"].startswith(f"{base}/problems/")
    cut_at = proxy.accepted
    for _ in range(5):
        requests.get(f"{base}/health/ready", timeout=10)
    assert proxy.accepted - cut_at <= 1  # a dead broker is not hammered by the probe either
    # The broker comes back: the service's consumers reconnect, so it can stop cleanly.
    proxy.restore()
    deadline = time.monotonic() + 30
    while requests.get(f"{base}/health/ready", timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
