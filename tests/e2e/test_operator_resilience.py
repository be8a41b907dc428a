"""The operator survives what production throws at it: SIGKILL in any phase, API errors, dropped watches.

The claim under test (DESIGN.md, "Safety"): every step is recorded before and
after it runs, so a restarted operator resumes exactly where the last one
stopped — same final state, no repeated reboot, no orphaned cordon or taint.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from child_servers import free_port
from e2e_support import (
    TEST_POLICY,
    SandboxFactory,
    all_repairs,
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
from repairbot_sim.host import ActionTimes
from repairbot_sim.kube.faults import FaultRule

SLOW = ActionTimes(gpu_reset=0.5, driver_reload=0.5, reboot=3.0, validate=3.0)
LEAF_0 = ("gpu-node-000", "gpu-node-001")


@dataclass(frozen=True)
class KillScenario:
    """How to hold a repair in one phase long enough to SIGKILL the operator there, and undo the hold.

    ``hold`` runs before the fault is injected; ``release`` runs while no
    operator is running, so the restarted one must pick everything up from
    the status alone.
    """

    policy: dict[str, Any] = field(default_factory=dict)
    nodes: tuple[str, ...] = ("gpu-node-001",)
    hold: Callable[[client.ApiClient], None] = lambda kube: None
    release: Callable[[client.ApiClient, Path], None] = lambda kube, state_dir: None


def cordon_by_hand(kube: client.ApiClient, name: str, cordoned: bool) -> None:
    client.CoreV1Api(kube).patch_node(name, {"spec": {"unschedulable": cordoned}})


def resume_all(kube: client.ApiClient, state_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "repairbot.cli", "resume", "--all", "--kubeconfig", str(state_dir / "kubeconfig")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


KILL_SCENARIOS = {
    # the budget (one node out) is taken by a node a human cordoned: the repair queues in Pending
    "Pending": KillScenario(
        policy={"budget": {"maxUnavailable": 1}},
        hold=lambda kube: cordon_by_hand(kube, "gpu-node-003", True),
        release=lambda kube, state_dir: cordon_by_hand(kube, "gpu-node-003", False),
    ),
    "Cordoned": KillScenario(),
    "Draining": KillScenario(),
    "Remediating": KillScenario(),
    # a storm on leaf-0: both repairs are Blocked until a human resumes (two canaries: both go at once)
    "Blocked": KillScenario(
        policy={"breaker": {"maxPerDomain": 2, "domainWindow": "5m", "halfOpenCanaries": 2}},
        nodes=LEAF_0,
        release=resume_all,
    ),
    # a slow dcgmi diag keeps the repair in Validating
    "Validating": KillScenario(policy={"validation": {"dcgmDiagLevel": 1, "timeout": "60s"}}),
}


@pytest.mark.parametrize("kill_in", list(KILL_SCENARIOS))
def test_sigkill_in_any_phase_resumes_with_no_repeated_reboot(
    make_sandbox: SandboxFactory, tmp_path: Path, kill_in: str
) -> None:
    scenario = KILL_SCENARIOS[kill_in]
    sandbox = make_sandbox(operator=False, action_times=SLOW, pod_termination_seconds=2)
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy = merge_policy(merge_policy(TEST_POLICY, {"breaker": {"settleTime": "2s"}}), scenario.policy)
    policy_path.write_text(yaml.safe_dump(policy))
    log = tmp_path / "operator.log"
    boots = {name: simulated(sandbox, name).node.boot_count for name in scenario.nodes}
    scenario.hold(kube)

    first = start_operator(sandbox, policy_path, log)
    try:
        inject_now(sandbox, [(name, "xid:79", 2) for name in scenario.nodes])
        eventually(
            lambda: all(any(phase_of(r) == kill_in for r in repairs_of(kube, n)) for n in scenario.nodes),
            timeout=30, interval=0.02, what=f"phase {kill_in}",
        )  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        scenario.release(kube, Path(sandbox.sandbox.config.state_dir))
        second = start_operator(sandbox, policy_path, log)
        try:
            finished = {name: finished_repair(kube, name, timeout=60) for name in scenario.nodes}
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()

    for name, repair in finished.items():
        assert phase_of(repair) == "Succeeded", (repair["status"], log.read_text()[-3000:])
        assert simulated(sandbox, name).node.boot_count == boots[name] + 1  # one reboot, not two
        back = node(kube, name)
        assert not back["spec"].get("unschedulable")
        assert not any(t["key"] == "repairbot.io/unhealthy" for t in back["spec"].get("taints") or [])
        history = repair["status"]["history"]
        assert len([e for e in history if e["step"] == "request"]) == 1
        assert len([e for e in history if e["step"] == "cordon" and e["outcome"] == "started"]) == 1, history
    if kill_in == "Pending":
        assert not any(r for r in all_repairs(kube) if r["spec"]["nodeName"] == "gpu-node-003")  # left alone


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


def test_two_replicas_one_acts_and_the_standby_takes_over_when_the_leader_dies(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    """The chart's two operator replicas: one Lease holder repairs, the other answers /healthz and waits."""
    sandbox = make_sandbox(operator=False)
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(TEST_POLICY))
    ports = {"operator-a": free_port(), "operator-b": free_port()}
    replicas = {
        name: start_operator(sandbox, policy_path, tmp_path / f"{name}.log", identity=name, leader_election=True,
                             health_port=port)
        for name, port in ports.items()
    }  # fmt: skip
    coordination = client.CoordinationV1Api(kube)

    def holder() -> str | None:
        try:
            return coordination.read_namespaced_lease("repairbot-operator", "repairbot").spec.holder_identity
        except client.ApiException:
            return None

    def healthy(name: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        leader = eventually(holder, timeout=30, what="a Lease holder")
        standby = next(name for name in replicas if name != leader)
        eventually(lambda: healthy(leader) and healthy(standby), timeout=30, what="/healthz on both replicas")

        boots = {n: simulated(sandbox, n).node.boot_count for n in ("gpu-node-001", "gpu-node-002")}
        inject_now(sandbox, [("gpu-node-001", "xid:79", 1)])
        assert phase_of(finished_repair(kube, "gpu-node-001", timeout=40)) == "Succeeded"

        replicas[leader].send_signal(signal.SIGKILL)
        replicas[leader].wait(10)
        eventually(lambda: holder() == standby, timeout=45, interval=0.5, what="the standby taking the Lease over")
        eventually(lambda: healthy(standby), timeout=30, what="kopf's /healthz on the port the standby freed")
        inject_now(sandbox, [("gpu-node-002", "xid:79", 2)])
        assert phase_of(finished_repair(kube, "gpu-node-002", timeout=40)) == "Succeeded"
        # one reboot each: the standby never acted while it waited, the new leader finished the second
        assert {n: simulated(sandbox, n).node.boot_count - b for n, b in boots.items()} == {
            "gpu-node-001": 1, "gpu-node-002": 1,
        }  # fmt: skip
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.terminate()
                process.wait(20)
