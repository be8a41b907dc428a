"""A DaemonSet rollout restarts every agent; no repair may notice anything but a short gap.

The claim under test (DESIGN.md, "Safety"): a finding clears only on positive
evidence — a complete poll of the very signal that raised it, or a passed
validation — and an agent that just started knows what it knew before (its
event findings come back from the node's GPURepair, the kernel log is read on
from where the last agent stopped). So a restarted agent never reports a
faulty node healthy, and a Blocked or settling repair goes on as if nothing
had happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    SandboxFactory,
    all_repairs,
    eventually,
    finished_repair,
    gpu_condition,
    inject,
    inject_now,
    node,
    phase_of,
    repairs_of,
    simulated,
)
from kubernetes import client

from repairbot.kube.client import api_client, raw_call
from repairbot_sim.background import BackgroundSandbox

STORM = ["gpu-node-000", "gpu-node-001", "gpu-node-002"]


def restarted(sandbox: BackgroundSandbox, name: str, before: int) -> bool:
    """The node's new agent is up and has looked at the node at least twice (a full poll and then some)."""
    member = simulated(sandbox, name)
    return member.restarts > before and member.agent.polls >= 2


def cordoned(kube: client.ApiClient, name: str) -> bool:
    spec = node(kube, name)["spec"]
    return bool(spec.get("unschedulable")) and any(
        t["key"] == "repairbot.io/unhealthy" for t in spec.get("taints") or []
    )


def test_a_storm_blocked_repair_survives_a_restart_of_its_agents(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(nodes=4, policy={"breaker": {"maxPerDomain": 2, "settleTime": "2s"}})
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, [(name, "xid:79", 1) for name in STORM])
    eventually(
        lambda: len(all_repairs(kube)) == 3 and all(phase_of(r) == "Blocked" for r in all_repairs(kube)),
        timeout=30, what="the storm Blocked",
    )  # fmt: skip
    assert all(cordoned(kube, name) for name in STORM)
    names = {name: repairs_of(kube, name)[0]["metadata"]["name"] for name in STORM}

    before = {name: simulated(sandbox, name).restarts for name in STORM}
    inject(sandbox, STORM[0], "agent-restart")  # once through the CLI, as an SRE would
    inject_now(sandbox, [(name, "agent-restart", 0) for name in STORM[1:]])
    for name in STORM:
        eventually(lambda name=name: restarted(sandbox, name, before[name]), timeout=30, what=f"{name}'s new agent")

    for name in STORM:
        condition = gpu_condition(kube, name)
        assert condition is not None and condition["status"] == "False", (name, condition)
        assert "xid-79" in condition["message"], condition
        repair = repairs_of(kube, name)[0]
        assert phase_of(repair) == "Blocked", repair["status"]
        assert cordoned(kube, name)

    done = subprocess.run(
        [sys.executable, "-m", "repairbot.cli", "resume", "--all", "--kubeconfig", sandbox.state["kubeconfig"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in STORM:
        repair = finished_repair(kube, name, timeout=90)
        assert repair["metadata"]["name"] == names[name]  # the same repair went on: none cancelled, none new
        assert phase_of(repair) == "Succeeded", repair["status"]
        assert repair["status"]["action"] == "reboot"


def test_a_settle_time_cordoned_repair_survives_its_agents_restart_and_proceeds(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(nodes=2, policy={"breaker": {"settleTime": "12s"}})
    kube = api_client(sandbox.state["kubeconfig"])
    member = simulated(sandbox, "gpu-node-001")
    boots = member.node.boot_count
    inject_now(sandbox, [("gpu-node-001", "xid:79", 3)])
    eventually(
        lambda: any(phase_of(r) == "Cordoned" for r in repairs_of(kube, "gpu-node-001")),
        timeout=30, what="the repair Cordoned, settling",
    )  # fmt: skip

    before = member.restarts
    inject_now(sandbox, [("gpu-node-001", "agent-restart", 0)])
    eventually(lambda: restarted(sandbox, "gpu-node-001", before), timeout=30, what="the new agent")
    condition = gpu_condition(kube, "gpu-node-001")
    assert condition is not None and condition["status"] == "False", condition

    repair = finished_repair(kube, "gpu-node-001", timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["status"]["action"] == "reboot"
    assert member.node.boot_count == boots + 1
    assert len(repairs_of(kube, "gpu-node-001")) == 1  # the replayed kernel log opened nothing new


# One of each kind of signal: kernel-log/NVML events (Xid 79, ECC DBE) and a polled NVML counter (row remap).
# A pending row remap waits for its node's GPU pods to finish (a deferred repair): there, the job is done and its
# worker deleted at once (a PyTorchJob's cleanPodPolicy), as the operator of a finished job does.
MIX = [
    ("gpu-node-000", "xid:79", 2),
    ("gpu-node-001", "row-remap-pending", 1),
    ("gpu-node-002", "ecc-dbe", 0),
    ("gpu-node-003", "xid:79", 5),
]


def _outcomes(make_sandbox: SandboxFactory, *, rolling_restart: bool) -> dict[str, Any]:
    sandbox = make_sandbox(nodes=4, policy={"breaker": {"settleTime": "3s"}})
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, MIX)
    core = client.CoreV1Api(kube)
    raw_call(core.delete_namespaced_pod, "llama-worker-001", "train")
    eventually(lambda: len(all_repairs(kube)) == len(MIX), timeout=30, what="every fault opened a repair")
    if rolling_restart:
        for name, _fault, _gpu in MIX:  # one agent after the other, as a DaemonSet rollout goes
            before = simulated(sandbox, name).restarts
            inject_now(sandbox, [(name, "agent-restart", 0)])
            eventually(lambda name=name, before=before: restarted(sandbox, name, before), timeout=30, what=name)
    outcome: dict[str, Any] = {}
    for name, _fault, _gpu in MIX:
        repair = finished_repair(kube, name, timeout=90)
        outcome[name] = (phase_of(repair), repair["status"].get("action"), repair["status"].get("attempt"))
        STORIES[(rolling_restart, name)] = [
            f"{e['at']} {e['step']} {e['outcome']}: {e['message'][:120]}" for e in repair["status"]["history"]
        ]
    outcome["repairs"] = len(all_repairs(kube))
    return outcome


STORIES: dict[tuple[bool, str], list[str]] = {}  # each repair's history, to show where a restart changed it


def test_a_rolling_restart_of_all_agents_mid_repair_changes_no_outcome(make_sandbox: SandboxFactory) -> None:
    undisturbed = _outcomes(make_sandbox, rolling_restart=False)
    rolled = _outcomes(make_sandbox, rolling_restart=True)
    changed = [name for name in undisturbed if rolled.get(name) != undisturbed[name]]
    assert rolled == undisturbed, {name: STORIES.get((True, name)) for name in changed}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_rolling_restart_of_all_agents_mid_demo_changes_no_outcome(tmp_path: Path) -> None:
    """``repairbot demo --rolling-restart``: every agent replaced mid-repair, again mid-storm; all 8 end right."""
    command = ["demo", "--no-live", "--speed", "2", "--rolling-restart", "--state-dir", str(tmp_path / "rb")]
    done = subprocess.run(
        [sys.executable, "-m", "repairbot.cli", *command],
        capture_output=True, text=True, timeout=360, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out[-6000:]}\n{done.stderr[-3000:]}"
    assert out.count("a rolling restart of every agent: 16 agents") == 2
    assert "agent restart failed" not in out
    assert "all 8 scenarios ended as expected" in out
