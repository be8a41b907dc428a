"""The policy and alert-mapping ConfigMaps load with the operator's and the webhook's own loaders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_support import CHART_DIR, EXPOSED, NOTIFYING, SCENARIOS, name, render

from repairbot.model import Action, Severity
from repairbot.policy import PolicyError, load_policy, parse_policy
from repairbot.webhook.mapping import AlertRules


def _policy_file(chart: Any, values: dict[str, Any], tmp_path: Path) -> Path:
    """The file the operator reads: the policy ConfigMap's key, as mounted in the pod."""
    configmap = render(chart, values).get("ConfigMap", name("policy"))
    path = tmp_path / "policy.yaml"
    path.write_text(configmap["data"]["policy.yaml"], encoding="utf-8")
    return path


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_rendered_policy_loads_as_the_operator_loads_it(chart: Any, scenario: str, tmp_path: Path) -> None:
    load_policy(_policy_file(chart, SCENARIOS[scenario], tmp_path))


def test_default_values_mean_the_built_in_policy(chart: Any, tmp_path: Path) -> None:
    assert load_policy(_policy_file(chart, {}, tmp_path)) == parse_policy({})


def test_slack_jira_and_runbooks_values_reach_the_policy(chart: Any, tmp_path: Path) -> None:
    policy = load_policy(_policy_file(chart, NOTIFYING, tmp_path))
    assert policy.notifications.slack.channel == "C0123456789"
    assert policy.notifications.slack.on_call == "<!subteam^S0123ABCD>"  # the group id, as Slack pages it
    assert policy.notifications.jira.project == "GPUOPS"
    assert policy.runbook_base_url == "https://git.example.com/sre/repairbot/-/blob/main/runbooks"
    # the user's own policy fields are kept beside the merged ones
    assert policy.budget.max_unavailable.count == 8
    assert policy.drain.timeout.total_seconds() == 45 * 60


def test_chart_values_win_over_the_same_policy_fields_and_keep_the_rest(chart: Any, tmp_path: Path) -> None:
    values = {
        **NOTIFYING,
        "policy": {
            "notifications": {
                "slack": {"channel": "C-OLD"},
                "jira": {"project": "OLD", "issueType": "Incident", "labels": ["gpu"]},
            }
        },
    }
    policy = load_policy(_policy_file(chart, values, tmp_path))
    assert policy.notifications.slack.channel == "C0123456789"
    assert policy.notifications.jira.project == "GPUOPS"
    assert policy.notifications.jira.issue_type == "Incident"
    assert list(policy.notifications.jira.labels) == ["gpu"]


def test_retention_values_reach_the_policy_and_win_over_policy_retention(chart: Any, tmp_path: Path) -> None:
    values = {"retention": {"keepPerNode": 3, "ttl": "60d"}, "policy": {"retention": {"keepPerNode": 9}}}
    retention = load_policy(_policy_file(chart, values, tmp_path)).retention
    assert (retention.keep_per_node, retention.ttl.days) == (3, 60)
    only_policy = load_policy(_policy_file(chart, {"policy": {"retention": {"ttl": "45d"}}}, tmp_path)).retention
    assert (only_policy.keep_per_node, only_policy.ttl.days) == (5, 45)


def test_disabled_slack_leaves_the_channel_out_of_the_policy(chart: Any, tmp_path: Path) -> None:
    values = {"slack": {"enabled": False, "channel": "C0123456789"}}
    assert load_policy(_policy_file(chart, values, tmp_path)).notifications.slack.channel is None


def test_a_policy_typo_in_values_is_caught_before_it_reaches_the_fleet(chart: Any, tmp_path: Path) -> None:
    """The chart passes ``policy`` through verbatim; the operator's loader names the bad field."""
    path = _policy_file(chart, {"policy": {"budget": {"maxUnavailble": 3}, "breaker": {"window": "10"}}}, tmp_path)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "maxUnavailble" in message and "breaker.window" in message


def test_the_alert_mapping_loads_as_the_webhook_loads_it(chart: Any, tmp_path: Path) -> None:
    configmap = render(chart, EXPOSED).get("ConfigMap", name("alert-mapping"))
    path = tmp_path / "alert-mapping.yaml"
    path.write_text(configmap["data"]["alert-mapping.yaml"], encoding="utf-8")
    rules = AlertRules.load(path).rules
    assert rules["NodeGpuFellOffBus"].code == "gpu-lost"
    assert rules["TeamGpuHot"].code == "thermal"
    assert rules["GpuXid"].reads_xid  # the webhook's built-in rule still applies


def _chart_with_mapping(tmp_path: Path, mapping: str | None) -> Any:
    """A copy of the chart whose files/alert-mapping.yaml is ``mapping`` (None: no such file)."""
    copy = tmp_path / "repairbot"
    shutil.copytree(CHART_DIR, copy)
    shipped = copy / "files" / "alert-mapping.yaml"
    shipped.unlink(missing_ok=True)
    if mapping is not None:
        shipped.parent.mkdir(exist_ok=True)
        shipped.write_text(mapping, encoding="utf-8")
    return helm.Chart.load(copy)


def _rendered_rules(chart: Any, values: dict[str, Any], tmp_path: Path) -> AlertRules:
    configmap = render(chart, values).get("ConfigMap", name("alert-mapping"))
    path = tmp_path / "rendered-alert-mapping.yaml"
    path.write_text(configmap["data"]["alert-mapping.yaml"], encoding="utf-8")
    return AlertRules.load(path)


def test_alert_mapping_values_replace_shipped_rules_one_alertname_at_a_time(tmp_path: Path) -> None:
    shipped = "# shipped with the chart\nrules:\n  GpuFellOffBus: gpu-lost\n"
    shipped += "  GpuEccDbe: {code: ecc-dbe, action: gpu-reset}\n"
    with _chart_with_mapping(tmp_path, shipped) as chart:
        override = {"webhook": {"alertMapping": {"GpuEccDbe": {"code": "ecc-dbe", "action": "notify"}}}}
        rules = _rendered_rules(chart, override, tmp_path).rules
    assert rules["GpuFellOffBus"].code == "gpu-lost"  # kept
    assert rules["GpuEccDbe"].action is Action.NOTIFY  # replaced
    assert rules["GpuXid"].reads_xid


def test_without_a_shipped_mapping_the_webhook_still_gets_a_valid_file(tmp_path: Path) -> None:
    with _chart_with_mapping(tmp_path, None) as chart:
        rules = _rendered_rules(chart, {"webhook": {"alertMapping": {"TeamGpuHot": "thermal"}}}, tmp_path).rules
    assert rules["TeamGpuHot"].code == "thermal"
    assert rules["DCGMXidErrors"].reads_xid


def test_a_broken_shipped_mapping_fails_the_render_with_the_file_named(tmp_path: Path) -> None:
    with _chart_with_mapping(tmp_path, "rules: [unclosed\n") as chart, pytest.raises(helm.HelmError) as caught:
        render(chart)
    assert "files/alert-mapping.yaml" in str(caught.value)


def test_the_schema_knows_every_action_and_severity_an_alert_rule_may_name() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    rule = schema["properties"]["webhook"]["properties"]["alertMapping"]["additionalProperties"]["oneOf"][1]
    assert set(rule["properties"]["action"]["enum"]) == {action.value for action in Action}
    assert set(rule["properties"]["severity"]["enum"]) == {severity.value for severity in Severity}
