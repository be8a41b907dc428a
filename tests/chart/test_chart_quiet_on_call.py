"""The chart's values for keeping on-call quiet: Alertmanager silences and Grafana annotations.

Rendered by Helm's own engine, the policy ConfigMap loaded with the operator's loader, every manifest
validated against Kubernetes' schemas, and the token read from the named Secret, never from values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart_support import name, render

from repairbot.policy import load_policy

QUIET: dict[str, Any] = {
    "alertmanager": {
        "url": "http://alertmanager-operated.monitoring:9093",
        "matchers": {"instance": "$node:9100"},
        "alertnames": ["KubeNodeNotReady", "TargetDown"],
        "duration": "45m",
    },
    "grafana": {
        "annotations": {
            "enabled": True,
            "url": "http://grafana.monitoring",
            "existingSecret": "grafana-sa",
            "tokenKey": "sa-token",
            "dashboardUid": "gpu-fleet",
        }
    },
}


def operator_env(chart: Any, values: dict[str, Any]) -> dict[str, Any]:
    deployment = render(chart, values).get("Deployment", name("operator"))
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or ()}


def test_alertmanager_and_grafana_values_reach_the_policy_and_the_token_comes_from_its_secret(
    chart: Any, tmp_path: Path
) -> None:
    out = render(chart, QUIET)
    path = tmp_path / "policy.yaml"
    path.write_text(out.get("ConfigMap", name("policy"))["data"]["policy.yaml"], encoding="utf-8")
    policy = load_policy(path)
    assert policy.alertmanager.url == "http://alertmanager-operated.monitoring:9093"
    assert dict(policy.alertmanager.matchers) == {"instance": "$node:9100"}
    assert policy.alertmanager.alertnames == ("KubeNodeNotReady", "TargetDown")
    assert policy.grafana.url == "http://grafana.monitoring" and policy.grafana.dashboard_uid == "gpu-fleet"
    env = operator_env(chart, QUIET)
    assert env["REPAIRBOT_GRAFANA_TOKEN"] == {"secretKeyRef": {"name": "grafana-sa", "key": "sa-token"}}
    for obj in out.objects:
        if obj["kind"] in ("Deployment", "ConfigMap"):
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_by_default_no_silences_no_annotations_and_no_grafana_secret(chart: Any, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(render(chart).get("ConfigMap", name("policy"))["data"]["policy.yaml"], encoding="utf-8")
    policy = load_policy(path)
    assert not policy.alertmanager.enabled and not policy.grafana.enabled
    assert "REPAIRBOT_GRAFANA_TOKEN" not in operator_env(chart, {})
    # Only the URL set: the policy's matchers, names and duration.
    path.write_text(render(chart, {"alertmanager": {"url": "http://am:9093"}}).get(
        "ConfigMap", name("policy"))["data"]["policy.yaml"], encoding="utf-8")  # fmt: skip
    assert load_policy(path).alertmanager.duration.total_seconds() == 30 * 60


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"alertmanager": {"url": "alertmanager:9093"}}, r"/alertmanager/url"),
        ({"alertmanager": {"duration": "soon"}}, r"/alertmanager/duration"),
        ({"alertmanager": {"matchers": {"bad-label": "$node"}}}, r"/alertmanager/matchers"),
        ({"grafana": {"annotations": {"enabled": True}}}, r"/grafana/annotations/(url|existingSecret)"),
        ({"grafana": {"annotations": {"dashboardUid": "has spaces"}}}, r"/grafana/annotations/dashboardUid"),
    ],
)
def test_a_bad_quiet_on_call_value_fails_the_install_naming_the_field(
    chart: Any, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=field):
        render(chart, values)
