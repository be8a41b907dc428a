"""Slurm nodes repaired end to end against a real slurmctld: drained with the cordon, jobs waited for, resumed.

A Kubernetes cordon stops nothing on a node that is also a Slurm node; these
tests run the operator against Debian's real Slurm (munged, slurmctld and one
slurmd per simulated node, :mod:`repairbot_sim.slurm`) and check what an SRE
would check in ``sinfo`` and ``squeue``: the drain and its reason, the job a
reboot waited for, the resume, and that a human's drain is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject,
    inject_now,
    merge_policy,
    phase_of,
    repairbot,
    repairs_of,
    simulated,
)
from kubernetes import client
from slurm_world import slurm_world

from repairbot.kube.client import api_client
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.slurm import SlurmWorld, slurm_missing

NODES = ("gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003")
LABEL = "repairbot.io/slurm-node"


@pytest.fixture
def world() -> Iterator[SlurmWorld]:
    with slurm_world(NODES) as started:
        yield started


def slurm_sandbox(
    make_sandbox: SandboxFactory, world: SlurmWorld, *, notifying: bool = False, **slurm: Any
) -> tuple[BackgroundSandbox, Any]:
    """A sandbox whose operator reaches ``world`` and whose nodes are labelled as the Slurm nodes they are."""
    policy = merge_policy(
        NOTIFYING if notifying else {}, {"slurm": {"enabled": True, "slurmConf": str(world.conf), **slurm}}
    )
    sandbox = make_sandbox(nodes=len(NODES), policy=policy)
    kube = api_client(sandbox.state["kubeconfig"])
    core = client.CoreV1Api(kube)
    for name in NODES:
        core.patch_node(name, {"metadata": {"labels": {LABEL: name}}})
    return sandbox, kube


def slurm_status(kube: client.ApiClient, node: str) -> dict[str, Any]:
    (repair,) = repairs_of(kube, node)
    return dict((repair.get("status") or {}).get("slurm") or {})


def steps_of(repair: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["step"], e["outcome"]) for e in repair["status"].get("history") or []]


def test_xid79_on_a_node_running_a_slurm_job_waits_for_the_job_then_reboots_and_resumes(
    make_sandbox: SandboxFactory, world: SlurmWorld
) -> None:
    sandbox, kube = slurm_sandbox(make_sandbox, world)
    member = simulated(sandbox, "gpu-node-001")
    boots = member.node.boot_count
    job = world.submit("gpu-node-001")

    inject(sandbox, "gpu-node-001", "xid:79", gpu=2)
    eventually(lambda: world.node_state("gpu-node-001") == "MIXED+DRAIN", timeout=30, what="Slurm draining")
    reason = world.node_reason("gpu-node-001")
    assert reason.startswith("repairbot: xid-79 (gpurepair gpu-node-001-"), reason
    eventually(lambda: ("slurm-wait", "waiting") in steps_of(repairs_of(kube, "gpu-node-001")[0]), timeout=30,
               what="the repair waiting for the Slurm job")  # fmt: skip
    (waiting,) = repairs_of(kube, "gpu-node-001")
    assert phase_of(waiting) == "Draining" and member.node.boot_count == boots  # no reboot under a running job
    assert job in waiting["status"]["message"]

    world.cancel(job)  # the job ends (a human, or its own end)
    repair = finished_repair(kube, "gpu-node-001", timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert member.node.boot_count == boots + 1
    eventually(lambda: world.node_state("gpu-node-001") == "IDLE", timeout=30, what="Slurm node resumed")
    record = repair["status"]["slurm"]
    assert record["node"] == "gpu-node-001" and record["drainedByRepairBot"] is True
    names = steps_of(repair)
    assert names.index(("slurm-drain", "done")) < names.index(("slurm-wait", "waiting")) < names.index(
        ("request", "started")
    )  # fmt: skip
    wait_line = next(e["message"] for e in repair["status"]["history"] if e["step"] == "slurm-wait")
    assert job in wait_line
    eventually(lambda: slurm_status(kube, "gpu-node-001").get("resumed") is True, timeout=30, what="resume recorded")


def test_jobs_still_running_after_the_timeout_are_requeued_when_the_policy_says_so(
    make_sandbox: SandboxFactory, world: SlurmWorld
) -> None:
    sandbox, kube = slurm_sandbox(make_sandbox, world, jobTimeout="3s", onJobTimeout="requeue")
    job = world.submit("gpu-node-002")

    inject(sandbox, "gpu-node-002", "xid:79")
    repair = finished_repair(kube, "gpu-node-002", timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]
    requeued = next(e["message"] for e in repair["status"]["history"] if e["step"] == "slurm-requeue")
    assert job in requeued and "requeued" in requeued
    assert world.job_state(job) not in ("", "CANCELLED")  # requeued, never cancelled: it is queued to run again
    eventually(lambda: world.node_state("gpu-node-002").split("+")[0] in ("IDLE", "MIXED")
               and "DRAIN" not in world.node_state("gpu-node-002"), timeout=30, what="resumed")  # fmt: skip


def test_a_node_a_human_drained_in_slurm_stays_drained_after_the_repair(
    make_sandbox: SandboxFactory, world: SlurmWorld
) -> None:
    sandbox, kube = slurm_sandbox(make_sandbox, world)
    world.drain("gpu-node-003", "bad fan, ticket HW-12")

    inject(sandbox, "gpu-node-003", "xid:79")
    repair = finished_repair(kube, "gpu-node-003", timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["status"]["slurm"]["drainedByRepairBot"] is False
    assert ("slurm-drain", "skipped") in steps_of(repair)
    assert "slurm-resume" not in [step for step, _ in steps_of(repair)]
    assert world.node_state("gpu-node-003").endswith("+DRAIN")
    assert world.node_reason("gpu-node-003") == "bad fan, ticket HW-12"  # the human's reason, untouched


def test_a_storm_drains_in_slurm_and_reboots_nothing(make_sandbox: SandboxFactory, world: SlurmWorld) -> None:
    policy = {"slurm": {"enabled": True, "slurmConf": str(world.conf)},
              "breaker": {"maxPerDomain": 2, "settleTime": "2s"}}  # fmt: skip
    sandbox = make_sandbox(nodes=len(NODES), policy=policy)
    kube = api_client(sandbox.state["kubeconfig"])
    for name in NODES:
        client.CoreV1Api(kube).patch_node(name, {"metadata": {"labels": {LABEL: name}}})
    boots = {name: simulated(sandbox, name).node.boot_count for name in NODES}

    inject_now(sandbox, [(name, "xid:79", 0) for name in NODES])

    def blocked() -> list[dict[str, Any]] | None:
        found = [r for name in NODES for r in repairs_of(kube, name)]
        return found if len(found) == len(NODES) and all(phase_of(r) == "Blocked" for r in found) else None

    eventually(blocked, timeout=40, what="the storm's repairs Blocked")
    eventually(lambda: all(world.node_state(n).endswith("+DRAIN") for n in NODES), timeout=30,
               what="every storm node drained in Slurm")  # fmt: skip
    assert all(world.node_reason(n).startswith("repairbot: xid-79") for n in NODES)
    assert {name: simulated(sandbox, name).node.boot_count for name in NODES} == boots


def test_slurmctld_down_during_a_repair_the_kubernetes_side_completes_and_slurm_catches_up(
    make_sandbox: SandboxFactory, world: SlurmWorld
) -> None:
    sandbox, kube = slurm_sandbox(make_sandbox, world, notifying=True)
    job = world.submit("gpu-node-000")
    inject(sandbox, "gpu-node-000", "xid:79")
    eventually(lambda: ("slurm-wait", "waiting") in steps_of(repairs_of(kube, "gpu-node-000")[0]), timeout=30,
               what="the repair drained in Slurm and waiting for the job")  # fmt: skip

    world.stop_controller()  # Slurm's outage: the job can no longer be seen, the resume cannot be sent
    repair = finished_repair(kube, "gpu-node-000", timeout=90)
    assert phase_of(repair) == "Succeeded", repair["status"]  # Slurm's outage never blocked the Kubernetes side
    error = next(c for c in repair["status"]["conditions"] if c["type"] == "SlurmError")
    assert error["status"] == "True" and error["reason"] == "ControllerUnreachable", error
    assert ("slurm", "failed") in steps_of(repair)
    assert not repair["status"]["slurm"].get("resumed")
    assert world.node_state("gpu-node-000") == ""  # nobody to ask: still drained in the controller's saved state

    world.start_controller()
    eventually(lambda: slurm_status(kube, "gpu-node-000").get("resumed") is True, timeout=90,
               what="the resume caught up once slurmctld was back")  # fmt: skip
    (done,) = repairs_of(kube, "gpu-node-000")
    error = next(c for c in done["status"]["conditions"] if c["type"] == "SlurmError")
    assert error["status"] == "False" and error["reason"] == "Recovered", error
    assert ("slurm-resume", "done") in steps_of(done)
    eventually(lambda: "DRAIN" not in world.node_state("gpu-node-000"), timeout=30, what="resumed in Slurm")
    world.cancel(job)
    # The on-call reads the outage and the catch-up in the repair's Slack thread, as every other step.
    status = eventually(lambda: delivered(kube, "gpu-node-000", "slack"), timeout=30, what="slack caught up")
    slack, _ = chats(sandbox)
    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert any("Unable to contact slurm controller" in reply for reply in replies), replies
    assert any("resumed Slurm node gpu-node-000" in reply for reply in replies), replies


def quarantined_by_hand(sandbox: BackgroundSandbox, kube: client.ApiClient, node: str) -> dict[str, Any]:
    done = repairbot(sandbox, "repair", node, "--reason", "handed to hardware", "--action", "quarantine")
    assert done.returncode == 0, done.stderr
    return eventually(lambda: next((r for r in repairs_of(kube, node) if phase_of(r) == "Quarantined"), None),
                      timeout=30, what=f"{node} quarantined")  # fmt: skip


def test_a_quarantined_slurm_node_released_by_a_human_comes_back_in_slurm_unless_a_human_had_drained_it(
    make_sandbox: SandboxFactory, world: SlurmWorld
) -> None:
    sandbox, kube = slurm_sandbox(make_sandbox, world)
    world.drain("gpu-node-003", "bad fan, ticket HW-12")
    quarantined_by_hand(sandbox, kube, "gpu-node-001")
    quarantined_by_hand(sandbox, kube, "gpu-node-003")
    eventually(lambda: world.node_state("gpu-node-001").endswith("DRAIN"), timeout=30, what="drained in Slurm")
    reason = world.node_reason("gpu-node-001")
    assert reason.startswith("repairbot: quarantined for ") and "(gpurepair gpu-node-001-" in reason, reason
    eventually(lambda: slurm_status(kube, "gpu-node-003").get("drainedByRepairBot") is False, timeout=30,
               what="the human's drain recorded as theirs")  # fmt: skip

    done = repairbot(sandbox, "release", "gpu-node-001", "--by", "alice")
    assert done.returncode == 0, done.stderr
    client.CoreV1Api(kube).patch_node("gpu-node-003", {"metadata": {"labels": {"repairbot.io/state": None}}})

    eventually(lambda: "DRAIN" not in world.node_state("gpu-node-001"), timeout=30,
               what="the released node resumed in Slurm")  # fmt: skip
    eventually(lambda: slurm_status(kube, "gpu-node-001").get("resumed") is True, timeout=30, what="resume recorded")
    (released,) = repairs_of(kube, "gpu-node-001")
    names = steps_of(released)
    assert names.index(("release-quarantine", "done")) < names.index(("slurm-resume", "done")), names
    line = next(e["message"] for e in released["status"]["history"] if e["step"] == "slurm-resume")
    assert "resumed Slurm node gpu-node-001" in line and "released" in line, line

    (theirs,) = repairs_of(kube, "gpu-node-003")
    eventually(lambda: ("release-quarantine", "done") in steps_of(repairs_of(kube, "gpu-node-003")[0]),
               timeout=30, what="the release by hand carried out")  # fmt: skip
    time.sleep(2)  # a resume would come within a reconcile of the release: give it the chance to be wrong
    (theirs,) = repairs_of(kube, "gpu-node-003")
    assert "slurm-resume" not in [step for step, _ in steps_of(theirs)]
    assert world.node_state("gpu-node-003").endswith("+DRAIN")
    assert world.node_reason("gpu-node-003") == "bad fan, ticket HW-12"  # the human's reason, untouched


def test_sandbox_with_slurm_starts_it_beside_the_cluster_and_labels_the_nodes(make_sandbox: SandboxFactory) -> None:
    why = slurm_missing()
    if why:
        pytest.skip(why)
    sandbox = make_sandbox(nodes=2, slurm=True)
    kube = api_client(sandbox.state["kubeconfig"])
    conf = sandbox.state["slurmConf"]
    world = sandbox.sandbox.slurm
    assert world is not None and str(world.conf) == conf
    labels = {n.metadata.name: n.metadata.labels.get(LABEL) for n in client.CoreV1Api(kube).list_node().items}
    assert labels == {"gpu-node-000": "gpu-node-000", "gpu-node-001": "gpu-node-001"}

    inject(sandbox, "gpu-node-001", "xid:79")
    assert phase_of(finished_repair(kube, "gpu-node-001", timeout=60)) == "Succeeded"
    # The resume is written just after the phase (the Kubernetes side first): wait for it, do not race it.
    eventually(lambda: ("slurm-resume", "done") in steps_of(repairs_of(kube, "gpu-node-001")[0]), timeout=30,
               what="the Slurm node resumed")  # fmt: skip
