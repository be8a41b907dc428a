"""The operator heals simulated nodes end to end: real kopf, real kubernetes client, emulated API server.

Each test injects faults into simulated GPUs, lets the agent report them and
the operator work, and checks what an SRE would check: the node's marks, the
GPURepair's phase and history, and what happened to the machine.
"""

from __future__ import annotations

import time

from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    all_repairs,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject,
    inject_now,
    node,
    phase_of,
    repairs_of,
    simulated,
    steps,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot_sim import fleet
from repairbot_sim.host import ActionTimes


def out_of_service(kube: client.ApiClient, names: list[str]) -> int:
    return sum(1 for name in names if node(kube, name)["spec"].get("unschedulable"))


def test_xid79_is_repaired_by_reboot_and_the_node_returns(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    member = simulated(sandbox, "gpu-node-002")
    boots = member.node.boot_count

    inject(sandbox, "gpu-node-002", "xid:79", gpu=3)
    repair = finished_repair(kube, "gpu-node-002")

    status = repair["status"]
    assert status["phase"] == "Succeeded", status
    assert status["reason"] == "xid-79" and status["action"] == "reboot" and status["attempt"] == 1
    assert [s for s, _ in steps(repair)] == [
        "cordon", "cordon", "start-drain", "request", "validate", "return-to-service", "return-to-service",
    ]  # fmt: skip
    assert status["acknowledgedAt"] >= status["detectedAt"] and status["resolvedAt"] >= status["acknowledgedAt"]
    assert status["agent"]["result"] == "succeeded"
    assert member.node.boot_count == boots + 1  # exactly one reboot
    back = node(kube, "gpu-node-002")
    assert not back["spec"].get("unschedulable")
    assert not any(t["key"] == "repairbot.io/unhealthy" for t in back["spec"].get("taints") or [])
    assert "repairbot.io/state" not in back["metadata"]["labels"]
    pods = client.CoreV1Api(kube).list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-node-002").items
    assert [p.metadata.name for p in pods] == ["repairbot-agent-002"]  # drained but for the DaemonSet pod


def test_drain_waits_for_the_pdb_then_completes(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    policy = client.PolicyV1Api(kube)
    # The training team allows no disruption at all for now.
    policy.patch_namespaced_pod_disruption_budget("llama", "train", {"spec": {"maxUnavailable": 0}})

    inject(sandbox, "gpu-node-001", "xid:79", gpu=0)
    eventually(lambda: any(phase_of(r) == "Draining" for r in repairs_of(kube, "gpu-node-001")), what="draining")
    time.sleep(2)
    (repair,) = repairs_of(kube, "gpu-node-001")
    assert phase_of(repair) == "Draining"  # held by the budget, nothing rebooted
    assert simulated(sandbox, "gpu-node-001").node.boot_count == 1

    policy.patch_namespaced_pod_disruption_budget("llama", "train", {"spec": {"maxUnavailable": 1}})
    assert phase_of(finished_repair(kube, "gpu-node-001")) == "Succeeded"


def test_a_bare_debug_shell_on_the_node_is_named_in_the_history_and_in_slack(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    sandbox.sandbox.api.create_object(fleet.bare_pod("debug-shell", "train", "gpu-node-002"))

    inject(sandbox, "gpu-node-002", "xid:79", gpu=3)
    repair = finished_repair(kube, "gpu-node-002")

    assert phase_of(repair) == "Succeeded", repair["status"]
    noted = [e for e in repair["status"]["history"] if (e["step"], e["outcome"]) == ("drain", "unmanaged-pods")]
    assert [e["message"] for e in noted] == [
        "1 pod not managed by a controller: they will not come back after eviction: train/debug-shell"
    ]
    order = [s for s, _ in steps(repair)]
    assert order.index("start-drain") < order.index("drain") < order.index("request")
    pods = client.CoreV1Api(kube).list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-node-002").items
    assert [p.metadata.name for p in pods] == ["repairbot-agent-002"]  # evicted like the owned pods
    status = eventually(lambda: delivered(kube, "gpu-node-002", "slack"), timeout=30, what="slack caught up")
    slack, _ = chats(sandbox)
    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert any("train/debug-shell" in reply and "not managed by a controller" in reply for reply in replies)


def test_reset_refused_climbs_to_reboot_then_passes(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    member = simulated(sandbox, "gpu-node-003")
    member.node.backend.device(1).pids.append(4242)  # a process the drain cannot see holds the GPU

    inject(sandbox, "gpu-node-003", "ecc-dbe", gpu=1)
    repair = finished_repair(kube, "gpu-node-003")

    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["status"]["action"] == "reboot" and repair["status"]["attempt"] == 2
    history = repair["status"]["history"]
    refused = next(e for e in history if e["step"] == "gpu-reset")
    assert refused["outcome"] == "failed" and "4242" in refused["message"]


def test_broken_hardware_climbs_the_ladder_to_quarantine(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    simulated(sandbox, "gpu-node-000").node.inject("row-remap-failure", 2, persistent=True)

    repair = finished_repair(kube, "gpu-node-000", timeout=40)

    assert phase_of(repair) == "Quarantined", repair["status"]
    assert repair["status"]["attempt"] >= 2  # gpu-reset, then reboot, then out of rungs
    quarantined = node(kube, "gpu-node-000")
    assert quarantined["spec"]["unschedulable"] is True
    assert quarantined["metadata"]["labels"]["repairbot.io/state"] == "quarantined"
    assert any(t["key"] == "repairbot.io/unhealthy" for t in quarantined["spec"]["taints"])
    assert any(f["code"] in ("row-remap-failure", "xid-64") for f in repair["spec"]["findings"])  # evidence kept


def test_a_node_cordoned_by_a_human_stays_cordoned(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    client.CoreV1Api(kube).patch_node("gpu-node-001", {"spec": {"unschedulable": True}})

    inject(sandbox, "gpu-node-001", "xid:79", gpu=5)
    repair = finished_repair(kube, "gpu-node-001")

    assert phase_of(repair) == "Succeeded"
    assert repair["status"]["nodeWasCordoned"] is True
    assert "left cordoned" in repair["status"]["message"]
    after = node(kube, "gpu-node-001")
    assert after["spec"]["unschedulable"] is True
    assert not any(t["key"] == "repairbot.io/unhealthy" for t in after["spec"].get("taints") or [])


def test_a_human_uncordon_mid_repair_cancels_and_leaves_the_node_alone(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(action_times=ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=4.0))
    kube = api_client(sandbox.state["kubeconfig"])

    inject(sandbox, "gpu-node-002", "xid:79", gpu=0)
    eventually(lambda: any(phase_of(r) == "Remediating" for r in repairs_of(kube, "gpu-node-002")), what="remediating")
    client.CoreV1Api(kube).patch_node("gpu-node-002", {"spec": {"unschedulable": False}})

    repair = finished_repair(kube, "gpu-node-002")
    assert phase_of(repair) == "Cancelled", repair["status"]
    assert any(c["reason"] == "HandedOver" for c in repair["status"]["conditions"])
    after = node(kube, "gpu-node-002")
    assert not after["spec"].get("unschedulable")
    assert "repairbot.io/state" not in after["metadata"]["labels"]


def test_a_leaf_switch_storm_cordons_only_and_opens_one_incident(make_sandbox: SandboxFactory) -> None:
    # A leaf switch fails: its nodes report within seconds. The settle time lets the breaker see the storm
    # before the first reboot, so not even the first node is rebooted.
    sandbox = make_sandbox(
        nodes=8,
        policy={
            "breaker": {"maxPerDomain": 2, "domainWindow": "5m", "settleTime": "3s"},
            "notifications": {
                "slack": {"channel": "#gpu-repairs", "onCall": "<!subteam^S0GPUONCALL>"},
                "jira": {"project": "OPS"},
            },
        },
    )
    kube = api_client(sandbox.state["kubeconfig"])
    leaf = ["gpu-node-004", "gpu-node-005", "gpu-node-006", "gpu-node-007"]  # all of leaf-1
    boots = {name: simulated(sandbox, name).node.boot_count for name in leaf}

    six = [(name, "ib-port-down" if i % 2 else "xid:79", i % 8) for i, name in enumerate(leaf + leaf[:2])]
    inject_now(sandbox, six)  # six faults in one leaf within milliseconds

    def all_blocked() -> list[dict] | None:
        repairs = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        return repairs if len(repairs) == 4 and all(phase_of(r) == "Blocked" for r in repairs) else None

    eventually(all_blocked, timeout=20, what="the leaf's repairs blocked")
    time.sleep(3)  # long enough for a reboot, had one been allowed
    repairs = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
    incidents = {r["status"].get("incident") for r in repairs if phase_of(r) == "Blocked"}
    assert len(incidents) == 1 and None not in incidents
    assert {name: simulated(sandbox, name).node.boot_count for name in leaf} == boots  # zero reboots
    for name in leaf:
        assert node(kube, name)["spec"].get("unschedulable") is True  # cordon only
    breaker = client.CoreV1Api(kube).read_namespaced_config_map("repairbot-breaker", "repairbot")
    assert breaker.data["state"] == "open"

    # One Slack message for the storm, not one per node; every repair threads under it.
    def threaded() -> list[dict] | None:
        found = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        return found if all((r["status"].get("slack") or {}).get("ts") for r in found) else None

    threads = {r["status"]["slack"]["ts"] for r in eventually(threaded, timeout=20, what="threads recorded")}
    slack = sandbox.sandbox.slack
    assert slack is not None
    parents = [m for m in slack.messages if m.thread_ts is None]
    assert len(threads) == 1 and len(parents) == 1
    assert "storm" in (parents[0].text or "").lower() and all(name in (parents[0].text or "") for name in leaf)

    # And one Jira ticket for the incident, each node's steps commented on it under the node's name.
    def ticketed() -> list[dict] | None:
        found = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        return found if all((r["status"].get("jira") or {}).get("key") for r in found) else None

    keys = {r["status"]["jira"]["key"] for r in eventually(ticketed, timeout=20, what="tickets recorded")}
    jira = sandbox.sandbox.jira
    assert jira is not None and len(keys) == 1 and len(jira.issues) == 1
    [issue] = jira.issues.values()
    assert issue.fields["summary"].startswith("Fault storm") and str(incidents.pop()) in issue.fields["summary"]
    eventually(lambda: all(any(c.startswith(f"{name}: ") or f" {name}: " in c for c in jira.comments_of(issue.key))
                           for name in leaf), timeout=20, what="every node's steps on the incident ticket")  # fmt: skip


def test_the_budget_keeps_at_most_two_nodes_out_and_the_rest_follow(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(
        nodes=5,
        policy={"budget": {"maxUnavailable": 2}},
        action_times=ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=1.5),
    )
    kube = api_client(sandbox.state["kubeconfig"])
    names = [f"gpu-node-00{i}" for i in range(5)]
    inject_now(sandbox, [(name, "xid:79", 1) for name in names])

    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        peak = max(peak, out_of_service(kube, names))
        if all(phase_of(r) == "Succeeded" for r in all_repairs(kube)) and len(all_repairs(kube)) == 5:
            break
        time.sleep(0.1)
    assert peak == 2
    assert sorted(phase_of(r) for r in all_repairs(kube)) == ["Succeeded"] * 5
    queued = [r for r in all_repairs(kube) if any(s == "queue" for s, _ in steps(r))]
    assert len(queued) >= 3  # visibly queued, not silently waiting


def test_a_gpu_a_reboot_cannot_revive_is_power_cycled_through_the_bmc(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    simulated(sandbox, "gpu-node-003").node.inject("fall-off-bus", 6, persistent=True)  # stuck until power is cut

    repair = finished_repair(kube, "gpu-node-003", timeout=40)

    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["status"]["action"] == "power-cycle" and repair["status"]["attempt"] == 2
    failed_reboot = next(e for e in repair["status"]["history"] if e["step"] == "reboot")
    assert failed_reboot["outcome"] == "failed" and "validation failed" in failed_reboot["message"]
    bmc = sandbox.sandbox.bmc
    assert bmc is not None and bmc.resets_for("gpu-node-003") == ["PowerCycle"]
    assert not node(kube, "gpu-node-003")["spec"].get("unschedulable")
