"""files/alert-mapping.yaml against the alert rules: what fires becomes the right finding on the right node.

The alerts here are the very ones the promtool unit tests expect to fire (labels and
annotations as Prometheus would send them), handed to the webhook's own planning code.
GPU-fault alerts must open repairs with a ladder that acts; RepairBot's own alerts must
never open a repair at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from rules_support import (
    ALERT_MAPPING,
    GPU_RULES,
    GPU_TESTS,
    GRAFANA_RULES,
    SELF_RULES,
    SELF_TESTS,
    ExpectedAlert,
    alerting_rules,
    expected_alerts,
    load_yaml,
)

from repairbot.catalog.xid import default_catalog
from repairbot.model import Action, Severity
from repairbot.policy import DEFAULT_POLICY_YAML, parse_policy
from repairbot.webhook.handling import REASON_NO_ACTION, plan
from repairbot.webhook.mapping import (
    DEFAULT_NODE_LABELS,
    INSTANCE_LABEL,
    REASON_NO_NODE_LABEL,
    UNMAPPED_PREFIX,
    XID_LABELS,
    AlertRules,
    NodeIndex,
    instance_host,
)
from repairbot.webhook.payloads import SenderKind, parse_notification

RULES = AlertRules.load(ALERT_MAPPING)
POLICY = parse_policy(yaml.safe_load(DEFAULT_POLICY_YAML))  # the policy a fresh install runs
DEFAULT_LADDER = POLICY.ladders["default"]
XID_SEVERITY = re.compile(r'\{\{ if eq \S+((?: "\d+")+) \}\}critical')

# The cluster the promtool tests' series come from: node names and the InternalIPs the
# exporters' `instance` labels carry. 10.2.0.9 is the operator pod's address: were a self alert
# to keep `instance`, it would name a node.
NODES = {f"gpu-node-{n}": f"10.1.0.{n}" for n in range(17, 21)} | {"infra-0": "10.2.0.9"}
INDEX = NodeIndex.from_nodes(
    [
        {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
        for name, ip in NODES.items()
    ]
)


def notification(alerts: list[ExpectedAlert]) -> Any:
    """An Alertmanager webhook body (version 4) carrying ``alerts`` as firing."""
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "repairbot",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alert.alertname, **alert.labels},
                "annotations": alert.annotations,
                "startsAt": datetime(2026, 3, 1, 10, 15, tzinfo=UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
            }
            for alert in alerts
        ],
    }
    return parse_notification(body, SenderKind.ALERTMANAGER)


def expected_node(labels: dict[str, str]) -> str:
    """The node the alert's exporter labels name: a node label first, else the instance's address."""
    for label in DEFAULT_NODE_LABELS:
        if labels.get(label) in NODES:
            return labels[label]
    address = instance_host(labels[INSTANCE_LABEL])
    return next(name for name, ip in NODES.items() if ip == address)


GPU_FIRINGS = list(expected_alerts(GPU_TESTS))
SELF_FIRINGS = list(expected_alerts(SELF_TESTS))


def test_every_gpu_fault_alert_is_mapped() -> None:
    assert set(alerting_rules(GPU_RULES)) <= set(RULES.rules)


@pytest.mark.parametrize("alertname", sorted(alerting_rules(GPU_RULES)))
def test_gpu_fault_alerts_map_to_a_class_whose_ladder_acts(alertname: str) -> None:
    rule = RULES.rules[alertname]
    if rule.reads_xid:
        # The Xid comes from a label of the alert: the rule must keep one the webhook reads.
        labels_used = alerting_rules(GPU_RULES)[alertname]["labels"]["repairbot_class"]
        assert any(f"$labels.{label}" in labels_used for label in XID_LABELS)
        return
    ladder = POLICY.ladder_for(rule.code)
    if rule.code == "ib-port-down":
        assert [rung.action for rung in ladder] == [Action.NOTIFY], "a down IB port only notifies by default"
    else:
        assert ladder != DEFAULT_LADDER, f"{alertname} → {rule.code} falls through to the notify-only default"
        assert ladder[0].action.is_destructive
    # What the finding announces (Slack, Jira) is what the ladder does first.
    assert rule.action is ladder[0].action


def test_xid_alerts_open_the_catalog_class_of_each_code() -> None:
    for code in (79, 48, 13):
        alert = notification([ExpectedAlert("t", "GpuXid", "0m", {"xid": str(code), "Hostname": "gpu-node-17"}, {})])
        finding = RULES.finding(alert.alerts[0], kind=SenderKind.ALERTMANAGER)
        assert finding.code == f"xid-{code}"
        assert finding.xid == code


@pytest.mark.parametrize(
    "firing", GPU_FIRINGS, ids=lambda a: f"{a.alertname}@{a.eval_time}:{a.labels.get('repairbot_class')}"
)
def test_what_promtool_fires_becomes_a_finding_on_the_right_node(firing: ExpectedAlert) -> None:
    (planned,) = plan(notification([firing]), INDEX, RULES)
    xid = next((firing.labels[label] for label in XID_LABELS if label in firing.labels), None)
    if xid is not None and default_catalog().lookup(int(xid)).action is Action.NONE:
        assert planned.reason == REASON_NO_ACTION, "an application Xid must not open a repair"
        return
    assert planned.node == expected_node(firing.labels), planned.reason
    assert planned.finding is not None
    assert planned.finding.code == firing.labels["repairbot_class"]
    assert planned.finding.message == firing.annotations["summary"]
    assert planned.finding.evidence["runbook_url"] == firing.annotations["runbook_url"]
    if "gpu" in firing.labels:
        assert planned.finding.gpu.index == int(firing.labels["gpu"])
    if "UUID" in firing.labels:
        assert planned.finding.gpu.uuid == firing.labels["UUID"]


@pytest.mark.parametrize("alertname", sorted(alerting_rules(SELF_RULES)))
def test_repairbot_self_alerts_are_unmapped(alertname: str) -> None:
    assert alertname not in RULES.rules
    alert = notification([ExpectedAlert("t", alertname, "0m", {"repair_node": "gpu-node-17"}, {})]).alerts[0]
    finding = RULES.finding(alert, kind=SenderKind.ALERTMANAGER)
    assert finding.code.startswith(UNMAPPED_PREFIX)
    assert finding.action is Action.NOTIFY


@pytest.mark.parametrize("firing", SELF_FIRINGS, ids=lambda a: f"{a.alertname}@{a.eval_time}")
def test_repairbot_self_alerts_never_open_a_repair(firing: ExpectedAlert) -> None:
    """Routed to the webhook by mistake, a self alert names no node: ignored, nothing is drained."""
    assert "repairbot_class" not in firing.labels
    (planned,) = plan(notification([firing]), INDEX, RULES)
    assert (planned.node, planned.finding, planned.reason) == (None, None, REASON_NO_NODE_LABEL)


def test_grafana_managed_alerts_are_mapped_like_the_prometheus_ones() -> None:
    titles = {rule["title"] for group in load_yaml(GRAFANA_RULES)["groups"] for rule in group["rules"]}
    assert titles == set(alerting_rules(GPU_RULES))
    assert titles <= set(RULES.rules)


def _critical_xids_in(template: str) -> set[int]:
    match = XID_SEVERITY.search(template)
    assert match, f"no Xid severity list in {template!r}"
    return {int(code) for code in match.group(1).replace('"', "").split()}


def test_xid_alert_severity_follows_the_xid_catalog() -> None:
    """Pager routing by `severity`: critical exactly for the codes the catalog rates critical or fatal."""
    catalog = default_catalog()
    entries = (catalog.lookup(code) for code in range(1000))
    wanted = {e.code for e in entries if e.known and e.severity in (Severity.CRITICAL, Severity.FATAL)}
    templates = [alerting_rules(GPU_RULES)[name]["labels"]["severity"] for name in ("GpuXid", "DCGMXidErrors")]
    grafana = {rule["title"]: rule for group in load_yaml(GRAFANA_RULES)["groups"] for rule in group["rules"]}
    templates += [grafana[name]["labels"]["severity"] for name in ("GpuXid", "DCGMXidErrors")]
    for template in templates:
        assert _critical_xids_in(template) == wanted
