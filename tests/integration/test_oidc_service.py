"""The dossier service outside development mode (issue 11 §1): only the identity provider's tokens open
it, and a key the provider adds works at once, without a restart. Real JWKS server process, real broker,
both databases."""

from __future__ import annotations

import pytest
import requests

from services.dossier.service import DossierService
from tests.conftest import bearer, free_port
from tests.integration.test_http_and_outage import UNIT, receipt
from tests.support.identity_provider import ISSUER, IdentityProvider, SigningKey

pytestmark = pytest.mark.integration


@pytest.fixture
def provider(tmp_path):
    idp = IdentityProvider(tmp_path, free_port())
    idp.publish()
    yield idp.start()
    idp.stop()


def test_a_province_deployment_takes_provider_tokens_only(service_config, container_factory, provider):
    first, second = SigningKey("2026-11"), SigningKey("2026-12", "ES256")
    provider.publish(first)
    service_config.update(
        MOTCUA_ENV="production",
        JWT_SECRET="",
        LOOKUP_KEY="a-province-lookup-key-of-32-bytes-or-more",
        OIDC_ISSUER=ISSUER,
        OIDC_JWKS_URL=provider.url,
        OIDC_JWKS_COOLDOWN_SECONDS=0,
        OIDC_ROLES_CLAIM="resource_access.motcua-dossier.roles",
        OIDC_UNITS_CLAIM="motcua_units",
    )
    container_factory(DossierService, service_config).start()
    url = f"http://{service_config['WEB_SERVER_ADDRESS']}/api/v1/dossiers"
    claims = IdentityProvider.claims(
        sub="officer-26740",
        resource_access={"motcua-dossier": {"roles": ["desk_officer"]}},
        motcua_units=UNIT,
    )

    def post(token: str) -> requests.Response:
        return requests.post(url, json=receipt(), headers={"Authorization": f"Bearer {token}"}, timeout=10)

    assert post(first.sign(claims)).status_code == 201
    # A development token, however well signed, is not accepted here.
    development = bearer("desk_officer", UNIT)["Authorization"].removeprefix("Bearer ")
    refused = post(development)
    assert refused.status_code == 401 and "HS256" in refused.json()["detail"]
    # A token for another service does not open this one.
    assert post(first.sign({**claims, "aud": "motcua-metrics"})).status_code == 401
    # The provider adds a key: tokens signed with it work without restarting the service.
    provider.publish(first, second)
    assert post(second.sign(claims)).status_code == 201
