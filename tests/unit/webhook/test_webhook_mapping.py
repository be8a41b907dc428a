"""Alert → node (label order, instance host, addresses) and alert → finding (rules, safe default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from repairbot.model import Action, GpuRef, Source
from repairbot.webhook.handling import plan
from repairbot.webhook.mapping import (
    AlertRules,
    MappingError,
    NodeIndex,
    instance_host,
    map_node,
)
from repairbot.webhook.payloads import Alert, AlertStatus, SenderKind, parse_notification


def node(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


INDEX = NodeIndex.from_nodes([node("gpu-1", "10.0.0.1"), node("gpu-2", "10.0.0.2"), node("gpu-3", "fd00::3")])


def alert(labels: dict[str, str], status: AlertStatus = AlertStatus.FIRING, **extra: Any) -> Alert:
    return Alert(status=status, labels=labels, annotations=extra.pop("annotations", {}), fingerprint="fp", **extra)


@pytest.mark.parametrize(
    ("labels", "node_name", "via"),
    [
        ({"node": "gpu-1", "Hostname": "gpu-2"}, "gpu-1", "node"),
        ({"kubernetes_node": "gpu-2", "hostname": "gpu-1"}, "gpu-2", "kubernetes_node"),
        ({"nodename": "gpu-2", "Hostname": "gpu-1"}, "gpu-2", "nodename"),
        ({"Hostname": "gpu-1", "hostname": "gpu-2"}, "gpu-1", "Hostname"),
        ({"hostname": "gpu-2.cluster.local"}, "gpu-2", "hostname"),
        ({"node": "elsewhere", "Hostname": "gpu-2"}, "gpu-2", "Hostname"),  # first label naming a known node
        ({"instance": "10.0.0.2:9400"}, "gpu-2", "instance"),
        ({"instance": "gpu-1:9100"}, "gpu-1", "instance"),
        ({"instance": "[fd00::3]:9100"}, "gpu-3", "instance"),
        ({"instance": "http://10.0.0.1:9400/metrics"}, "gpu-1", "instance"),
        ({"node": "", "instance": "10.0.0.1"}, "gpu-1", "instance"),
    ],
)
def test_node_mapping_order(labels: dict[str, str], node_name: str, via: str) -> None:
    match = map_node(alert(labels), INDEX)
    assert (match.node, match.label) == (node_name, via)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"alertname": "X"}, "no-node-label"),
        ({"node": "  "}, "no-node-label"),
        ({"node": "gpu-99"}, "unknown-node"),
        ({"instance": "10.9.9.9:9100"}, "unknown-node"),
        ({"instance": "10.0.0"}, "unknown-node"),
    ],
)
def test_ignored_reasons(labels: dict[str, str], reason: str) -> None:
    assert map_node(alert(labels), INDEX).reason == reason


def test_configured_label_order() -> None:
    labels = {"node": "gpu-1", "host": "gpu-2"}
    assert map_node(alert(labels), INDEX, ("host", "node")).node == "gpu-2"


@pytest.mark.parametrize(
    ("text", "host"),
    [("a:1", "a"), ("a", "a"), ("[::1]:9", "::1"), ("::1", "::1"), ("https://h:1/x", "h"), ("h/x", "h")],
)
def test_instance_host(text: str, host: str) -> None:
    assert instance_host(text) == host


def test_xid_from_label_uses_the_catalog_and_dcgm_labels() -> None:
    rules = AlertRules.default()
    labels = {"alertname": "GpuXid", "Hostname": "gpu-1", "gpu": "3", "UUID": "GPU-abc", "xid": "79",
              "pci_bus_id": "00000000:3B:00.0"}  # fmt: skip
    finding = rules.finding(
        alert(labels, annotations={"summary": "Xid 79", "runbook_url": "https://rb/79"}, generator_url="https://g"),
        kind=SenderKind.GRAFANA,
        receiver="gpu-remediator",
    )
    assert (finding.code, finding.xid, finding.action, finding.source) == ("xid-79", 79, Action.REBOOT, Source.GRAFANA)
    assert finding.gpu == GpuRef(index=3, uuid="GPU-abc", pci="0000:3b:00.0")
    assert finding.message == "Xid 79"
    assert finding.evidence["alertname"] == "GpuXid"
    assert finding.evidence["label.xid"] == "79"
    assert finding.evidence["label.UUID"] == "GPU-abc"
    assert finding.evidence["generatorURL"] == "https://g"
    assert finding.evidence["runbook_url"] == "https://rb/79"
    assert finding.evidence["fingerprint"] == "fp"
    assert finding.evidence["receiver"] == "gpu-remediator"


def test_err_code_label_and_a_garbage_xid() -> None:
    rules = AlertRules.default()
    found = rules.finding(alert({"alertname": "DCGMXidErrors", "err_code": "48"}), kind=SenderKind.ALERTMANAGER)
    assert (found.code, found.source) == ("xid-48", Source.ALERTMANAGER)
    garbage = rules.finding(alert({"alertname": "GpuXid", "xid": "seventy-nine"}), kind=SenderKind.GRAFANA)
    assert (garbage.code, garbage.action) == ("alert-gpuxid", Action.NOTIFY)


def test_unmapped_alert_is_notify_only() -> None:
    found = AlertRules.default().finding(alert({"alertname": "Gpu Too Hot!"}), kind=SenderKind.GRAFANA)
    assert (found.code, found.action) == ("alert-gpu-too-hot", Action.NOTIFY)
    assert found.message == "grafana alert Gpu Too Hot! firing"


def test_mapping_file(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(
        "rules:\n  GpuDoubleBitEcc: {code: ecc-dbe, action: gpu-reset, severity: critical}\n  Lost: gpu-lost\n"
    )
    rules = AlertRules.load(path)
    dbe = rules.finding(alert({"alertname": "GpuDoubleBitEcc"}), kind=SenderKind.GRAFANA)
    assert (dbe.code, dbe.action, dbe.severity.value) == ("ecc-dbe", Action.GPU_RESET, "critical")
    assert rules.finding(alert({"alertname": "Lost"}), kind=SenderKind.GRAFANA).code == "gpu-lost"
    assert "GpuXid" in rules.rules  # defaults kept


@pytest.mark.parametrize(
    ("text", "reason"),
    [("rules:\n  A: {action: reboot}\n", "alert rule 'A'"), ("rules:\n  A: {code: x, action: explode}\n", "'A'"),
     ("rules: [1]\n", "expected a mapping"), ("rules: {A: [\n", "map.yaml")],
)  # fmt: skip
def test_bad_mapping_files(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match=reason.replace("[", r"\[")):
        AlertRules.load(path)


def test_plan_mixes_firing_resolved_and_unknown() -> None:
    body = {
        "receiver": "r",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "GpuXid", "node": "gpu-1", "xid": "79"}, "fingerprint": "a"},
            {"status": "resolved", "labels": {"alertname": "GpuXid", "node": "gpu-2"}, "fingerprint": "b"},
            {"status": "firing", "labels": {"alertname": "GpuXid", "node": "gpu-9"}, "fingerprint": "c"},
            {"status": "firing", "labels": {"alertname": "GpuXid"}, "fingerprint": "d"},
        ],
    }
    planned = plan(parse_notification(body, SenderKind.GRAFANA), INDEX, AlertRules.default())
    assert [(p.node, p.reason) for p in planned] == [
        ("gpu-1", ""), ("gpu-2", "resolved"), (None, "unknown-node"), (None, "no-node-label"),
    ]  # fmt: skip
    assert planned[1].finding is None  # a resolved alert is mapped to its node only to be noted there
    assert planned[0].finding is not None and planned[0].finding.code == "xid-79"


def test_an_application_xid_alert_opens_no_repair() -> None:
    body = {"alerts": [{"status": "firing", "labels": {"alertname": "GpuXid", "node": "gpu-1", "xid": "13"},
                        "fingerprint": "app"}]}  # fmt: skip
    [planned] = plan(parse_notification(body, SenderKind.ALERTMANAGER), INDEX, AlertRules.default())
    assert (planned.node, planned.finding, planned.reason) == (None, None, "no-action")
