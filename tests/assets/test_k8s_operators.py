"""Kubernetes on real operators, checked against the code it runs (rendered by the pinned kubectl).

What the manifests must agree with is read from the services themselves: the HTTP routes of their
``@api`` entrypoints (the Ingress), the queues of their ``@event_consumer`` entrypoints (KEDA, the
quorum-queue policy), and which services exist at all (services/<name>/service.py and config.yml).
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from shared.consumer import EventConsumer
from shared.http import ApiEntrypoint
from tests.support.k8s import ROOT, render

K8S = ROOT / "deploy" / "k8s"
PRODUCTION = K8S / "overlays" / "production"
LOCAL = K8S / "overlays" / "local"
# Every service in the code (services/<name>/service.py and config.yml).
SERVICES = sorted(
    path.name
    for path in (ROOT / "services").iterdir()
    if (path / "service.py").is_file() and (path / "config.yml").is_file()
)
# Served by every service for itself, so no single backend can take it (each one's document is in docs/).
PER_SERVICE_PATHS = {"/api/v1/openapi.json"}


@cache
def entrypoints(service: str) -> tuple[Any, ...]:
    module = importlib.import_module(f"services.{service}.service")
    cls = getattr(module, f"{service.capitalize()}Service")
    found = []
    for name in dir(cls):
        found.extend(getattr(getattr(cls, name), ENTRYPOINT_EXTENSIONS_ATTR, ()))
    return tuple(found)


# For the cluster, not the portal: probes, scrapes, and the problem pages every service serves itself.
NOT_ROUTED = ("/health/", "/metrics", "/problems/")


def routes(service: str) -> set[str]:
    """The service's public routes: its API, and pages for people (the citizen's lookup page)."""
    return {
        e.url
        for e in entrypoints(service)
        if isinstance(e, ApiEntrypoint) and not e.url.startswith(NOT_ROUTED)
    }


def queues(service: str) -> set[str]:
    return {e.queue_name for e in entrypoints(service) if isinstance(e, EventConsumer)}


def concrete(url: str) -> str:
    """A path the route serves: each ``<converter:name>`` replaced by a sample value."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"sample-\1", url)


def backend_for(paths: list[dict[str, Any]], url: str) -> dict[str, Any] | None:
    """The Ingress path that takes ``url``, as ingress-nginx chooses: the longest one that matches
    (Prefix by whole segments, Exact, ImplementationSpecific as a regular expression from the start)."""
    matching = []
    for path in paths:
        pattern, kind = path["path"], path["pathType"]
        if kind == "Prefix":
            hit = url == pattern or url.startswith(pattern.rstrip("/") + "/")
        elif kind == "Exact":
            hit = url == pattern
        else:
            hit = re.match(pattern, url, re.IGNORECASE) is not None
        if hit:
            matching.append(path)
    return max(matching, key=lambda path: len(path["path"]), default=None)


def deployed(service: str) -> bool:
    return f"motcua-{service}" in by_kind(render(K8S / "base"), "Deployment")


def skip_unless_deployed(service: str) -> None:
    """A service that has just arrived in services/ is checked from the moment it has a Deployment.

    Until then it is reported as skipped, not failed, so that its arrival does not turn main red.
    """
    if not deployed(service):
        pytest.skip(
            f"services/{service} has no Deployment in deploy/k8s/base yet: add its Deployment and Service "
            "(as dossier's), its ServiceMonitor, its paths in base/ingress.yaml, and in production an HPA "
            "(hpa.yaml) or, if it consumes a queue, a ScaledObject (scaledobjects.yaml)"
        )


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {entry["name"]: entry for entry in container.get("env", [])}


def test_the_services_are_found() -> None:
    assert {"dossier", "metrics"} <= set(SERVICES)
    assert "/api/v1/dossiers" in routes("dossier")
    assert queues("metrics") == {"metrics.dossier-events"}


# -- the Ingress: one base URL -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [LOCAL, PRODUCTION], ids=lambda p: p.name)
def test_the_ingress_sends_every_route_to_the_service_that_serves_it(overlay: Path) -> None:
    docs = render(overlay)
    (ingress,) = by_kind(docs, "Ingress").values()
    services = by_kind(docs, "Service")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] in services, f"{path['path']}: no Service {backend['name']}"
        ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"].get("name") in ports, f"{path['path']}: no port {backend['port']}"
        assert not path["path"].startswith(("/metrics", "/health")), "probes and scrapes stay inside"
    if any(path["pathType"] == "ImplementationSpecific" for path in paths):
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    wrong, used = [], set()
    for service in filter(deployed, SERVICES):
        for url in sorted(routes(service) - PER_SERVICE_PATHS):
            chosen = backend_for(paths, concrete(url))
            got = chosen["backend"]["service"]["name"] if chosen else None
            if got != f"motcua-{service}":
                wrong.append(f"{url} goes to {got}, not motcua-{service}")
            if chosen:
                used.add(chosen["path"])
    assert not wrong, "deploy/k8s/base/ingress.yaml:\n  " + "\n  ".join(wrong)
    unused = [path["path"] for path in paths if path["path"] not in used]
    assert not unused, f"Ingress paths no route uses: {unused}"


def test_the_routing_rule_prefers_the_longest_matching_path() -> None:
    def path(pattern: str, backend: str, kind: str = "Prefix") -> dict[str, Any]:
        return {"path": pattern, "pathType": kind, "backend": {"service": {"name": backend}}}

    paths = [
        path("/api/v1/dossiers", "dossier"),
        path("/api/v1/dossiers/[^/]+/result$", "esign", "ImplementationSpecific"),
    ]
    assert concrete("/api/v1/dossiers/<string:code>/result") == "/api/v1/dossiers/sample-code/result"
    assert backend_for(paths, "/api/v1/dossiers/D-1/result")["backend"]["service"]["name"] == "esign"
    assert backend_for(paths, "/api/v1/dossiers/D-1/audit")["backend"]["service"]["name"] == "dossier"
    assert backend_for(paths, "/api/v1/dossiers")["backend"]["service"]["name"] == "dossier"
    assert backend_for(paths, "/api/v1/dossiersx") is None, "a Prefix matches whole segments"


# -- every service deployed, scaled once --------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_deployed_and_scaled_by_one_autoscaler(service: str) -> None:
    skip_unless_deployed(service)
    docs = render(PRODUCTION)
    name = f"motcua-{service}"
    assert name in by_kind(docs, "Deployment"), f"services/{service} has no Deployment in deploy/k8s/base"
    assert name in by_kind(docs, "Service")
    hpas = [
        h
        for h in by_kind(docs, "HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"]["name"] == name
    ]
    scaled = [
        s for s in by_kind(docs, "ScaledObject").values() if s["spec"]["scaleTargetRef"]["name"] == name
    ]
    # KEDA makes an HPA for a ScaledObject's target; a second HPA on it would fight the first.
    assert len(hpas) + len(scaled) == 1, f"{name}: {len(hpas)} HPA(s) and {len(scaled)} ScaledObject(s)"
    consumed = queues(service)
    if not consumed:
        assert hpas, f"{name} consumes no queue: an HPA on CPU scales its HTTP API"
        return
    (scaled_object,) = scaled
    triggers = scaled_object["spec"]["triggers"]
    on_queues = {t["metadata"]["queueName"] for t in triggers if t["type"] == "rabbitmq"}
    assert on_queues == consumed, f"{name}: scale on the queues it consumes, {sorted(consumed)}"
    auth = by_kind(docs, "TriggerAuthentication")
    for trigger in triggers:
        if trigger["type"] == "rabbitmq":
            assert trigger["metadata"]["mode"] == "QueueLength" and int(trigger["metadata"]["value"]) > 0
            assert trigger["authenticationRef"]["name"] in auth
    assert "cpu" in {t["type"] for t in triggers}, f"{name} also serves HTTP: scale on CPU too"


def test_metrics_scales_like_the_others_now_that_one_replica_exports_the_sla_totals() -> None:
    """Only the elected replica exports the SLA families (tests/e2e/test_replicas.py), so nothing pins
    metrics to one replica: the autoscaler owns the count, never below two."""
    docs = render(PRODUCTION)
    assert "replicas" not in by_kind(docs, "Deployment")["motcua-metrics"]["spec"]
    scaled = by_kind(docs, "ScaledObject")["motcua-metrics"]
    assert not any(
        key.startswith("autoscaling.keda.sh/paused") for key in scaled["metadata"].get("annotations", {})
    )
    assert scaled["spec"]["minReplicaCount"] >= 2
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    assert by_kind(docs, "PodDisruptionBudget")["motcua-metrics"]["spec"]["minAvailable"] >= 1


def test_dossier_keeps_two_replicas_and_the_autoscaler_owns_the_count() -> None:
    docs = render(PRODUCTION)
    assert "replicas" not in by_kind(docs, "Deployment")["motcua-dossier"]["spec"]
    # It consumes the postal events, so KEDA scales it (and makes its HPA): at least two replicas.
    assert by_kind(docs, "ScaledObject")["motcua-dossier"]["spec"]["minReplicaCount"] >= 2
    assert by_kind(docs, "PodDisruptionBudget")["motcua-dossier"]["spec"]["minAvailable"] >= 1


@pytest.mark.parametrize("overlay", [LOCAL, PRODUCTION], ids=lambda p: p.name)
def test_pods_stop_gracefully(overlay: Path) -> None:
    """preStop keeps a pod serving while it leaves the endpoints; SIGTERM then drains it
    (tests/e2e/test_graceful_shutdown.py) within the grace period, before the SIGKILL."""
    for name, deployment in by_kind(render(overlay), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        delay = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 3 <= delay <= 15, f"{name}: preStop sleep {delay} s"
        assert pod["terminationGracePeriodSeconds"] >= delay + 20, f"{name}: time to finish in-flight work"


# -- the broker and the database, run by their operators ---------------------------------------------


def test_rabbitmq_is_a_three_node_cluster_with_quorum_queues_by_policy() -> None:
    docs = render(PRODUCTION)
    (cluster,) = by_kind(docs, "RabbitmqCluster").values()
    assert cluster["spec"]["replicas"] == 3
    assert "default_queue_type = quorum" in cluster["spec"]["rabbitmq"]["additionalConfig"]
    policies = [p for p in by_kind(docs, "Policy").values() if p["spec"]["applyTo"] == "quorum_queues"]
    assert policies, "a policy for the quorum queues"
    all_queues = {q for s in SERVICES for q in queues(s)}
    for policy in policies:
        assert policy["spec"]["rabbitmqClusterReference"]["name"] == cluster["metadata"]["name"]
        assert policy["spec"]["definition"]["target-group-size"] == cluster["spec"]["replicas"]
        pattern = re.compile(policy["spec"]["pattern"])
        for queue in all_queues:
            assert pattern.search(queue) and pattern.search(f"{queue}.dead-letter"), f"{queue}: no policy"
        assert not pattern.search("amq.gen-subscriber"), "only motcua's queues, not subscribers' own"


def test_postgresql_is_a_three_instance_cloudnativepg_cluster() -> None:
    docs = render(PRODUCTION)
    (cluster,) = [
        d for d in docs if d["kind"] == "Cluster" and d["apiVersion"].startswith("postgresql.cnpg.io/")
    ]
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["affinity"]["enablePodAntiAffinity"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_production_services_read_the_secrets_the_operators_generate(service: str) -> None:
    skip_unless_deployed(service)
    docs = render(PRODUCTION)
    (broker,) = by_kind(docs, "RabbitmqCluster")
    (database,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Cluster"]
    deployment = by_kind(docs, "Deployment")[f"motcua-{service}"]
    database_url = f"{service.upper()}_DATABASE_URL"
    wanted = {
        database_url: {"name": f"{database}-app", "key": "uri"},
        "AMQP_URI": {"name": f"{broker}-default-user", "key": "connection_string"},
    }
    pod = deployment["spec"]["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        env = {entry["name"]: entry for entry in container.get("env", [])}
        for variable, ref in wanted.items():
            if variable in env:
                assert env[variable]["valueFrom"]["secretKeyRef"] == ref, f"{service}/{container['name']}"
    assert wanted.keys() <= env_of(deployment).keys()
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    (target,) = auth["spec"]["secretTargetRef"]
    assert {"name": target["name"], "key": target["key"]} == wanted["AMQP_URI"]
    assert not by_kind(docs, "Secret"), "production generates no Secret from git"
