"""Escalation rules in the machine: the third job's Xid 13 on one GPU within the hour resets that GPU.

An application-class Xid 13 alone is the application's bug: its repair ends at once with nothing done.
The same Xid on the same GPU from three different jobs within an hour is the GPU, and a policy rule says
so. Each Xid 13 opened (and closed) a repair of its own, so the rule counts the node's earlier repairs'
findings too (``Facts.node_findings``), each occurrence once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from test_machine import NAME, T0, World, policy_for

from repairbot.catalog.xid import default_catalog
from repairbot.machine import Facts, PoolUsage, Step, catalog_fallback
from repairbot.model import Action, Finding, GpuRef, format_time

RULE = {"match": "xid-13", "scope": "gpu", "distinctJobs": True, "count": 3, "window": "1h", "action": "gpu-reset"}
POLICY = policy_for({"escalations": [RULE]})


def xid13(minute: int, pid: int, *, seq: int | None = None, gpu: int = 3) -> Finding:
    evidence = {"pid": str(pid), "process": "python", "application_class": "true"}
    if seq is not None:
        evidence |= {"kmsgSeq": str(seq), "kmsgBoot": "boot-1"}
    return Finding("xid-13", "Xid 13 on 0000:cb:00.0", Action.NONE, gpu=GpuRef(index=gpu, pci=f"0000:c{gpu}:00.0"),
                   xid=13, first_seen=T0 + timedelta(minutes=minute), evidence=evidence)  # fmt: skip


def world_for(latest: Finding, earlier: list[Finding]) -> World:
    obj: dict[str, Any] = {
        "metadata": {"name": NAME},
        "spec": {"nodeName": "gpu-node-007", "source": "agent", "findings": [latest.to_dict()]},
    }
    world = World(obj, policy=POLICY, fallback=catalog_fallback(default_catalog()))
    world.facts = Facts(pool=PoolUsage(size=100), node_findings=tuple(earlier))
    world.now = latest.first_seen + timedelta(seconds=1)
    return world


def test_third_job_with_xid13_on_one_gpu_within_an_hour_escalates_to_a_gpu_reset_ending_in_quarantine() -> None:
    world = world_for(xid13(40, pid=303), [xid13(0, pid=101), xid13(20, pid=202)])
    fired = world.step(Step.ESCALATE)
    assert fired.message == "xid-13 on GPU 3 from 3 jobs within 1h: escalated to gpu-reset"
    assert world.phase == "Pending"
    entry = world.status["history"][-1]
    assert (entry["step"], entry["outcome"], entry["action"]) == ("escalation-rule", "fired", "gpu-reset")
    condition = next(c for c in world.status["conditions"] if c["type"] == "Escalated")
    assert condition["status"] == "True" and condition["message"] == fired.message
    world.step(Step.CORDON)
    world.facts = replace(world.facts, pods_left=0)
    world.step(Step.START_DRAIN)
    request = world.step(Step.REQUEST_ACTION)
    assert request.action is Action.GPU_RESET
    world.step(Step.WAIT_FOR_AGENT)
    world.answer("failed", "nvidia-smi -r: GPU busy")
    climbed = world.step(Step.NEXT_RUNG)
    assert climbed.action is Action.REBOOT  # the escalated ladder: gpu-reset → reboot → quarantine


def test_two_jobs_with_xid13_within_an_hour_are_the_applications_problem_and_nothing_is_done() -> None:
    world = world_for(xid13(20, pid=202), [xid13(0, pid=101)])
    done = world.step(Step.CANCEL)
    assert world.status["conditions"][-1]["reason"] == "NoAction", done.message
    assert not any(entry["step"] == "escalation-rule" for entry in world.status["history"])


def test_three_xid13_from_one_job_do_not_count_as_three_jobs() -> None:
    world = world_for(xid13(40, pid=101), [xid13(0, pid=101), xid13(20, pid=101)])
    world.step(Step.CANCEL)


def test_xid13_older_than_the_window_does_not_count() -> None:
    world = world_for(xid13(90, pid=303), [xid13(0, pid=101), xid13(60, pid=202)])
    world.step(Step.CANCEL)


def test_xid13_on_three_different_gpus_is_no_gpu_fault() -> None:
    world = world_for(xid13(40, pid=303, gpu=2), [xid13(0, pid=101, gpu=0), xid13(20, pid=202, gpu=1)])
    world.step(Step.CANCEL)


def test_the_same_kernel_log_record_in_two_repairs_counts_once() -> None:
    """A report re-sent after a lost reply may land in a second repair: its record id makes it one occurrence."""
    world = world_for(xid13(40, pid=202, seq=12), [xid13(0, pid=101, seq=7), xid13(40, pid=202, seq=12)])
    world.step(Step.CANCEL)


def test_without_rules_xid13_is_cancelled_as_before() -> None:
    world = world_for(xid13(40, pid=303), [xid13(0, pid=101), xid13(20, pid=202)])
    world.policy = policy_for()
    world.step(Step.CANCEL)
    assert format_time(world.now)  # the repair ended without a rung
