"""``repairbot status`` as the on-call runs it during a storm: one screen, read-only, with the commands to type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from e2e_support import (
    SandboxFactory,
    all_repairs,
    eventually,
    inject_now,
    merge_policy,
    phase_of,
    repairbot,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.kube.identity import UserInfo

LEAF_0 = ["gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"]
STORM = {"breaker": {"maxPerDomain": 4, "domainWindow": "5m", "settleTime": "3s"}, "budget": {"maxUnavailable": 6}}
VIEWER = "oncall-viewer"
READ = ["get", "list", "watch"]


def read_only_kubeconfig(sandbox: BackgroundSandbox, path: Path) -> str:
    """A kubeconfig for a person who may only read RepairBot's objects, the nodes and RepairBot's namespace."""
    api = sandbox.sandbox.api
    for document in (
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": VIEWER},
         "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": READ},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": READ}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": VIEWER},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": VIEWER},
         "subjects": [{"kind": "User", "name": VIEWER, "apiGroup": "rbac.authorization.k8s.io"}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": VIEWER,
         "namespace": "repairbot"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": READ},
                                              {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                               "verbs": READ}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": VIEWER, "namespace": "repairbot"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": VIEWER},
         "subjects": [{"kind": "User", "name": VIEWER, "apiGroup": "rbac.authorization.k8s.io"}]},
    ):  # fmt: skip
        api.apply_object(document)
    api.write_kubeconfig(path, token=api.issue_token(UserInfo(VIEWER, ("system:authenticated",))), context=VIEWER)
    return str(path)


def status_as(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repairbot.cli", "status", *args, "--kubeconfig", kubeconfig],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def storm_blocked(kube: client.ApiClient) -> list[dict[str, Any]] | None:
    found = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in LEAF_0]
    return found if len(found) == len(LEAF_0) and all(phase_of(r) == "Blocked" for r in found) else None


def test_on_call_sees_a_leaf_storm_a_quarantine_and_the_commands_that_move_them(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = make_sandbox(nodes=8, policy=STORM)
    kube = api_client(sandbox.state["kubeconfig"])
    viewer = read_only_kubeconfig(sandbox, tmp_path / "kubeconfig-viewer")
    inject_now(sandbox, [(name, "xid:79", 1) for name in LEAF_0])
    storm = eventually(lambda: storm_blocked(kube), timeout=30, what="leaf-0's four repairs Blocked")
    quarantined = repairbot(sandbox, "repair", "gpu-node-006", "--reason", "fans loud", "--action", "quarantine")
    assert quarantined.returncode == 0, quarantined.stderr
    eventually(lambda: [r for r in all_repairs(kube) if phase_of(r) == "Quarantined"], what="gpu-node-006 held")
    policy_file = str(sandbox.sandbox.config.policy_path)

    done = status_as(viewer, "--json", "--policy", policy_file)

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    by_node = {r["node"]: r for r in status["repairs"]}
    assert set(by_node) == {*LEAF_0, "gpu-node-006"}
    assert status["byPhase"] == {"Blocked": 4, "Quarantined": 1}
    assert all(by_node[n]["blockedBy"].startswith("Breaker") and by_node[n]["waitingFor"] for n in LEAF_0)
    incident = storm[0]["status"]["incident"]
    open_domains = [b for b in status["breakers"] if b["scope"] == "domain" and b["state"] == "open"]
    assert [b["incident"] for b in open_domains] == [incident]
    assert status["incidents"] == [{"id": incident, "repairs": sorted(r["metadata"]["name"] for r in storm),
                                    "nodes": LEAF_0}]  # fmt: skip
    (pool,) = status["budget"]["pools"]
    assert pool["size"] == 8 and pool["cap"] == 6 and status["budget"]["maxUnavailable"] == 6
    assert pool["cordoned"] == pool["outByRepairbot"] >= 1  # gpu-node-006 at least; the storm cordons too
    commands = {c for wait in status["waitingForHuman"] for c in wait["commands"]}
    assert "repairbot resume --all" in commands and "repairbot release gpu-node-006" in commands
    assert {f"repairbot resume {r['metadata']['name']}" for r in storm} <= commands
    assert status["unreadable"] == []

    screen = status_as(viewer)  # no --policy: the chart's ConfigMap is not there, so counts only
    assert screen.returncode == 0, screen.stderr
    assert "REPAIRS (5 active: 4 Blocked, 1 Quarantined)" in screen.stdout
    assert "BUDGET (no policy read: counts only" in screen.stdout
    assert "$ repairbot release gpu-node-006" in screen.stdout

    denied = [row for row in sandbox.sandbox.api.audit.rows() if row["user"] == VIEWER and not row["allowed"]]
    verbs = {row["verb"] for row in sandbox.sandbox.api.audit.rows() if row["user"] == VIEWER}
    assert denied == [] and verbs <= {"get", "list"}, (denied, verbs)


def test_status_reads_the_budget_from_the_policy_the_chart_stores(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(operator=False)
    client.CoreV1Api(api_client(sandbox.state["kubeconfig"])).create_namespaced_config_map("repairbot", {
        "metadata": {"name": "repairbot-policy", "labels": {"app.kubernetes.io/component": "operator"}},
        "data": {"policy.yaml": yaml.safe_dump(merge_policy({}, {"budget": {"maxUnavailable": "50%"}}))},
    })  # fmt: skip

    done = repairbot(sandbox, "status", "--json")

    assert done.returncode == 0, done.stderr
    budget = json.loads(done.stdout)["budget"]
    assert budget["policySource"] == "configmap repairbot/repairbot-policy" and budget["maxUnavailable"] == "50%"
    assert budget["pools"] == [{"pool": "gpu-nodes", "size": 4, "cordoned": 0, "outByRepairbot": 0, "cap": 2}]
