"""An escalation rule in the sandbox: the third job's Xid 13 on one GPU within the hour resets that GPU.

Real agents read the simulated kernel log (each Xid 13 line names its process), report the Xid 13s the
policy's rule counts although each needs no action by itself, and the real operator, over the emulated
API server, closes each lone Xid 13 as the application's problem until the third distinct job on the
same GPU turns it into a GPU reset, with the rule's reason in the repair's history and conditions.
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
    merge_policy,
    phase_of,
    repairs_of,
    simulated,
)
from kubernetes import client

from repairbot.detectors.gpu_backend import GpuEvent, GpuEventKind
from repairbot.kube.client import api_client

RULE = {"match": "xid-13", "scope": "gpu", "distinctJobs": True, "count": 3, "window": "1h", "action": "gpu-reset"}
NODE = "gpu-node-001"
TERMINAL = {"Succeeded", "Failed", "Quarantined", "Cancelled"}


def _settled(kube: client.ApiClient, count: int) -> list[dict[str, Any]] | None:
    """The node's repairs once there are ``count`` and every one has finished.

    A repair the operator has not yet written a status to has no phase at all: it is as unfinished as a Pending
    one (under load the second Xid 13's repair was read in that moment and taken for settled)."""
    repairs = repairs_of(kube, NODE)
    if len(repairs) < count or any(phase_of(r) not in TERMINAL for r in repairs):
        return None
    return repairs


def test_xid13_from_three_jobs_on_one_gpu_within_an_hour_escalates_to_a_gpu_reset(make_sandbox: SandboxFactory) -> None:
    # Repeats of a kernel-log burst reach intake every second here (60 s in a real agent).
    policy = merge_policy(NOTIFYING, {"escalations": [RULE]})
    sandbox = make_sandbox(nodes=2, policy=policy, agent_kmsg_report_interval=1.0)
    slack, jira = chats(sandbox)
    kube = api_client(sandbox.state["kubeconfig"])
    node = simulated(sandbox, NODE).node
    for pid in (4101, 4102):
        node.log_xid(13, gpu=3, pid=pid, process="python3")
        count = pid - 4100
        repairs = eventually(lambda count=count: _settled(kube, count), timeout=30, what=f"Xid 13 number {count}")
    # Two jobs: the applications' problem; each repair ends with nothing done and the node is left alone.
    assert {phase_of(r) for r in repairs} == {"Cancelled"}
    assert all(r["status"]["conditions"][-1]["reason"] == "NoAction" for r in repairs)
    assert not client.CoreV1Api(kube).read_node(NODE).spec.unschedulable

    node.log_xid(13, gpu=3, pid=4103, process="python3")

    def escalated() -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, NODE) if phase_of(r) == "Succeeded"), None)

    repair = eventually(escalated, timeout=60, what="the escalated repair to finish")
    history = repair["status"]["history"]
    fired = next(entry for entry in history if entry["step"] == "escalation-rule")
    assert fired["message"] == "xid-13 on GPU 3 from 3 jobs within 1h: escalated to gpu-reset"
    assert fired["action"] == "gpu-reset"
    assert any(entry.get("action") == "gpu-reset" and entry["step"] == "request" for entry in history), history
    condition = next(c for c in repair["status"]["conditions"] if c["type"] == "Escalated")
    assert condition["status"] == "True" and condition["message"] == fired["message"]
    # The SRE channel hears why the GPU was reset.
    told = eventually(lambda: delivered(kube, NODE, "slack", "jira"), timeout=30, what="the escalated repair told")
    thread = slack.thread(told["slack"]["channel"], told["slack"]["ts"])
    assert any(fired["message"] in (m.text or "") for m in thread), [m.text for m in thread]
    # The two Xid 13s before it touched nothing and asked nothing of anyone: no thread, no ticket of their own.
    assert len([m for m in slack.messages if m.thread_ts is None]) == 1
    assert len(jira.issues) == 1


def test_xid13_told_by_nvml_first_still_counts_the_job_its_kernel_log_line_names(make_sandbox: SandboxFactory) -> None:
    """On a real node NVML's event of an Xid comes first and names no job; the kernel-log line a moment later
    corroborates it and is the only one to say ``name[pid]``. Its job must reach the repair's occurrence,
    even when that repair already ended (a lone Xid 13 is closed at once), or the rule never fires."""
    policy = merge_policy(NOTIFYING, {"escalations": [RULE]})
    sandbox = make_sandbox(nodes=2, policy=policy, agent_kmsg_report_interval=1.0)
    kube = api_client(sandbox.state["kubeconfig"])
    node = simulated(sandbox, NODE).node

    def nvml_event() -> None:
        device = node.backend.device(3)
        node.backend.push_event(GpuEvent(GpuEventKind.XID, device.ref(), xid=13, detail="simulated"))

    nvml_event()
    # Intake heard of NVML's event before the kernel log says anything: a repair with no job in it.
    eventually(lambda: repairs_of(kube, NODE) or None, timeout=4, what="the repair of NVML's Xid 13")
    node.log_xid(13, gpu=3, pid=4101, process="python3")
    for pid in (4102, 4103):
        count = pid - 4101
        eventually(lambda count=count: _settled(kube, count), timeout=30, what=f"Xid 13 number {count} settled")
        nvml_event()
        time.sleep(0.5)  # read at once: a repeat of NVML's burst, folded and reported later
        node.log_xid(13, gpu=3, pid=pid, process="python3")

    def escalated() -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, NODE) if phase_of(r) == "Succeeded"), None)

    repair = eventually(escalated, timeout=60, what="the escalated repair to finish")
    fired = next(entry for entry in repair["status"]["history"] if entry["step"] == "escalation-rule")
    assert fired["message"] == "xid-13 on GPU 3 from 3 jobs within 1h: escalated to gpu-reset"
    # The first Xid is one occurrence, with its job: NVML's event and its line were never counted twice.
    first = min(repairs_of(kube, NODE), key=lambda r: r["metadata"]["creationTimestamp"] + r["metadata"]["name"])
    (item,) = [f for f in first["spec"]["findings"] if f["code"] == "xid-13"]
    assert item["count"] == 1
    assert [o.get("job") for o in item["occurrences"]] == ["python3[4101]"]
