"""Revocation information (OCSP responses, CRLs, the issuers' certificates) fetched while verifying, through
the shared neighbour client (shared/neighbours.py) like every other call the services make.

pyhanko-certvalidator's requests fetchers call ``requests.get``/``post`` with a timeout and nothing else.
Here each responder (one per scheme, host and port a certificate names) is a :class:`Neighbour` of the
e-signature service, ``revocation <host>``: a connect and a read timeout of
``ESIGN_REVOCATION_TIMEOUT_SECONDS``, a second attempt after a refused or timed-out connection, a 5xx or
a 429 (an OCSP request is a query: retrying it is safe), and a circuit that opens after 5 failed fetches in
a row, so that a dead responder costs the next verifications nothing for 30 s instead of a timeout each.
Its state is on ``/health/ready`` (``degraded``, never failing readiness) and in the
``motcua_neighbour_*`` metrics (docs/runbook.md "Neighbour circuit open").

No wait between the attempts (``backoff`` 0, ``Retry-After`` not waited): the fetch runs inside pyHanko's
private event loop, where nothing may sleep (services/esign/pades.py :func:`run`). What still fails is
pyHanko's usual failed fetch (a ``requests.RequestException``): ``hard-fail`` refuses the signature,
``soft-fail`` lets it pass, as before.
"""

from __future__ import annotations

import threading
from asyncio import to_thread
from urllib.parse import urlsplit

import requests
from pyhanko_certvalidator.fetchers.api import FetcherBackend, Fetchers, FetchLimits
from pyhanko_certvalidator.fetchers.common_utils import FetchBudget
from pyhanko_certvalidator.fetchers.requests_fetchers.cert_fetch_client import RequestsCertificateFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.crl_client import RequestsCRLFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher

from shared.neighbours import Neighbour, NeighbourUnavailable, Policy

SERVICE = "esign"


def policy(timeout: float) -> Policy:
    """One responder's policy: the verification's timeout to connect (at most 3 s) and to read, two
    attempts with no wait between them, the circuit open after 5 failed fetches for 30 s."""
    return Policy(
        connect_timeout=min(3.0, timeout),
        read_timeout=timeout,
        attempts=2,
        backoff=0.0,
        retry_after_max=0.0,
        failures_to_open=5,
        cooldown=30.0,
    )


_RESPONDERS: dict[tuple[str, float], Neighbour] = {}
_LOCK = threading.Lock()


def responder(url: str, timeout: float) -> tuple[Neighbour, str]:
    """The neighbour for the responder at ``url`` (one per origin, kept for the process's life, so its
    circuit remembers), and the path and query to ask it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise requests.RequestException(f"not an http(s) address: {url!r}")
    origin = f"{parts.scheme}://{parts.netloc}"
    with _LOCK:
        neighbour = _RESPONDERS.get((origin, timeout))
        if neighbour is None:
            name = f"revocation {parts.hostname}" + (f":{parts.port}" if parts.port else "")
            neighbour = Neighbour(SERVICE, name, origin, policy(timeout))
            _RESPONDERS[(origin, timeout)] = neighbour
    return neighbour, parts.path + (f"?{parts.query}" if parts.query else "")


def fetch(method: str, url: str, timeout: float, headers: dict[str, str], data: bytes | None = None):
    """One fetch, as pyHanko's fetchers expect it: the 200 answer, or a ``requests.RequestException``."""
    neighbour, path = responder(url, timeout)
    try:
        response = neighbour.request(method, path, headers=headers, data=data, idempotent=True)
    except NeighbourUnavailable as exc:
        raise requests.ConnectionError(str(exc)) from exc
    if response.status_code != 200:
        raise requests.RequestException(f"status code {response.status_code}")
    return response


class _ThroughNeighbours:
    """Replaces ``RequestsFetcherMixin``'s two calls; everything else (parsing, caching, the budget) is
    pyhanko-certvalidator's."""

    per_request_timeout: float
    user_agent: str

    def _get(self, url, *, acceptable_content_types):
        headers = {"Accept": ",".join(acceptable_content_types), "User-Agent": self.user_agent}
        return to_thread(fetch, "GET", url, self.per_request_timeout, headers)

    def _post(self, url, data, *, content_type, acceptable_content_types):
        headers = {
            "Accept": ",".join(acceptable_content_types),
            "User-Agent": self.user_agent,
            "Content-Type": content_type,
        }
        return to_thread(fetch, "POST", url, self.per_request_timeout, headers, data)


class _OcspFetcher(_ThroughNeighbours, RequestsOCSPFetcher):
    pass


class _CrlFetcher(_ThroughNeighbours, RequestsCRLFetcher):
    pass


class _CertificateFetcher(_ThroughNeighbours, RequestsCertificateFetcher):
    pass


class NeighbourFetcherBackend(FetcherBackend):
    """pyhanko-certvalidator's ``RequestsFetcherBackend``, every fetch through :func:`fetch`."""

    def __init__(self, per_request_timeout: float = 10.0, *, limits: FetchLimits | None = None) -> None:
        self.per_request_timeout = per_request_timeout
        self.limits = limits or FetchLimits()

    def get_fetchers(self) -> Fetchers:
        timeout, budget = self.per_request_timeout, FetchBudget(self.limits)
        return Fetchers(
            ocsp_fetcher=_OcspFetcher(per_request_timeout=timeout, budget=budget),
            crl_fetcher=_CrlFetcher(per_request_timeout=timeout, budget=budget),
            cert_fetcher=_CertificateFetcher(per_request_timeout=timeout, budget=budget),
        )

    async def close(self) -> None:
        return None
