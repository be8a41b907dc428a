"""The chart's PrometheusRule and Grafana ConfigMaps: what a `helm install` actually ships.

The PrometheusRule must carry the rule files unchanged (so the promtool unit tests vouch for the
installed rules too), with the runbook links moved to runbookBaseUrl; the Grafana ConfigMaps must
carry the sidecar labels and the dashboard and alert rules with the datasource filled in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rules_support import (
    DASHBOARD,
    GRAFANA_RULES,
    PROMETHEUS_RULE_FILES,
    PROMTOOL_TESTS,
    SHIPPED_RUNBOOKS,
    assert_promtool_ok,
    load_yaml,
    rendered_object,
    retarget_promtool_tests,
    run_promtool,
)

RULE_VALUES = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}}
CUSTOM_RUNBOOKS = "https://git.example.com/sre/repairbot/-/tree/main/runbooks"


def prometheus_rule(**values: Any) -> dict[str, Any]:
    rule = rendered_object({**RULE_VALUES, **values}, "prometheusrule.yaml")
    assert rule is not None, "metrics.prometheusRule.enabled rendered no PrometheusRule"
    return rule


def runbook_urls(groups: list[dict[str, Any]]) -> list[str]:
    return [
        rule["annotations"]["runbook_url"]
        for group in groups
        for rule in group["rules"]
        if "runbook_url" in rule.get("annotations", {})
    ]


def test_no_prometheus_rule_unless_enabled() -> None:
    assert rendered_object({}, "prometheusrule.yaml") is None


def test_prometheus_rule_carries_both_rule_files_unchanged() -> None:
    rule = prometheus_rule()
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["namespace"] == "gpu-ops"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # what Prometheus selects rules by
    shipped = [group for path in PROMETHEUS_RULE_FILES for group in load_yaml(path)["groups"]]
    assert rule["spec"]["groups"] == shipped


def test_installed_rules_pass_the_promtool_unit_tests(tmp_path: Path) -> None:
    groups = {group["name"]: group for group in prometheus_rule()["spec"]["groups"]}
    for source in PROMETHEUS_RULE_FILES:
        installed = tmp_path / f"installed-{source.name}"
        names = [group["name"] for group in load_yaml(source)["groups"]]
        installed.write_text(
            yaml.safe_dump({"groups": [groups[name] for name in names]}, sort_keys=False), encoding="utf-8"
        )
        tests = retarget_promtool_tests(PROMTOOL_TESTS[source], installed, tmp_path)
        assert_promtool_ok(run_promtool("test", "rules", tests))


@pytest.mark.parametrize("base", [CUSTOM_RUNBOOKS, CUSTOM_RUNBOOKS + "/"])
def test_runbook_links_follow_runbook_base_url(base: str) -> None:
    urls = runbook_urls(prometheus_rule(runbookBaseUrl=base)["spec"]["groups"])
    assert urls
    assert not any(SHIPPED_RUNBOOKS in url for url in urls)
    assert any(f"{CUSTOM_RUNBOOKS}/xid-79.md" in url for url in urls)
    assert f"{CUSTOM_RUNBOOKS}/storm-breaker.md" in urls
    assert "runbooks//" not in " ".join(urls)


def test_runbook_links_point_at_the_project_without_runbook_base_url() -> None:
    urls = runbook_urls(prometheus_rule()["spec"]["groups"])
    assert f"{SHIPPED_RUNBOOKS}gpu-missing.md" in urls


def dashboards_config_map(**grafana: Any) -> dict[str, Any] | None:
    return rendered_object({"grafana": {"dashboards": {"enabled": True, **grafana}}}, "grafana-dashboard.yaml")


def test_dashboard_config_map_is_found_by_the_sidecar() -> None:
    config_map = dashboards_config_map(label="grafana_dashboard", labelValue="1", folder="GPU fleet")
    assert config_map is not None and config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "GPU fleet"
    (name,) = config_map["data"]
    assert name.endswith(".json")
    assert json.loads(config_map["data"][name]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_dashboard_config_map_honours_a_custom_sidecar_label_and_no_folder() -> None:
    config_map = dashboards_config_map(label="dashboards.example.com/load", labelValue="yes", folder="")
    assert config_map is not None
    assert config_map["metadata"]["labels"]["dashboards.example.com/load"] == "yes"
    assert "grafana_folder" not in (config_map["metadata"].get("annotations") or {})


def test_no_grafana_objects_unless_enabled() -> None:
    assert rendered_object({}, "grafana-dashboard.yaml") is None
    assert rendered_object({}, "grafana-alerting.yaml") is None


def alerting_config_map(**values: Any) -> dict[str, Any]:
    grafana = {"alerting": {"enabled": True, "datasourceUid": "PBFA97CFB590B2093"}}
    config_map = rendered_object({"grafana": grafana, **values}, "grafana-alerting.yaml")
    assert config_map is not None
    return config_map


def test_alerting_config_map_carries_the_rules_with_the_datasource_filled_in() -> None:
    config_map = alerting_config_map(runbookBaseUrl=CUSTOM_RUNBOOKS)
    assert config_map["metadata"]["labels"]["grafana_alert"] == "1"
    (text,) = config_map["data"].values()
    assert "${DS_PROMETHEUS}" not in text
    provisioned = yaml.safe_load(text)
    shipped = load_yaml(GRAFANA_RULES)
    assert [r["uid"] for g in provisioned["groups"] for r in g["rules"]] == [
        r["uid"] for g in shipped["groups"] for r in g["rules"]
    ]
    for rule in (r for g in provisioned["groups"] for r in g["rules"]):
        queries = [item for item in rule["data"] if item["datasourceUid"] != "__expr__"]
        assert [item["datasourceUid"] for item in queries] == ["PBFA97CFB590B2093"]
        assert rule["annotations"]["runbook_url"].count(f"{CUSTOM_RUNBOOKS}/") >= 1
        assert SHIPPED_RUNBOOKS not in rule["annotations"]["runbook_url"]


def test_alerting_without_a_datasource_uid_is_refused() -> None:
    with pytest.raises(Exception, match="datasourceUid"):
        rendered_object({"grafana": {"alerting": {"enabled": True, "datasourceUid": ""}}}, "grafana-alerting.yaml")
