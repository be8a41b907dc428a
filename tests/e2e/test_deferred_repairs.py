"""Deferred repairs end to end: a pending row remap waits for the running job, never evicts it.

NVIDIA's guidance for a pending row remap (Xid 63, the NVML ``remap pending``
flag) is "reset the GPU at the next convenient time": the job that is running
is unaffected, and the spare row is only used after a reset. So RepairBot
cordons the node (no new work lands on the GPU), leaves the training worker
to finish, and resets once the node's GPUs are idle.
"""

from __future__ import annotations

import time
from typing import Any

from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject_now,
    node,
    phase_of,
    repairs_of,
    steps,
)
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import api_client, raw_call

NODE = "gpu-node-001"
WORKER = ("train", "llama-worker-001")


def deferred(repair: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (repair.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Deferred" and c.get("status") == "True"), None)


def worker(kube: client.ApiClient) -> dict[str, Any] | None:
    try:
        return raw_call(client.CoreV1Api(kube).read_namespaced_pod, WORKER[1], WORKER[0])
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def test_a_pending_row_remap_waits_for_the_training_job_then_resets_and_returns(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(nodes=2, policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)

    inject_now(sandbox, [(NODE, "row-remap-pending", 2)])
    waiting = eventually(
        lambda: next((r for r in repairs_of(kube, NODE) if deferred(r)), None),
        timeout=30, what="the repair deferred while the training worker runs",
    )  # fmt: skip
    assert phase_of(waiting) == "Cordoned", waiting["status"]
    assert "llama-worker-001" in deferred(waiting)["message"]  # type: ignore[index]
    assert node(kube, NODE)["spec"].get("unschedulable") is True  # no new work on the pending GPU

    time.sleep(4)  # several reconciles later: still waiting, the worker untouched
    still = repairs_of(kube, NODE)[0]
    assert phase_of(still) == "Cordoned" and deferred(still), still["status"]
    assert "start-drain" not in [step for step, _ in steps(still)]
    pod = worker(kube)
    assert pod is not None and not pod["metadata"].get("deletionTimestamp"), "the running job was evicted"

    # The job finishes: the kubelet reports the worker Succeeded and no longer Ready, as for a completed container.
    core = client.CoreV1Api(kube)
    completed = {"type": "Ready", "status": "False", "reason": "PodCompleted"}
    raw_call(core.patch_namespaced_pod_status, WORKER[1], WORKER[0],
             {"status": {"phase": "Succeeded", "conditions": [completed]}})  # fmt: skip

    repair = finished_repair(kube, NODE, timeout=60)
    status = repair["status"]
    assert phase_of(repair) == "Succeeded", status
    assert status["action"] == "gpu-reset" and status["attempt"] == 1, status
    names = [step for step, _ in steps(repair)]
    assert names.index("defer") < names.index("start-drain") < names.index("request")
    done = next(c for c in status["conditions"] if c["type"] == "Deferred")
    assert done["status"] == "False" and done["reason"] == "GpusIdle", done
    back = node(kube, NODE)
    assert not back["spec"].get("unschedulable")
    assert "repairbot.io/state" not in back["metadata"]["labels"]
    finished = worker(kube)
    assert finished is not None and finished["status"]["phase"] == "Succeeded"  # finished, never evicted

    # The SRE reads the deferral where they follow the repair: its Slack thread and its Jira ticket.
    status = eventually(lambda: delivered(kube, NODE, "slack", "jira"), timeout=30, what="slack and jira caught up")
    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert sum("can wait for a convenient reset" in text for text in replies) == 1, replies
    assert sum("can wait for a convenient reset" in c for c in jira.comments_of(status["jira"]["key"])) == 1


def test_an_urgent_finding_on_a_deferred_node_drains_and_repairs_at_once(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(nodes=2)
    kube = api_client(sandbox.state["kubeconfig"])

    inject_now(sandbox, [(NODE, "row-remap-pending", 2)])
    eventually(lambda: any(deferred(r) for r in repairs_of(kube, NODE)), timeout=30, what="the repair deferred")
    inject_now(sandbox, [(NODE, "xid:79", 5)])  # the GPU falls off the bus: nothing waits for that

    repair = finished_repair(kube, NODE, timeout=60)
    status = repair["status"]
    assert phase_of(repair) == "Succeeded", status
    assert status["reason"] == "xid-79" and status["action"] == "reboot", status
    names = [step for step, _ in steps(repair)]
    assert names.index("defer") < names.index("escalate") < names.index("start-drain") < names.index("request")
    done = next(c for c in status["conditions"] if c["type"] == "Deferred")
    assert done["status"] == "False" and done["reason"] == "UrgentFinding", done
    assert len(repairs_of(kube, NODE)) == 1  # the urgent finding joined the deferred repair
