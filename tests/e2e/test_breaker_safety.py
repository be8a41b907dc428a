"""The storm breaker and the budget under what an SRE's week brings, end to end (real kopf, client, API server).

A storm on one leaf must not stop repairs on the others; a canary that is
cancelled or deleted must not hold the breaker half-open; ``resume --all``
must not put more nodes out of service than the budget; rehearsals and
opted-out nodes are no storm.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    all_repairs,
    eventually,
    finished_repair,
    inject_now,
    merge_policy,
    node,
    phase_of,
    repairbot,
    repairs_of,
    simulated,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import GROUP, LABEL_DISABLED, PLURAL, VERSION
from repairbot_sim.host import ActionTimes

LEAF_0 = ["gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"]
LEAF_1 = ["gpu-node-004", "gpu-node-005", "gpu-node-006", "gpu-node-007"]


def blocked_of(kube: client.ApiClient, nodes: list[str]) -> list[dict[str, Any]] | None:
    found = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in nodes]
    return found if len(found) == len(nodes) and all(phase_of(r) == "Blocked" for r in found) else None


def test_a_storm_on_one_leaf_leaves_an_xid79_on_another_leaf_to_be_repaired(make_sandbox: SandboxFactory) -> None:
    storm_policy = {"breaker": {"maxPerDomain": 4, "domainWindow": "5m", "settleTime": "3s"},
                    "budget": {"maxUnavailable": 6}}  # room for the storm's cordons and the bystander
    sandbox = make_sandbox(nodes=8, policy=merge_policy(NOTIFYING, storm_policy))
    kube = api_client(sandbox.state["kubeconfig"])
    bystander = "gpu-node-005"
    boots = simulated(sandbox, bystander).node.boot_count

    inject_now(sandbox, [*[(name, "xid:79", 1) for name in LEAF_0], (bystander, "xid:79", 2)])

    storm = eventually(lambda: blocked_of(kube, LEAF_0), timeout=30, what="leaf-0's four repairs Blocked")
    incidents = {r["status"].get("incident") for r in storm}
    assert len(incidents) == 1 and None not in incidents

    try:
        repair = finished_repair(kube, bystander, timeout=60)
    except AssertionError:
        raise AssertionError(repairs_of(kube, bystander)) from None
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert not repair["status"].get("incident")  # not pulled into leaf-0's storm
    assert simulated(sandbox, bystander).node.boot_count == boots + 1

    def notified() -> dict[str, Any] | None:
        status = repairs_of(kube, bystander)[0]["status"]
        return status if (status.get("slack") or {}).get("ts") and (status.get("jira") or {}).get("key") else None

    own = eventually(notified, timeout=30, what="the bystander's own thread and ticket")
    storm_now = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in LEAF_0]
    storm_threads = {(r["status"].get("slack") or {}).get("ts") for r in storm_now} - {None}
    storm_tickets = {(r["status"].get("jira") or {}).get("key") for r in storm_now} - {None}
    assert own["slack"]["ts"] not in storm_threads and own["jira"]["key"] not in storm_tickets
    assert all(phase_of(r) == "Blocked" for r in storm_now)  # the storm still waits for a human


def test_a_deleted_canary_does_not_hold_the_breaker_half_open(make_sandbox: SandboxFactory) -> None:
    slow = ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=4.0)
    sandbox = make_sandbox(
        nodes=4, action_times=slow,
        policy={"breaker": {"maxPerDomain": 2, "settleTime": "2s", "halfOpenCanaries": 1}},
    )  # fmt: skip
    kube = api_client(sandbox.state["kubeconfig"])
    custom = client.CustomObjectsApi(kube)
    inject_now(sandbox, [(name, "xid:79", 0) for name in LEAF_0])
    storm = eventually(lambda: blocked_of(kube, LEAF_0), timeout=30, what="storm blocked")
    first, second = sorted(r["metadata"]["name"] for r in storm)[:2]

    assert repairbot(sandbox, "resume", first).returncode == 0
    eventually(lambda: phase_of(custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, first)) != "Blocked",
               timeout=30, what="the canary going")  # fmt: skip
    custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, first)  # a human gives up on the canary

    done = repairbot(sandbox, "resume", second)
    assert done.returncode == 0, done.stderr
    second_node = second.rsplit("-", 1)[0]
    repair = finished_repair(kube, second_node, timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]  # the next canary went: the slot was freed
    others = [n for n in LEAF_0 if n not in (second_node, first.rsplit("-", 1)[0])]
    for name in others:  # and once it passed, the breaker closed and the rest followed
        assert phase_of(finished_repair(kube, name, timeout=60)) == "Succeeded"
    breaker = client.CoreV1Api(kube).read_namespaced_config_map("repairbot-breaker", "repairbot")
    assert breaker.data["state"] == "closed"


def test_resume_all_after_two_storms_never_puts_more_nodes_out_than_the_budget(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(
        nodes=8, action_times=ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=1.5),
        policy={"budget": {"maxUnavailable": 3},
                "breaker": {"maxPerDomain": 4, "settleTime": "2s", "halfOpenCanaries": 1}},
    )  # fmt: skip
    kube = api_client(sandbox.state["kubeconfig"])
    core = client.CoreV1Api(kube)
    inject_now(sandbox, [(name, "xid:79", 0) for name in LEAF_0 + LEAF_1])
    eventually(lambda: blocked_of(kube, LEAF_0 + LEAF_1), timeout=30, what="both leaves' storms blocked")

    most_out = 0
    stop = threading.Event()

    def watch_budget() -> None:
        nonlocal most_out
        while not stop.is_set():
            nodes = core.list_node(label_selector="nvidia.com/gpu.present=true").items
            most_out = max(most_out, sum(1 for n in nodes if n.spec.unschedulable))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_budget, daemon=True)
    watcher.start()
    try:
        done = repairbot(sandbox, "resume", "--all")
        assert done.returncode == 0, done.stderr
        for name in LEAF_0 + LEAF_1:
            assert phase_of(finished_repair(kube, name, timeout=120)) == "Succeeded"
    finally:
        stop.set()
        watcher.join(5)
    assert most_out <= 3, f"{most_out} nodes were out of service at once with maxUnavailable 3"
    for name in LEAF_0 + LEAF_1:
        assert not node(kube, name)["spec"].get("unschedulable")


def test_dry_runs_and_an_opted_out_node_are_no_storm(make_sandbox: SandboxFactory) -> None:
    policy = merge_policy(NOTIFYING, {"breaker": {"maxPerDomain": 3, "settleTime": "2s"}})
    sandbox = make_sandbox(nodes=4, policy=policy)
    kube = api_client(sandbox.state["kubeconfig"])
    core = client.CoreV1Api(kube)
    for name in LEAF_0[:2]:  # an SRE rehearses on two nodes
        done = repairbot(sandbox, "repair", name, "--reason", "rehearsal", "--action", "reboot", "--dry-run")
        assert done.returncode == 0, done.stderr
    opted_out = LEAF_0[2]
    core.patch_node(opted_out, {"metadata": {"labels": {LABEL_DISABLED: "true"}}})
    inject_now(sandbox, [(opted_out, "xid:79", 0)])
    time.sleep(1.0)  # the opted-out node's agent reports; RepairBot must leave it alone

    real = LEAF_0[3]
    inject_now(sandbox, [(real, "xid:79", 0)])
    repair = finished_repair(kube, real, timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]  # 2 rehearsals + 1 opted out + 1 real fault: no storm
    assert not repair["status"].get("incident")
    assert not node(kube, opted_out)["spec"].get("unschedulable")
    jira = sandbox.sandbox.jira
    assert jira is not None
    eventually(lambda: any(real in i.fields["summary"] for i in jira.issues.values()), timeout=30,
               what="the real repair's ticket")  # fmt: skip
    assert not any(opted_out in i.fields["summary"] for i in jira.issues.values())  # nothing for a node left alone
