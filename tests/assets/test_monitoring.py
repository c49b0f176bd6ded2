"""The monitoring assets in deploy/monitoring stay valid: alert rules and their promtool unit tests,
the generated PrometheusRule, the example Prometheus config and the Grafana dashboards."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES_FILE = MONITORING / "prometheus" / "rules" / "motcua-alerts.yml"
RULES_TESTS = MONITORING / "prometheus" / "tests" / "motcua-alerts.test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
PROMETHEUS_RULE = MONITORING / "prometheus" / "prometheusrule.yaml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))

RUNBOOK_URL = re.compile(r"https://github\.com/motcua/motcua/blob/main/docs/runbook\.md#[a-z0-9-]+")
SEVERITIES = {"page", "ticket"}

# What the services expose (docs/contracts.md §4). A misspelt name still parses, so without this
# list a dashboard panel would stay empty and an alert silent.
_COUNTERS_AND_GAUGES = {
    "motcua_dossiers_received_total",
    "motcua_dossiers_resolved_total",
    "motcua_dossiers_returned_total",
    "motcua_dossiers_in_process",
    "motcua_dossiers_overdue",
    "motcua_dossiers_due_soon",
    "motcua_supplement_requests_total",
    "motcua_satisfaction_ratings_total",
    "motcua_events_published_total",
    "motcua_events_unroutable_total",
    "motcua_outbox_pending",
    "motcua_outbox_oldest_pending_seconds",
    "motcua_metrics_sla_exporter",
    "motcua_events_consumed_total",
    "motcua_dead_lettered_total",
    "motcua_http_requests_total",
    "motcua_postal_shipments",
    "motcua_postal_shipments_overdue",
    "motcua_postal_webhooks_total",
    "motcua_postal_webhook_verification_failures_total",
    "motcua_postal_unknown_statuses_total",
    "motcua_postal_handover_discrepancies_total",
    "motcua_postal_returns_awaiting_address",
    "motcua_postal_lost_total",
    "motcua_postal_reports_before_handover_total",
    "motcua_postal_operator_call_failures_total",
    "motcua_postal_operator_calls_owed",
    "motcua_portal_answers_total",
    "motcua_portal_sync_backlog",
    "motcua_portal_sync_oldest_unsynced_seconds",
    "motcua_portal_sync_parked",
    "motcua_payments_total",
    "motcua_payment_confirmations_total",
    "motcua_payment_records_total",
    "motcua_payment_platform_calls_total",
    "motcua_payment_oldest_pending_seconds",
    "motcua_payments_owed",
    "motcua_webhook_deliveries_total",
    "motcua_webhook_subscriptions_disabled",
    "motcua_notifications_total",
    "motcua_decision766_points",
    "motcua_decision766_indicator_ratio",
    "motcua_notification_gateway_calls_total",
}
_HISTOGRAMS = {
    "motcua_dossier_resolution_working_seconds",
    "motcua_event_handling_seconds",
    "motcua_http_request_duration_seconds",
    "motcua_postal_delivery_working_seconds",
    "motcua_webhook_delivery_lag_seconds",
    "motcua_notification_gateway_seconds",
}
EXPOSED_METRICS = _COUNTERS_AND_GAUGES | {
    f"{name}{suffix}" for name in _HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}
METRIC_NAME = re.compile(r"\bmotcua[_:][A-Za-z0-9_:]*")

# Grafana's built-in variables, replaced by values of the right kind; dashboard variables
# (all used inside regex matchers) become ".*".
GRAFANA_BUILTINS = {"__range": "1d", "__rate_interval": "5m", "__interval": "1m"}
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def run_promtool(promtool: str, *args: str | Path) -> None:
    result = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    command = " ".join(str(arg) for arg in args[:2])
    assert result.returncode == 0, f"promtool {command} failed:\n{result.stdout}{result.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> Iterator[dict[str, Any]]:
    for group in load_yaml(RULES_FILE)["groups"]:
        yield from group["rules"]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def grafana_variables(expr: str) -> set[str]:
    return {next(name for name in m.groups() if name) for m in GRAFANA_VARIABLE.finditer(expr)}


def without_grafana_variables(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return GRAFANA_BUILTINS.get(name, ".*")

    return GRAFANA_VARIABLE.sub(value, expr)


def test_rules_file_passes_promtool_check(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", RULES_FILE)


def test_alerts_behave_as_their_promtool_unit_tests_expect(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", RULES_TESTS)


def test_example_prometheus_config_is_valid(promtool: str) -> None:
    run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULES_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    anchors = []
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        assert annotations.get("summary", "").strip(), name
        assert annotations.get("description", "").strip(), name
        assert RUNBOOK_URL.fullmatch(annotations.get("runbook_url", "")), name
        anchors.append(annotations["runbook_url"].partition("#")[2])
    assert len(anchors) == len(set(anchors)), "two alerts share a runbook section"


def test_on_time_objective_is_kept_in_one_recording_rule() -> None:
    objective = [rule for rule in rules() if rule.get("record") == "motcua:sla_on_time_objective"]
    assert len(objective) == 1
    burn_rate_alerts = [alert for alert in alerts() if "sla_on_time:ratio" in alert["expr"]]
    assert {alert["alert"] for alert in burn_rate_alerts} == {
        "MotcuaSlaOnTimeFastBurn",
        "MotcuaSlaOnTimeSlowBurn",
    }
    for alert in burn_rate_alerts:
        assert "scalar(motcua:sla_on_time_objective)" in alert["expr"], alert["alert"]
        assert "0.95" not in alert["expr"], alert["alert"]


def test_prometheusrule_is_generated_from_the_rules_file() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_prometheusrule", MONITORING / "build_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    builder: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert PROMETHEUS_RULE.read_text(encoding="utf-8") == builder.render(), (
        "prometheusrule.yaml is stale: run python deploy/monitoring/build_prometheusrule.py"
    )
    generated = load_yaml(PROMETHEUS_RULE)
    assert generated["apiVersion"] == "monitoring.coreos.com/v1"
    assert generated["kind"] == "PrometheusRule"
    assert generated["spec"]["groups"] == load_yaml(RULES_FILE)["groups"]


def test_dashboards_exist_with_stable_uids() -> None:
    assert [path.name for path in DASHBOARDS] == [
        "motcua-decision766.json",
        "motcua-office.json",
        "motcua-pipeline.json",
    ]
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        assert dashboard["uid"] == path.stem, path.name
        assert dashboard["schemaVersion"] >= 39, path.name
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_panel_has_a_unit_and_queries_the_datasource_variable(path: Path) -> None:
    dashboard = load_dashboard(path)
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert "datasource" in defined
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", title
            assert target["expr"].strip(), title
            own_variables = {name for name in grafana_variables(target["expr"]) if name[:2] != "__"}
            assert own_variables <= defined, f"{title}: undefined {own_variables - defined}"


def test_every_panel_expression_parses(promtool: str, tmp_path: Path) -> None:
    groups = []
    for path in DASHBOARDS:
        recorded = [
            {
                "record": f"dashboard:panel_{panel['id']}:{target['refId']}",
                "expr": without_grafana_variables(target["expr"]),
            }
            for panel in panels(load_dashboard(path))
            for target in panel["targets"]
        ]
        groups.append({"name": path.stem, "rules": recorded})
    assert all(group["rules"] for group in groups)
    rules_file = tmp_path / "dashboard-expressions.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    run_promtool(promtool, "check", "rules", rules_file)


def test_rules_and_dashboards_use_only_exposed_metrics() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    expressions = {f"rule {rule.get('alert') or rule['record']}": rule["expr"] for rule in rules()}
    for path in DASHBOARDS:
        for panel in panels(load_dashboard(path)):
            for target in panel["targets"]:
                expressions[f"{path.stem}: {panel['title']} {target['refId']}"] = target["expr"]
    unknown = {
        where: names
        for where, expr in expressions.items()
        if (names := set(METRIC_NAME.findall(expr)) - EXPOSED_METRICS - recorded)
    }
    assert unknown == {}
