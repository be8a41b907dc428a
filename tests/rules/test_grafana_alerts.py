"""rules/grafana-alerts.yaml: an alert-rule provisioning file Grafana loads, firing like the Prometheus rules.

Grafana refuses a provisioning file with a rule whose condition names no query, an unknown
expression type or a bad state, and it expands environment variables in labels, so these are
checked here. Each Grafana rule must also fire on exactly the condition of its Prometheus twin,
with the same labels and annotations (in Grafana's template dialect), so an alert reads the same
whichever system sent it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from rules_support import (
    DASHBOARD,
    GPU_RULES,
    GRAFANA_RULES,
    alerting_rules,
    assert_promtool_ok,
    check_exprs_parse,
    inline_recording_rules,
    load_yaml,
    recording_rules,
)

DATASOURCE_PLACEHOLDER = "${DS_PROMETHEUS}"
EXPRESSION_DATASOURCE = "__expr__"
EXPRESSION_TYPES = {"math", "reduce", "resample", "classic_conditions", "threshold"}
THRESHOLD_EVALUATORS = {"gt", "lt", "within_range", "outside_range"}
NO_DATA_STATES = {"NoData", "Alerting", "OK"}
EXEC_ERR_STATES = {"Error", "Alerting", "OK"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")  # Grafana's limit for rule UIDs

DOC = load_yaml(GRAFANA_RULES)
GROUPS = DOC["groups"]
RULES = [rule for group in GROUPS for rule in group["rules"]]
BY_TITLE = {rule["title"]: rule for rule in RULES}
PROMETHEUS = alerting_rules(GPU_RULES)


def query(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule's one datasource query (the Prometheus expression)."""
    (found,) = [item for item in rule["data"] if item["datasourceUid"] != EXPRESSION_DATASOURCE]
    return found


def test_file_is_a_version_1_alert_rule_provisioning_file() -> None:
    assert DOC["apiVersion"] == 1
    assert set(DOC) <= {"apiVersion", "groups", "deleteRules"}
    for group in GROUPS:
        assert isinstance(group["orgId"], int)
        assert group["name"] and group["folder"] and group["rules"]
        assert DURATION.match(group["interval"])


def test_rule_uids_and_titles_are_unique_and_valid() -> None:
    uids = [rule["uid"] for rule in RULES]
    assert len(set(uids)) == len(uids)
    assert all(UID.match(uid) for uid in uids), uids
    assert len(BY_TITLE) == len(RULES)


@pytest.mark.parametrize("title", sorted(BY_TITLE))
def test_rule_is_complete_for_grafana(title: str) -> None:
    rule = BY_TITLE[title]
    refs = [item["refId"] for item in rule["data"]]
    assert len(set(refs)) == len(refs)
    assert rule["condition"] in refs
    assert rule["noDataState"] in NO_DATA_STATES
    assert rule["execErrState"] in EXEC_ERR_STATES
    assert DURATION.match(str(rule["for"]))
    seen: set[str] = set()
    for item in rule["data"]:
        model = item["model"]
        assert model["refId"] == item["refId"]
        if item["datasourceUid"] == EXPRESSION_DATASOURCE:
            assert model["type"] in EXPRESSION_TYPES
            assert model["datasource"] == {"type": "__expr__", "uid": "__expr__"}
            assert model["expression"] in seen, f"{item['refId']} reads {model['expression']}, not defined before it"
            for condition in model.get("conditions", []) if model["type"] == "threshold" else []:
                assert condition["evaluator"]["type"] in THRESHOLD_EVALUATORS
                assert all(isinstance(p, (int, float)) for p in condition["evaluator"]["params"])
        else:
            assert item["datasourceUid"] == DATASOURCE_PLACEHOLDER, "the chart fills in the datasource UID"
            window = item["relativeTimeRange"]
            assert window["from"] > window["to"] >= 0
            assert model["expr"] and model["instant"] is True
        seen.add(item["refId"])


@pytest.mark.parametrize("title", sorted(BY_TITLE))
def test_labels_survive_grafanas_environment_variable_expansion(title: str) -> None:
    """Grafana replaces `$name` in provisioned labels with environment variables: `$labels.x` would vanish."""
    for name, value in BY_TITLE[title]["labels"].items():
        assert "$" not in value, f"label {name} of {title} holds a $, Grafana would expand it: {value!r}"


def test_rules_link_to_a_panel_of_the_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panel_ids = {panel["id"] for panel in dashboard["panels"]}
    for rule in RULES:
        assert rule["dashboardUid"] == dashboard["uid"]
        assert rule["panelId"] in panel_ids


def test_grafana_rules_are_the_gpu_fault_alerts() -> None:
    assert set(BY_TITLE) == set(PROMETHEUS)


@pytest.mark.parametrize("title", sorted(PROMETHEUS))
def test_grafana_rule_fires_like_its_prometheus_twin(title: str) -> None:
    grafana, prometheus = BY_TITLE[title], PROMETHEUS[title]
    expected = inline_recording_rules(prometheus["expr"], recording_rules(GPU_RULES))
    assert " ".join(query(grafana)["model"]["expr"].split()) == expected
    assert str(grafana["for"]) in {str(prometheus.get("for", "0s")), "0s" if "for" not in prometheus else ""}
    # Every series the expression returns is one alert: reduce each, fire above 0.
    condition = next(item for item in grafana["data"] if item["refId"] == grafana["condition"])["model"]
    assert condition["type"] == "threshold"
    assert condition["conditions"][0]["evaluator"] == {"type": "gt", "params": [0]}


@pytest.mark.parametrize("title", sorted(PROMETHEUS))
def test_grafana_rule_labels_and_annotations_match_its_prometheus_twin(title: str) -> None:
    grafana, prometheus = BY_TITLE[title], PROMETHEUS[title]
    assert {k: v.replace(".Labels.", "$labels.") for k, v in grafana["labels"].items()} == prometheus["labels"]
    as_prometheus = {k: v.replace("$values.A.Value", "$value") for k, v in grafana["annotations"].items()}
    assert as_prometheus == prometheus["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(grafana["annotations"])


def test_every_grafana_query_parses(tmp_path: Path) -> None:
    exprs = {title: query(rule)["model"]["expr"] for title, rule in BY_TITLE.items()}
    assert_promtool_ok(check_exprs_parse(exprs, tmp_path))
