"""The operator survives what production throws at it: SIGKILL in any phase, API errors, dropped watches.

The claim under test (DESIGN.md, "Safety"): every step is recorded before and
after it runs, so a restarted operator resumes exactly where the last one
stopped — same final state, no repeated reboot, no orphaned cordon or taint.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from e2e_support import (
    TEST_POLICY,
    SandboxFactory,
    eventually,
    finished_repair,
    inject_now,
    merge_policy,
    node,
    phase_of,
    repairs_of,
    simulated,
    start_operator,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.sim.host import ActionTimes
from repairbot.sim.kube.faults import FaultRule

SLOW = ActionTimes(gpu_reset=0.5, driver_reload=0.5, reboot=3.0)


@pytest.mark.parametrize("kill_in", ["Cordoned", "Draining", "Remediating"])
def test_sigkill_in_any_phase_resumes_with_no_repeated_reboot(
    make_sandbox: SandboxFactory, tmp_path: Path, kill_in: str
) -> None:
    sandbox = make_sandbox(operator=False, action_times=SLOW, pod_termination_seconds=2)
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(merge_policy(TEST_POLICY, {"breaker": {"settleTime": "2s"}})))
    log = tmp_path / "operator.log"
    member = simulated(sandbox, "gpu-node-001")
    boots = member.node.boot_count

    first = start_operator(sandbox, policy_path, log)
    try:
        inject_now(sandbox, [("gpu-node-001", "xid:79", 2)])
        eventually(
            lambda: any(phase_of(r) == kill_in for r in repairs_of(kube, "gpu-node-001")),
            timeout=30, interval=0.02, what=f"phase {kill_in}",
        )  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_operator(sandbox, policy_path, log)
        try:
            repair = finished_repair(kube, "gpu-node-001", timeout=60)
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()

    assert phase_of(repair) == "Succeeded", (repair["status"], log.read_text()[-3000:])
    assert member.node.boot_count == boots + 1  # one reboot, not two
    back = node(kube, "gpu-node-001")
    assert not back["spec"].get("unschedulable")
    assert not any(t["key"] == "repairbot.io/unhealthy" for t in back["spec"].get("taints") or [])
    requests = [e for e in repair["status"]["history"] if e["step"] == "request"]
    assert len(requests) == 1


def test_api_errors_and_dropped_watches_change_nothing_but_time(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    faults = sandbox.sandbox.api.faults
    member = simulated(sandbox, "gpu-node-002")
    boots = member.node.boot_count
    faults.add(FaultRule(action="fail", method="PATCH", path=r"gpurepairs/[^/]+/status$", count=3, status=500))
    faults.add(FaultRule(action="fail", method="PATCH", path=r"/api/v1/nodes/gpu-node-002$", count=2, status=409))
    faults.add(FaultRule(action="fail", method="POST", path=r"/eviction$", count=2, status=429))
    faults.add(FaultRule(action="fail", method="GET", path=r"/api/v1/nodes/gpu-node-002$", count=2, status=503))
    faults.add(FaultRule(action="drop_watch", path=r"gpurepairs", count=3, after_events=1))

    inject_now(sandbox, [("gpu-node-002", "xid:79", 4)])
    repair = finished_repair(kube, "gpu-node-002", timeout=60)

    assert phase_of(repair) == "Succeeded", repair["status"]
    assert member.node.boot_count == boots + 1
    assert not node(kube, "gpu-node-002")["spec"].get("unschedulable")
    assert len([e for e in repair["status"]["history"] if e["step"] == "request"]) == 1


def test_a_persistent_api_error_is_recorded_on_the_repair(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    faults = sandbox.sandbox.api.faults
    # Every node write fails for a while: the repair cannot cordon, and must say so where the SRE looks.
    faults.add(FaultRule(action="fail", method="PATCH", path=r"/api/v1/nodes/gpu-node-000$", count=-1, status=500))

    inject_now(sandbox, [("gpu-node-000", "xid:79", 0)])

    def error_recorded() -> dict | None:
        for repair in repairs_of(kube, "gpu-node-000"):
            for condition in (repair.get("status") or {}).get("conditions") or []:
                if condition["type"] == "ReconcileError":
                    return condition
        return None

    condition = eventually(error_recorded, timeout=40, what="ReconcileError condition")
    assert "500" in condition["message"] or "injected fault" in condition["message"]
    events = client.CoreV1Api(kube).list_namespaced_event("default").items
    assert any(e.reason == "ReconcileError" for e in events)

    faults.clear()  # the API server recovers: the repair goes on from where it stood
    assert phase_of(finished_repair(kube, "gpu-node-000", timeout=60)) == "Succeeded"
