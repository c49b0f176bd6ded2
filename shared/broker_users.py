"""One RabbitMQ user per service, allowed only what the service does (docs/security.md).

A service ``S`` may publish to ``egov.events`` only routing keys ``S.*`` (the dossier service
``dossier.…``, postal ``postal.…``), and to ``egov.events.dlx`` only the dead letters of its own queues;
it may declare, bind and read only its own queues (named ``S.…``). So a stolen postal credential cannot
forge a dossier event, and no service can read another's queue. Consumers still check every event
(:mod:`shared.verification`).

The same grants are applied three ways: :func:`provision` through the management API (``make run`` and
the tests), and ``deploy/k8s/base/broker/`` as RabbitMQ Messaging Topology Operator resources
(``tests/unit/test_broker_users.py`` keeps the two equal).

``python -m shared.broker_users --api http://guest:guest@127.0.0.1:15672 --vhost / dossier metrics``
creates or updates the users and prints, per service, an ``AMQP_URI`` with its credentials.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlparse

import requests

from shared.config import with_credentials
from shared.events import DEAD_LETTER_EXCHANGE, EXCHANGE, SOURCES


@dataclass(frozen=True)
class Grant:
    """What a service's broker user may do in its virtual host (RabbitMQ permission regexes)."""

    service: str
    configure: str
    write: str
    read: str
    # exchange -> (write, read) regexes over routing keys
    topics: dict[str, tuple[str, str]]


def grant_for(service: str) -> Grant:
    if service not in SOURCES:
        raise ValueError(f"unknown service {service!r}; services: {', '.join(SOURCES)}")
    exchanges = f"{re.escape(EXCHANGE)}|{re.escape(DEAD_LETTER_EXCHANGE)}"
    own = f"^({exchanges}|{service}\\..*)$"
    return Grant(
        service=service,
        # Declaring the two exchanges (idempotent) and the service's own queues.
        configure=own,
        # Publishing to the exchanges; binding its own queues.
        write=own,
        # Binding from the exchanges; consuming its own queues.
        read=own,
        topics={
            EXCHANGE: (f"^{service}\\.", ".*"),
            DEAD_LETTER_EXCHANGE: (f"^{service}\\.", ".*"),
        },
    )


def username(service: str, namespace: str = "") -> str:
    """``motcua-dossier``, or ``motcua-<namespace>-dossier`` when several sets share one broker."""
    return f"motcua-{namespace}-{service}" if namespace else f"motcua-{service}"


def provision(
    api_url: str, vhost: str, service: str, user: str, password: str, *, timeout: float = 10
) -> None:
    """Create or update ``user`` with the service's grant on ``vhost`` through the management API."""
    parsed = urlparse(api_url)
    base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
    auth = (parsed.username or "guest", parsed.password or "guest")
    grant = grant_for(service)
    v, u = quote(vhost, safe=""), quote(user, safe="")
    calls = [
        (f"{base}/users/{u}", {"password": password, "tags": ""}),
        (
            f"{base}/permissions/{v}/{u}",
            {"configure": grant.configure, "write": grant.write, "read": grant.read},
        ),
    ]
    calls += [
        (f"{base}/topic-permissions/{v}/{u}", {"exchange": exchange, "write": write, "read": read})
        for exchange, (write, read) in grant.topics.items()
    ]
    for url, body in calls:
        response = requests.put(url, json=body, auth=auth, timeout=timeout)
        if response.status_code not in (200, 201, 204):
            raise RuntimeError(
                f"RabbitMQ management API: PUT {url.replace(base, '')}: {response.status_code}"
            )


def delete(api_url: str, user: str, *, timeout: float = 10) -> None:
    parsed = urlparse(api_url)
    base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
    requests.delete(
        f"{base}/users/{quote(user, safe='')}",
        auth=(parsed.username or "guest", parsed.password or "guest"),
        timeout=timeout,
    )


def provision_all(api_url: str, amqp_uri: str, services: list[str], *, namespace: str = "") -> dict[str, str]:
    """Provision each service's user with a fresh random password; its ``AMQP_URI`` per service."""
    path = urlparse(amqp_uri).path
    vhost = unquote(path[1:]) if len(path) > 1 else "/"
    uris = {}
    for service in services:
        user, password = username(service, namespace), secrets.token_urlsafe(24)
        provision(api_url, vhost, service, user, password)
        uris[service] = with_credentials(amqp_uri, user, password)
    return uris


def topology_resources(services: list[str], *, cluster: str = "rabbitmq", vhost: str = "/") -> list[dict]:
    """The RabbitMQ Messaging Topology Operator resources of the same grants (deploy/k8s/broker/).

    No credentials are given: the operator generates each user's password into the Secret
    ``<user>-user-credentials`` (keys ``username``, ``password``), which the service reads.
    """
    reference = {"name": cluster}
    resources: list[dict] = []
    for service in services:
        grant, user = grant_for(service), username(service)
        resources.append(
            {
                "apiVersion": "rabbitmq.com/v1beta1",
                "kind": "User",
                "metadata": {"name": user},
                "spec": {"tags": [], "rabbitmqClusterReference": reference},
            }
        )
        resources.append(
            {
                "apiVersion": "rabbitmq.com/v1beta1",
                "kind": "Permission",
                "metadata": {"name": user},
                "spec": {
                    "vhost": vhost,
                    "userReference": {"name": user},
                    "permissions": {"configure": grant.configure, "write": grant.write, "read": grant.read},
                    "rabbitmqClusterReference": reference,
                },
            }
        )
        for exchange, (write, read) in grant.topics.items():
            resources.append(
                {
                    "apiVersion": "rabbitmq.com/v1beta1",
                    "kind": "TopicPermission",
                    "metadata": {"name": f"{user}-{exchange.replace('.', '-')}"},
                    "spec": {
                        "vhost": vhost,
                        "userReference": {"name": user},
                        "permissions": {"exchange": exchange, "write": write, "read": read},
                        "rabbitmqClusterReference": reference,
                    },
                }
            )
    return resources


TOPOLOGY_HEADER = """\
# Generated by `python -m shared.broker_users --k8s` from shared/broker_users.py: do not edit by hand.
# One RabbitMQ user per service (RabbitMQ Messaging Topology Operator): each may publish only its own
# routing keys to egov.events and read only its own queues. The operator generates each password into
# the Secret motcua-<service>-user-credentials, which the service's Deployment reads (production overlay).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create motcua's per-service RabbitMQ users.")
    parser.add_argument("services", nargs="+", choices=SOURCES)
    parser.add_argument("--api", default="http://guest:guest@127.0.0.1:15672", help="management API URL")
    parser.add_argument("--amqp-uri", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--namespace", default="", help="prefix of the user names (several sets per broker)")
    parser.add_argument("--k8s", action="store_true", help="print the Topology Operator resources instead")
    args = parser.parse_args(argv)
    if args.k8s:
        import yaml

        documents = topology_resources(args.services)
        print(TOPOLOGY_HEADER + yaml.safe_dump_all(documents, sort_keys=False), end="")
        return 0
    print(
        json.dumps(provision_all(args.api, args.amqp_uri, args.services, namespace=args.namespace), indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
