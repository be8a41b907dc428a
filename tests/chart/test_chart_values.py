"""values.schema.json stops a bad value at install time, naming the field; the README's table matches it."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_support import CHART_DIR, NOTIFYING, name, render
from values_table import chart_table, leaves, readme_table

from repairbot.policy import parse_policy
from repairbot.policy.oncall import on_call_mention

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"operator": {"replicas": "two"}}, r"/operator/replicas.*got string, want integer"),
    ({"operatr": {"replicas": 2}}, r"additional properties 'operatr' not allowed"),
    ({"agent": {"toleratons": []}}, r"/agent.*additional properties 'toleratons' not allowed"),
    ({"operator": {"logLevel": "verbose"}}, r"/operator/logLevel"),
    ({"image": {"pullPolicy": "Sometimes"}}, r"/image/pullPolicy"),
    ({"webhook": {"service": {"type": "ExternalName"}}}, r"/webhook/service/type"),
    ({"webhook": {"port": 70000}}, r"/webhook/port"),
    ({"agent": {"maxUnavailable": "ten"}}, r"/agent/maxUnavailable"),
    ({"agent": {"interval": 0}}, r"/agent/interval"),
    ({"runbookBaseUrl": "runbooks.example.com"}, r"/runbookBaseUrl"),
    ({"slack": {"enabled": True}}, r"/slack/channel"),
    ({"slack": {"channel": "gpu repairs"}}, r"/slack/channel"),
    ({"slack": {"oncall": "@gpu-oncall"}}, r"/slack/oncall"),  # plain text: Slack would page nobody
    ({"slack": {"oncall": "<!everyone>"}}, r"/slack/oncall"),
    ({"slack": {"enabled": True, "channel": "C01"}}, r"/slack/existingSecret"),
    ({"jira": {"enabled": True, "url": "https://j.example.com", "existingSecret": "j"}}, r"/jira/project"),
    (
        {"jira": {"enabled": True, "url": "https://j", "existingSecret": "j", "project": "OPS", "tokenKey": ""}},
        r"/jira/userKey",
    ),
    ({"jira": {"project": "gpu ops"}}, r"/jira/project"),
    ({"webhook": {"ingress": {"enabled": True}}}, r"/webhook/ingress/host"),
    ({"webhook": {"alertMapping": {"GpuHot": {"action": "reboot"}}}}, r"/webhook/alertMapping/GpuHot"),
    ({"webhook": {"alertMapping": {"Hot": {"code": "thermal", "action": "restart"}}}}, r"/webhook/alertMapping/Hot"),
    ({"operator": {"resources": {"limit": {"memory": "1Gi"}}}}, r"additional properties 'limit' not allowed"),
    ({"metrics": {"serviceMonitor": {"interval": "soon"}}}, r"/metrics/serviceMonitor/interval"),
    ({"logFormat": "yaml"}, r"/logFormat"),
    ({"operator": {"priorityClassName": "Critical Ops"}}, r"/operator/priorityClassName"),
    ({"webhook": {"extraEnv": [{"value": "http://proxy:3128"}]}}, r"/webhook/extraEnv/0.*missing property 'name'"),
    ({"agent": {"extraEnv": [{"name": "A", "valu": "x"}]}}, r"/agent/extraEnv/0.*additional properties 'valu'"),
    ({"operator": {"extraVolumeMounts": [{"name": "ca", "mountPath": "etc/ca"}]}}, r"/operator/extraVolumeMounts/0"),
    ({"agent": {"extraVolumes": [{"configMap": {"name": "ca"}}]}}, r"/agent/extraVolumes/0.*missing property"),
    ({"webhook": {"podLabels": {"team": 7}}}, r"/webhook/podLabels/team"),
    ({"operator": {"leaseName": "Repairbot_Leader"}}, r"/operator/leaseName"),
    ({"operator": {"prometheus": {"caFile": "ca.crt"}}}, r"/operator/prometheus/caFile"),
    ({"operator": {"prometheus": {"auth": {"token": "s3cret"}}}}, r"additional properties 'token' not allowed"),
    ({"global": {"imageRegistry": "https://mirror.example.com"}}, r"/global/imageRegistry"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES, ids=[pattern for _, pattern in BAD_VALUES])
def test_a_bad_value_fails_the_install_naming_the_field(chart: Any, values: dict[str, Any], field: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=field):
        render(chart, values)


ON_CALL_FORMS = ["<!subteam^S0123ABCD>", "<!subteam^S0123ABCD|@gpu-oncall>", "<@U0123ABCD>", "<@W0123ABCD>",
                 "<!here>", "<!channel>", "S0123ABCD", "U0123ABCD", "W0123ABCD"]


@pytest.mark.parametrize("oncall", ON_CALL_FORMS)
def test_every_on_call_form_slack_notifies_on_installs_and_the_operator_pages_it(chart: Any, oncall: str) -> None:
    """The schema accepts what the policy accepts, and the rendered policy holds it in the syntax Slack pages on."""
    values = {**NOTIFYING, "slack": {**NOTIFYING["slack"], "oncall": oncall}}
    configmap = render(chart, values).get("ConfigMap", name("policy"))
    policy = parse_policy(yaml.safe_load(configmap["data"]["policy.yaml"]))
    assert policy.notifications.slack.on_call == on_call_mention(oncall)
    assert (policy.notifications.slack.on_call or "").startswith("<")


def test_a_bad_value_is_a_lint_error_too() -> None:
    report = helm.lint(CHART_DIR, {"operator": {"replicas": "two"}})
    assert any("/operator/replicas" in error for error in report["errors"])


def test_the_defaults_pass_the_schema(chart: Any) -> None:
    chart.validate_schema({})


def test_keys_other_templates_rely_on_exist_with_their_defaults(chart: Any) -> None:
    values = chart.merge_values({})
    assert values["grafana"]["dashboards"]["label"] == "grafana_dashboard"
    assert values["grafana"]["dashboards"]["labelValue"] == "1"
    assert values["grafana"]["alerting"]["label"] == "grafana_alert"
    assert values["grafana"]["alerting"]["labelValue"] == "1"
    assert values["metrics"]["prometheusRule"] == {"enabled": False, "labels": {}}
    assert values["agent"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["operator"]["replicas"] == 2
    assert values["policy"] == {}
    for key in ("runbookBaseUrl", "imagePullSecrets", "admissionPolicy", "rbac", "serviceAccount", "bmc"):
        assert key in values


def test_the_readme_values_table_is_generated_from_the_schema() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert readme_table(readme) == chart_table(), "run: python tests/chart/values_table.py"


def test_every_value_in_values_yaml_is_documented_in_the_schema() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    documented = {key for key, _ in leaves(schema)}
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))

    def keys(node: dict[str, Any], prefix: str = "") -> set[str]:
        found: set[str] = set()
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in documented:
                found.add(path)
            elif isinstance(value, dict):
                found |= keys(value, f"{path}.")
            else:
                found.add(path)
        return found

    assert keys(values) == documented
    assert all(node.get("description") for _, node in leaves(schema))


def test_every_value_in_values_yaml_has_a_comment() -> None:
    """Each documented value's line follows a comment; only groups of values (slack:, auth:) may go without."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    documented = {key for key, _ in leaves(schema)}
    lines = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    key_line = re.compile(r"^( *)([A-Za-z][\w./-]*):")
    parents: list[tuple[int, str]] = []
    uncommented = []
    for number, line in enumerate(lines):
        match = key_line.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = ".".join([key for _, key in parents] + [match.group(2)])
        parents.append((indent, match.group(2)))
        inside_a_value = any(path.startswith(f"{leaf}.") for leaf in documented)
        if inside_a_value or path not in documented:
            continue  # a default's own content (resources.requests) or a group of values
        if not lines[number - 1].strip().startswith("#"):
            uncommented.append(f"line {number + 1}: {path}")
    assert uncommented == []
