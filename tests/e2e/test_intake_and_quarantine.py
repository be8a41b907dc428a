"""Intake is one door, and a quarantine sticks until a human releases it (issue 11, defects 2 and 3).

Real kopf and the real client against the emulated API server, the sandbox's
agents, webhook, fake Slack and fake Jira; the CLI as its own process.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    at_once,
    chats,
    eventually,
    gpu_condition,
    inject_now,
    node,
    phase_of,
    repairbot,
    repairs_of,
    simulated,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot_sim.background import BackgroundSandbox

CREATES = r"/apis/repairbot\.io/v1alpha1/gpurepairs(\?.*)?$"


def alert(node_name: str, gpu: int = 2) -> dict[str, Any]:
    started = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z"
    item = {
        "status": "firing",
        "labels": {"alertname": "GpuXid", "Hostname": node_name, "gpu": str(gpu), "xid": "79"},
        "annotations": {"summary": f"Xid 79 on {node_name} GPU {gpu}"},
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{node_name}-{gpu}",
    }
    return {"receiver": "repairbot", "status": "firing", "alerts": [item], "version": "1", "groupKey": "{}"}


def post_alert(sandbox: BackgroundSandbox, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {sandbox.state['webhookToken']}"}
    answer = httpx.post(f"{sandbox.state['webhook']}/webhook/grafana", json=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def taints(kube: client.ApiClient, name: str) -> list[str]:
    return [t["key"] for t in node(kube, name)["spec"].get("taints") or []]


def state_label(kube: client.ApiClient, name: str) -> str | None:
    return (node(kube, name)["metadata"].get("labels") or {}).get("repairbot.io/state")


def condition(repair: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (repair.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def told_everyone(repair: dict[str, Any]) -> bool:
    """Slack and Jira have every history entry of this repair, and its phase."""
    status = repair.get("status") or {}
    history = status.get("history") or []
    cursors = [(status.get("deliveries") or {}).get(target) or {} for target in ("slack", "jira")]
    return all(c.get("sent") == len(history) and c.get("phase") == status.get("phase") for c in cursors)


def quarantine_by_hand(sandbox: BackgroundSandbox, kube: client.ApiClient, name: str) -> dict[str, Any]:
    done = repairbot(sandbox, "repair", name, "--reason", "handed to hardware", "--action", "quarantine")
    assert done.returncode == 0, done.stderr

    def quarantined() -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, name) if phase_of(r) == "Quarantined"), None)

    return eventually(quarantined, 30, what=f"{name} quarantined")


def test_agent_webhook_and_a_manual_label_within_100ms_make_one_repair_with_all_three_findings(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    target = "gpu-node-001"
    # Every create is held back 1.5 s by the API server, so all three reporters find no repair and create.
    rule = {"action": "delay", "method": "POST", "path": CREATES, "seconds": 1.5, "count": 3}
    httpx.post(sandbox.state["kubeFaults"], json=rule, timeout=10, verify=sandbox.state["apiCA"]).raise_for_status()

    reporters = [
        lambda: inject_now(sandbox, [(target, "xid:79", 0)]),  # the agent reports it at once (NVML event)
        lambda: post_alert(sandbox, alert(target, gpu=2)),  # answers once intake is done: after the delay
        lambda: client.CoreV1Api(kube).patch_node(target, {"metadata": {"labels": {"repairbot.io/state": "faulty"}}}),
    ]
    started = at_once(reporters)
    assert max(started) - min(started) < 0.1  # agent, webhook and label within the same 100 ms

    def one_with_all_three() -> list[dict[str, Any]] | None:
        repairs = repairs_of(kube, target)
        sources = {f["source"] for r in repairs for f in r["spec"]["findings"]}
        return repairs if sources == {"agent", "grafana", "manual"} and len(repairs) == 1 else None

    try:
        [repair] = eventually(one_with_all_three, 30, what="one repair with the agent's, alert's and label's findings")
    except AssertionError:
        found = [(r["metadata"]["name"], phase_of(r), [f["source"] for f in r["spec"]["findings"]])
                 for r in repairs_of(kube, target)]  # fmt: skip
        raise AssertionError(f"repairs of {target}: {found}") from None
    assert phase_of(repair) not in ("Cancelled", "Failed"), repair["status"]


def test_a_new_xid_79_on_a_quarantined_node_opens_no_repair_reboots_nothing_and_is_recorded_and_notified(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    target = "gpu-node-002"
    quarantine = quarantine_by_hand(sandbox, kube, target)
    name = quarantine["metadata"]["name"]
    eventually(lambda: told_everyone(repairs_of(kube, target)[0]), 30, what="the quarantine told to Slack and Jira")
    boots = simulated(sandbox, target).node.boot_count

    inject_now(sandbox, [(target, "xid:79", 0)])

    def recorded_or_new() -> list[dict[str, Any]] | None:
        repairs = repairs_of(kube, target)
        held = next((r for r in repairs if r["metadata"]["name"] == name), {})
        noted = any(e["step"] == "finding-while-quarantined" for e in held.get("status", {}).get("history") or [])
        return repairs if len(repairs) > 1 or (noted and told_everyone(held)) else None

    repairs = eventually(recorded_or_new, 30, what="the Xid recorded on the quarantine and told to Slack and Jira")
    assert [r["metadata"]["name"] for r in repairs] == [name], "a new repair was opened for a quarantined node"
    [held] = repairs
    assert phase_of(held) == "Quarantined"
    assert any(f["code"] == "xid-79" for f in held["spec"]["findings"])
    [entry] = [e for e in held["status"]["history"] if e["step"] == "finding-while-quarantined"]
    assert "xid-79" in entry["message"] and "repairbot release gpu-node-002" in entry["message"]
    status = held["status"]
    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert any("while node gpu-node-002 is quarantined" in text for text in replies), replies
    assert any("while node gpu-node-002 is quarantined" in c for c in jira.comments_of(status["jira"]["key"]))

    time.sleep(1.0)  # a reboot would have started by now; what follows checks it did not
    assert simulated(sandbox, target).node.boot_count == boots
    assert node(kube, target)["spec"].get("unschedulable") is True
    assert "repairbot.io/unhealthy" in taints(kube, target)
    assert state_label(kube, target) == "quarantined"
    assert [r["metadata"]["name"] for r in repairs_of(kube, target)] == [name]


def test_release_returns_a_quarantined_node_uncordoned_only_if_repairbot_cordoned_it_and_a_later_fault_opens_a_fresh_repair(  # noqa: E501
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    core = client.CoreV1Api(kube)
    ours, theirs = "gpu-node-002", "gpu-node-003"
    core.patch_node(theirs, {"spec": {"unschedulable": True}})  # a human had cordoned this one before
    first = quarantine_by_hand(sandbox, kube, ours)
    quarantine_by_hand(sandbox, kube, theirs)

    done = repairbot(sandbox, "release", ours, "--by", "alice")
    assert done.returncode == 0, done.stderr
    core.patch_node(theirs, {"metadata": {"labels": {"repairbot.io/state": None}}})  # a release by hand

    def released(name: str) -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, name) if (condition(r, "Released") or {}).get("status") == "True"),
                    None)  # fmt: skip

    mine = eventually(lambda: released(ours), 30, what=f"{ours} released")
    other = eventually(lambda: released(theirs), 30, what=f"{theirs} released")
    assert phase_of(mine) == "Quarantined"  # still the record of what happened; no longer the node's record
    assert any(e["step"] == "release-quarantine" and "alice" in e["message"] for e in mine["status"]["history"])
    assert any("by hand" in e["message"] for e in other["status"]["history"] if e["step"] == "release-quarantine")
    assert not node(kube, ours)["spec"].get("unschedulable")
    assert node(kube, theirs)["spec"].get("unschedulable") is True  # not RepairBot's cordon: left as it was
    for name in (ours, theirs):
        assert "repairbot.io/unhealthy" not in taints(kube, name)
        assert state_label(kube, name) is None

    inject_now(sandbox, [(ours, "xid:79", 0)])

    def fresh() -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, ours) if r["metadata"]["name"] != first["metadata"]["name"]), None)

    repair = eventually(fresh, 30, what="a fresh repair for the released node")
    assert any(f["code"] == "xid-79" for f in repair["spec"]["findings"])
    assert eventually(lambda: phase_of(fresh() or {}) == "Succeeded", 60, what="the fresh repair succeeds")


def test_a_disabled_nodes_fault_opens_no_repair_and_no_ticket_whoever_reports_it(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    jira = sandbox.sandbox.jira
    assert jira is not None
    target = "gpu-node-001"
    client.CoreV1Api(kube).patch_node(target, {"metadata": {"labels": {"repairbot.io/disabled": "true"}}})

    inject_now(sandbox, [(target, "xid:79", 0)])  # the agent
    answer = post_alert(sandbox, alert(target))  # the webhook
    assert answer["ignored"] == [{"fingerprint": f"fp-{target}-2", "reason": "node-disabled"}]
    done = repairbot(sandbox, "repair", target, "--reason", "by hand")  # the CLI
    assert done.returncode == 1 and "repairbot.io/disabled=true" in done.stderr, done.stderr

    def seen_by_agent() -> bool:
        return (gpu_condition(kube, target) or {}).get("status") == "False"

    eventually(seen_by_agent, 20, what="the agent saw the Xid")
    deadline = time.monotonic() + 3.0  # the agent reported at once; the operator would have opened a ticket by now
    while time.monotonic() < deadline:
        assert repairs_of(kube, target) == [], "a repair was opened for an opted-out node"
        time.sleep(0.2)
    assert not jira.issues
    assert state_label(kube, target) is None
