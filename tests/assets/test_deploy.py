"""The deployment assets stay consistent: the Kubernetes manifests under deploy/k8s, the services'
config.yml files they feed, the monitoring kustomizations and the operator's runbook.

Offline: ``kustomize build`` runs the pinned kubectl that ``make test`` unpacks (tests/support/k8s.py); it
skips without it on a developer's machine and fails under CI.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.run import DEFAULT_PORTS
from shared.auth import auth_settings
from shared.config import load_config, validate
from tests.support.k8s import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(path for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file())
MONITORING_KUSTOMIZATION = K8S / "monitoring"
RULES_FILE = ROOT / "deploy" / "monitoring" / "prometheus" / "rules" / "motcua-alerts.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "monitoring" / "prometheus" / "prometheusrule.yaml"
DASHBOARDS = ROOT / "deploy" / "monitoring" / "grafana" / "dashboards"
RUNBOOK = ROOT / "docs" / "runbook.md"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
CONFIG_MAP = "motcua-config"
SECRET = "motcua-secrets"

YAML_FILES = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:)?")
RUNBOOK_LINK = re.compile(r"docs/runbook\.md#([\w-]+)")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def manifests(folder: Path = K8S, kind: str | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in YAML_FILES:
        if folder not in (path, *path.parents) or path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            if kind is None or doc.get("kind") == kind:
                yield path, doc


def service_of(deployment: dict[str, Any]) -> str:
    name = deployment["metadata"]["name"]
    assert name.startswith("motcua-"), f"Deployment {name}: expected motcua-<service>"
    return name.removeprefix("motcua-")


def base_deployments() -> dict[str, dict[str, Any]]:
    return {service_of(doc): doc for _, doc in manifests(BASE, "Deployment")}


def base_services() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests(BASE, "Service")}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    found = deployment["spec"]["template"]["spec"]["containers"]
    assert len(found) == 1, f"{deployment['metadata']['name']}: expected one container"
    return found[0]


def config_variables(service: str) -> dict[str, bool]:
    """The environment variables services/<service>/config.yml reads: name -> has a default."""
    path = ROOT / "services" / service / "config.yml"
    assert path.is_file(), f"a Deployment runs {service!r}, but {rel(path)} does not exist"
    found: dict[str, bool] = {}
    for match in ENV_REFERENCE.finditer(path.read_text(encoding="utf-8")):
        found[match.group(1)] = found.get(match.group(1), False) or bool(match.group(2))
    return found


# -- kustomizations --------------------------------------------------------------------------------


def kustomization_dirs() -> list[Path]:
    """Every kustomization under deploy/k8s and every one those reference (deploy/monitoring/...)."""
    pending = [path.parent for path in K8S.rglob("kustomization.yaml")]
    seen: list[Path] = []
    while pending:
        folder = pending.pop().resolve()
        if folder in seen:
            continue
        seen.append(folder)
        for entry in yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8")).get(
            "resources", []
        ):
            target = (folder / entry).resolve()
            if target.is_dir():
                pending.append(target)
    return sorted(seen)


KUSTOMIZATIONS = kustomization_dirs()


def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8")) or {}


def generator_files(generator: dict[str, Any]) -> list[str]:
    """The files of a configMapGenerator/secretGenerator entry (`files: [key=path]`, `envs: [path]`)."""
    return [entry.partition("=")[2] or entry for entry in generator.get("files", [])] + list(
        generator.get("envs", [])
    )


def generator_keys(name: str, kind: str, folders: list[Path]) -> set[str]:
    keys: set[str] = set()
    for folder in folders:
        for generator in kustomization(folder).get(kind, []):
            if generator["name"] == name:
                keys.update(literal.partition("=")[0] for literal in generator.get("literals", []))
                for env_file in generator.get("envs", []):
                    for line in (folder / env_file).read_text(encoding="utf-8").splitlines():
                        if line.strip() and not line.lstrip().startswith("#"):
                            keys.add(line.partition("=")[0].strip())
    return keys


def config_map_keys() -> set[str]:
    """Keys of motcua-config in the base and every overlay: envFrom hands all of them to every pod."""
    keys = generator_keys(CONFIG_MAP, "configMapGenerator", [BASE, *OVERLAYS])
    for _, doc in manifests(K8S, "ConfigMap"):
        if doc["metadata"]["name"] == CONFIG_MAP:
            keys.update(doc.get("data", {}))
    return keys


# The Secrets the operators generate for the resources the manifests declare, with the keys they hold
# (rabbitmq/cluster-operator internal/resource/default_user_secret.go; cloudnative-pg pkg/specs/secrets.go).
RABBITMQ_DEFAULT_USER_KEYS = {"username", "password", "host", "port", "connection_string"}
CNPG_APP_KEYS = {"username", "password", "dbname", "host", "port", "uri", "jdbc-uri", "fqdn-uri", "pgpass"}


def operator_generated_secrets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for _, doc in manifests(K8S, "RabbitmqCluster"):
        found[f"{doc['metadata']['name']}-default-user"] = RABBITMQ_DEFAULT_USER_KEYS
    for _, doc in manifests(K8S, "User"):  # the Topology Operator's, one per service (deploy/k8s/broker)
        if doc["apiVersion"].startswith("rabbitmq.com/"):
            found[f"{doc['metadata']['name']}-user-credentials"] = {"username", "password"}
    for _, doc in manifests(K8S, "Cluster"):
        if doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            found[f"{doc['metadata']['name']}-app"] = CNPG_APP_KEYS
    return found


def secret_example_keys() -> set[str]:
    (secret,) = load_all(SECRET_EXAMPLE)
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


# -- GitHub anchors ----------------------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: markup dropped, lower case, punctuation removed
    (letters, digits, `_` and `-` stay), spaces become hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def markdown_anchors(text: str) -> set[str]:
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_slug(match.group(1))
            anchors.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
            counts[slug] = counts.get(slug, 0) + 1
    return anchors


# -- tests -------------------------------------------------------------------------------------------


def test_there_is_something_to_check() -> None:
    assert base_deployments(), "no Deployment under deploy/k8s/base"
    assert {path.name for path in OVERLAYS} >= {"local", "production"}
    assert len(YAML_FILES) > 10


@pytest.mark.parametrize("path", YAML_FILES, ids=rel)
def test_every_manifest_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{rel(path)} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{rel(path)}: a document is not a mapping"
        if path.name != "kustomization.yaml":
            assert doc.get("apiVersion") and doc.get("kind"), f"{rel(path)}: apiVersion and kind"
            assert doc.get("metadata", {}).get("name"), f"{rel(path)}: {doc['kind']} without a name"


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=rel)
def test_kustomization_references_exist_within_the_load_restrictor(folder: Path) -> None:
    spec = kustomization(folder)
    problems: list[str] = []

    def check(entry: str, what: str, *, directory_allowed: bool) -> None:
        if "://" in entry or entry.startswith("github.com/"):
            return
        target = (folder / entry).resolve()
        if target.is_dir() and directory_allowed:
            if not (target / "kustomization.yaml").is_file():
                problems.append(f"{what} {entry}: a directory without kustomization.yaml")
        elif not target.is_file():
            problems.append(f"{what} {entry}: no such file")
        elif folder.resolve() not in target.parents:
            # kustomize's default LoadRestrictionsRootOnly: files must be in or below the kustomization
            problems.append(f"{what} {entry}: outside {rel(folder)}; kustomize refuses it")

    for entry in spec.get("resources", []):
        check(entry, "resource", directory_allowed=True)
    for entry in spec.get("components", []):
        check(entry, "component", directory_allowed=True)
    for patch in spec.get("patches", []):
        if "path" in patch:
            check(patch["path"], "patch", directory_allowed=False)
    for entry in spec.get("patchesStrategicMerge", []):
        if "\n" not in entry:
            check(entry, "patch", directory_allowed=False)
    for kind in ("configMapGenerator", "secretGenerator"):
        for generator in spec.get(kind, []):
            for entry in generator_files(generator):
                check(entry, f"{kind} {generator['name']}", directory_allowed=False)
    assert not problems, f"{rel(folder)}/kustomization.yaml:\n  " + "\n  ".join(problems)


def test_the_base_does_not_ship_the_secret_or_a_namespace() -> None:
    spec = kustomization(BASE)
    assert "namespace" not in spec, "the base is namespace-agnostic"
    assert SECRET_EXAMPLE.name not in spec.get("resources", [])
    assert not [doc for _, doc in manifests(BASE) if "namespace" in doc.get("metadata", {})]
    secrets = [path for path, _ in manifests(BASE, "Secret")]
    assert secrets in ([], [SECRET_EXAMPLE]), "the base ships no Secret but the unreferenced example"


@pytest.mark.parametrize("service", sorted(base_deployments()))
def test_deployment_probes_ports_and_commands(service: str) -> None:
    deployment = base_deployments()[service]
    container = main_container(deployment)
    ports = {port.get("name"): port["containerPort"] for port in container["ports"]}
    (port,) = ports.values()
    assert port == DEFAULT_PORTS[service], f"{service}: docs/contracts.md §2 port is {DEFAULT_PORTS[service]}"

    def probe_port(probe: dict[str, Any]) -> int:
        value = probe["httpGet"]["port"]
        return ports[value] if isinstance(value, str) else value

    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in container:
            assert probe_port(container[kind]) == port, f"{service}: {kind} port"

    assert container["command"] == ["python", "-m", "shared.runner", service]
    migrations = [c for c in containers(deployment) if "shared.migrate" in c.get("command", [])]
    assert [c["command"] for c in migrations] == [["python", "-m", "shared.migrate", service]]
    assert deployment["spec"]["template"]["spec"]["initContainers"] == migrations
    assert (ROOT / "services" / service / "migrations" / "env.py").is_file(), f"{service}: no migrations"

    address = {e["name"]: e.get("value") for e in container.get("env", [])}.get(f"{service.upper()}_ADDRESS")
    assert address and address.rpartition(":")[2] == str(port), f"{service}: {service.upper()}_ADDRESS port"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("service", sorted(base_deployments()))
def test_service_targets_the_container_port(service: str) -> None:
    deployment = base_deployments()[service]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    matching = [s for s in base_services().values() if s["spec"]["selector"].items() <= pod_labels.items()]
    assert [s["metadata"]["name"] for s in matching] == [f"motcua-{service}"], (
        "one Service per service, named motcua-<service> (the Prometheus job the alerts select on)"
    )
    container_ports = {p.get("name"): p["containerPort"] for p in main_container(deployment)["ports"]}
    for port in matching[0]["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        resolved = container_ports.get(target) if isinstance(target, str) else target
        assert resolved in container_ports.values(), f"Service port {port}: no such container port"
        assert port["port"] == DEFAULT_PORTS[service]


@pytest.mark.parametrize("service", sorted(base_deployments()))
def test_pods_run_locked_down_with_resources(service: str) -> None:
    deployment = base_deployments()[service]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    labels = deployment["metadata"]["labels"]
    assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= labels.keys()
    for container in containers(deployment):
        name = f"{service}/{container['name']}"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp must be an emptyDir"


@pytest.mark.parametrize("service", sorted(base_deployments()))
def test_every_variable_a_deployment_sets_is_read_by_the_service_config(service: str) -> None:
    """A misspelt variable would be ignored and the default used in its place: fail instead."""
    reads = config_variables(service)
    secret_keys = secret_example_keys()
    operator_secrets = operator_generated_secrets()
    shared_keys = config_map_keys()
    deployments = [
        doc for _, doc in manifests(K8S, "Deployment") if doc["metadata"]["name"] == f"motcua-{service}"
    ]
    for deployment in deployments:  # the base and any overlay patch
        for container in containers(deployment):
            where = f"motcua-{service}/{container['name']}"
            names = [e["name"] for e in container.get("env", [])]
            for source in container.get("envFrom", []):
                assert "configMapRef" in source and source["configMapRef"]["name"] == CONFIG_MAP, (
                    f"{where}: envFrom only from {CONFIG_MAP} (from a Secret every pod would get every key)"
                )
                names += sorted(shared_keys)
            unknown = sorted(set(names) - reads.keys())
            assert not unknown, f"{where} sets {unknown}, which services/{service}/config.yml never reads"
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in operator_secrets:
                    assert ref["key"] in operator_secrets[ref["name"]], f"{where}: {ref} is no key it has"
                elif ref:
                    assert ref["name"] == SECRET, where
                    assert ref["key"] in secret_keys, f"{where}: {ref['key']} is not in {rel(SECRET_EXAMPLE)}"
    main = main_container(base_deployments()[service])
    provided = {e["name"] for e in main.get("env", [])} | shared_keys
    required = {name for name, has_default in reads.items() if not has_default}
    assert required <= provided, f"{service}: required settings not set: {sorted(required - provided)}"


def test_local_secret_has_the_keys_of_the_example() -> None:
    local = K8S / "overlays" / "local"
    assert generator_keys(SECRET, "secretGenerator", [local]) == secret_example_keys()
    for overlay in OVERLAYS:
        if overlay.name != "local":
            assert not generator_keys(SECRET, "secretGenerator", [overlay]), (
                f"{rel(overlay)}: real secrets are created in the cluster, not generated from git"
            )


@pytest.mark.parametrize("service", sorted(base_deployments()))
def test_local_overlay_values_pass_the_services_configuration_check(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the local overlay hands the service is what shared.runner accepts at start."""
    local = K8S / "overlays" / "local"
    values: dict[str, str] = {}
    for folder in (BASE, local):
        for kind in ("configMapGenerator", "secretGenerator"):
            for generator in kustomization(folder).get(kind, []):
                if generator["name"] in (CONFIG_MAP, SECRET):
                    values.update(literal.split("=", 1) for literal in generator.get("literals", []))
    container = main_container(base_deployments()[service])
    settings = set(config_variables(service))
    for name in settings:
        monkeypatch.delenv(name, raising=False)
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        monkeypatch.setenv(entry["name"], values[ref["key"]] if ref else entry["value"])
    for name, value in values.items():
        if name in settings and name in config_map_keys():
            monkeypatch.setenv(name, value)
    config = load_config(ROOT / "services" / service / "config.yml")
    validate(config)
    assert auth_settings(config, service).development  # the local overlay runs in development mode
    if importlib.util.find_spec(f"services.{service}.dependencies") is not None:
        own = getattr(importlib.import_module(f"services.{service}.dependencies"), "SETTINGS", ())
        validate(config, own)  # the settings the service adds to COMMON_SETTINGS
    assert config["DATABASE_URL"].startswith("postgresql://")


def test_service_monitors_select_the_services_and_keep_the_service_label() -> None:
    services = base_services()
    monitors = [doc for _, doc in manifests(MONITORING_KUSTOMIZATION, "ServiceMonitor")]
    monitors = [m for m in monitors if m["metadata"]["name"] != RABBITMQ_MONITOR]
    assert {m["metadata"]["name"] for m in monitors} == set(services)
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selected = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert [s["metadata"]["name"] for s in selected] == [name], f"{name}: selects {selected}"
        port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, name
            assert endpoint.get("path", "/metrics") == "/metrics", name
            # the services label their metrics service="<name>"; the operator's target label must not win
            assert endpoint.get("honorLabels") is True, name


RABBITMQ_MONITOR = "motcua-rabbitmq-queues"


def test_rabbitmq_queue_depths_and_alarms_are_scraped_where_the_alerts_read_them() -> None:
    """RabbitMQ's plugin serves per-queue series on /metrics/detailed, named rabbitmq_detailed_…, only for
    the families asked for, and its alarms (rabbitmq_alarms_…) on the aggregated /metrics; the Cluster
    Operator's Service is labelled component=rabbitmq with its metrics port named "prometheus"."""
    (monitor,) = [
        doc
        for _, doc in manifests(MONITORING_KUSTOMIZATION, "ServiceMonitor")
        if doc["metadata"]["name"] == RABBITMQ_MONITOR
    ]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/component": "rabbitmq"}
    detailed, aggregated = monitor["spec"]["endpoints"]
    assert detailed["port"] == "prometheus" and detailed["path"] == "/metrics/detailed"
    assert detailed["params"]["family"] == ["queue_coarse_metrics"]
    assert aggregated["port"] == "prometheus" and aggregated["path"] == "/metrics"
    assert "params" not in aggregated
    rules = yaml.safe_load(
        (ROOT / "deploy" / "monitoring" / "prometheus" / "rules" / "motcua-alerts.yml").read_text(
            encoding="utf-8"
        )
    )
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert (
        'rabbitmq_detailed_queue_messages{queue="egov.events.unrouted"}'
        in alerts["MotcuaEventsWaitingUnrouted"]
    )
    for gauge in ("rabbitmq_alarms_free_disk_space_watermark", "rabbitmq_alarms_memory_used_watermark"):
        assert gauge in alerts["MotcuaBrokerAlarm"]


def test_monitoring_kustomization_ships_the_prometheus_rule_and_every_dashboard() -> None:
    reachable = [folder for folder in KUSTOMIZATIONS if folder != MONITORING_KUSTOMIZATION.resolve()]
    rule_folder = PROMETHEUS_RULE.parent.resolve()
    assert rule_folder in reachable and PROMETHEUS_RULE.name in kustomization(rule_folder)["resources"]
    resources = kustomization(MONITORING_KUSTOMIZATION)["resources"]
    assert {(MONITORING_KUSTOMIZATION / r).resolve() for r in resources} >= {rule_folder, DASHBOARDS.parent}
    generators = kustomization(DASHBOARDS.parent)["configMapGenerator"]
    shipped = {(DASHBOARDS.parent / f).resolve() for g in generators for f in generator_files(g)}
    assert shipped == {path.resolve() for path in DASHBOARDS.glob("*.json")}, "a dashboard is not shipped"
    for generator in generators:
        assert generator["options"]["labels"]["grafana_dashboard"] == "1"


def test_runbook_has_a_section_for_every_alert_and_every_link() -> None:
    anchors = markdown_anchors(RUNBOOK.read_text(encoding="utf-8"))
    used = set(RUNBOOK_LINK.findall(RULES_FILE.read_text(encoding="utf-8")))
    assert len(used) >= 7
    for path in YAML_FILES:
        used.update(RUNBOOK_LINK.findall(path.read_text(encoding="utf-8")))
    internal = set(re.findall(r"\]\(#([\w-]+)\)", RUNBOOK.read_text(encoding="utf-8")))
    assert not sorted(used - anchors), f"docs/runbook.md has no section for {sorted(used - anchors)}"
    assert not sorted(internal - anchors), f"docs/runbook.md links to missing {sorted(internal - anchors)}"


def test_github_slug_rules() -> None:
    assert github_slug("SLA on-time fast burn") == "sla-on-time-fast-burn"
    assert github_slug("Rotating `JWT_SECRET`") == "rotating-jwt_secret"
    assert github_slug("Events: dead-lettered (v2)!") == "events-dead-lettered-v2"
    assert markdown_anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


# -- kustomize build ---------------------------------------------------------------------------------


def build(folder: Path) -> list[dict[str, Any]]:
    return list(render(folder))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_kustomize_builds_every_overlay_and_the_monitoring() -> None:
    local = build(K8S / "overlays" / "local")
    production = build(K8S / "overlays" / "production")
    monitoring = build(MONITORING_KUSTOMIZATION)

    services = set(base_deployments())
    # production names the image by digest (what was built and tested), never by a tag that can move
    for docs, image in ((local, r"motcua:dev"), (production, r"ghcr\.io/motcua/motcua@sha256:[0-9a-f]{64}")):
        deployments = by_kind(docs, "Deployment")
        assert set(deployments) == {f"motcua-{s}" for s in services}
        for deployment in deployments.values():
            for container in containers(deployment):
                assert re.fullmatch(image, container["image"]), container["image"]
    assert {"rabbitmq", "postgres"} <= set(by_kind(local, "StatefulSet"))
    broker = by_kind(local, "StatefulSet")["rabbitmq"]["spec"]["template"]["spec"]["containers"][0]
    assert broker["image"] == "rabbitmq:3.12-management"
    assert any(name.startswith(f"{SECRET}-") for name in by_kind(local, "Secret"))
    assert not by_kind(production, "Secret"), "production takes motcua-secrets from the cluster"
    # the autoscaler owns dossier's replica count, at least two
    assert "replicas" not in by_kind(production, "Deployment")["motcua-dossier"]["spec"]
    assert by_kind(production, "ScaledObject")["motcua-dossier"]["spec"]["minReplicaCount"] >= 2
    assert by_kind(production, "PodDisruptionBudget")
    for docs in (local, production):  # generated names are substituted into every reference
        config_maps = set(by_kind(docs, "ConfigMap"))
        for deployment in by_kind(docs, "Deployment").values():
            for container in containers(deployment):
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in config_maps
    assert set(by_kind(monitoring, "ServiceMonitor")) == {f"motcua-{s}" for s in services} | {
        RABBITMQ_MONITOR
    }
    assert set(by_kind(monitoring, "PrometheusRule")) == {"motcua"}
    (dashboards,) = by_kind(monitoring, "ConfigMap").values()
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboards["data"]) == {path.name for path in DASHBOARDS.glob("*.json")}
