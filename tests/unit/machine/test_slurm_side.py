"""The Slurm side of a repair, decided purely: drain with the cordon, resume only our drain, wait for jobs.

Table-driven over :func:`repairbot.machine.slurm.plan`, and the machine's
Draining phase with Slurm facts (:func:`repairbot.machine.slurm_jobs.wait_for_jobs`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.machine import Facts, RepairView, Step, decide
from repairbot.machine.slurm import Command, SlurmRecord, SlurmView, drain_reason, is_pending, is_released, plan
from repairbot.model import Phase, format_time
from repairbot.policy import parse_policy

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
NAME = "gpu-node-001-20261202100000"
IDLE = SlurmView("gpu-node-001", "IDLE")
HUMAN = SlurmView("gpu-node-001", "IDLE+DRAIN", "bad fan")
OURS = SlurmView("gpu-node-001", "MIXED+DRAIN", drain_reason("xid-79", NAME), ("17",))


def planned(phase: Phase, record: SlurmRecord, view: SlurmView, *, acknowledged: bool = True) -> Any:
    return plan(phase, acknowledged=acknowledged, record=record, view=view, code="xid-79", repair=NAME)


@pytest.mark.parametrize(
    ("phase", "record", "view", "command", "drained_by_us"),
    [
        (Phase.CORDONED, SlurmRecord(), IDLE, Command.DRAIN, True),
        (Phase.BLOCKED, SlurmRecord(), IDLE, Command.DRAIN, True),  # a storm's cordon-only drains too
        (Phase.CORDONED, SlurmRecord(), HUMAN, Command.NONE, False),  # someone else's drain: recorded, untouched
        (Phase.CORDONED, SlurmRecord(), SlurmView("gpu-node-001", "DOWN*"), Command.NONE, False),
        (Phase.DRAINING, SlurmRecord(), OURS, Command.DRAIN, True),  # ours but unrecorded (crash): re-drain, idempotent
        (Phase.DRAINING, SlurmRecord("gpu-node-001", True), OURS, Command.NONE, None),  # done already
    ],
)
def test_out_of_service_drains_unless_someone_else_drained(
    phase: Phase, record: SlurmRecord, view: SlurmView, command: Command, drained_by_us: bool | None
) -> None:
    step = planned(phase, record, view)
    assert step.command is command
    assert step.record.get("drainedByRepairBot") == drained_by_us


def test_the_drain_reason_names_repairbot_the_finding_and_the_gpurepair() -> None:
    assert planned(Phase.CORDONED, SlurmRecord(), IDLE).reason == f"repairbot: xid-79 (gpurepair {NAME})"


def test_pending_before_the_cordon_leaves_slurm_alone() -> None:
    assert planned(Phase.PENDING, SlurmRecord(), IDLE, acknowledged=False).command is Command.NONE


@pytest.mark.parametrize(
    ("record", "command"),
    [
        (SlurmRecord("gpu-node-001", True), Command.RESUME),
        (SlurmRecord("gpu-node-001", True, resumed=True), Command.NONE),
        (SlurmRecord("gpu-node-001", False), Command.NONE),  # a human's drain is never resumed
        (SlurmRecord(), Command.NONE),  # never drained
    ],
)
def test_succeeded_resumes_only_our_drain(record: SlurmRecord, command: Command) -> None:
    assert planned(Phase.SUCCEEDED, record, OURS).command is command
    assert planned(Phase.CANCELLED, record, OURS).command is command


def test_quarantine_leaves_the_node_drained_with_the_quarantine_reason() -> None:
    step = planned(Phase.QUARANTINED, SlurmRecord("gpu-node-001", True), OURS)
    assert step.command is Command.DRAIN and "quarantined for xid-79" in step.reason
    assert planned(Phase.QUARANTINED, SlurmRecord("gpu-node-001", True, quarantined=True), OURS).command is Command.NONE
    assert planned(Phase.QUARANTINED, SlurmRecord("gpu-node-001", False), HUMAN).command is Command.NONE


def test_a_finished_repair_owes_slurm_a_resume_until_it_lands() -> None:
    assert is_pending(Phase.SUCCEEDED, SlurmRecord("gpu-node-001", True), True)
    assert not is_pending(Phase.SUCCEEDED, SlurmRecord("gpu-node-001", True, resumed=True), True)
    assert not is_pending(Phase.SUCCEEDED, SlurmRecord("gpu-node-001", False), True)


@pytest.mark.parametrize(
    ("record", "command"),
    [
        (SlurmRecord("gpu-node-001", True, quarantined=True), Command.RESUME),
        (SlurmRecord("gpu-node-001", True, resumed=True, quarantined=True), Command.NONE),
        (SlurmRecord("gpu-node-001", False), Command.NONE),  # a human's drain stays, with the human's reason
        (SlurmRecord(), Command.NONE),  # never drained: a release drains nothing
    ],
)
def test_a_released_quarantine_resumes_only_our_drain(record: SlurmRecord, command: Command) -> None:
    step = plan(Phase.QUARANTINED, acknowledged=False, record=record, view=OURS, code="xid-79", repair=NAME,
                released=True)  # fmt: skip
    assert step.command is command
    if command is Command.RESUME:
        assert step.step == "slurm-resume" and "quarantine released" in step.message
    assert is_pending(Phase.QUARANTINED, record, False, released=True) is (command is Command.RESUME)


def test_a_released_quarantine_is_told_by_its_released_condition() -> None:
    assert is_released([{"type": "Released", "status": "True"}])
    assert not is_released([{"type": "Released", "status": "False"}, {"type": "SlurmError", "status": "True"}])


# --- the machine waits for jobs before the rung


def draining(minutes_ago: float, history: tuple[dict[str, Any], ...] = ()) -> RepairView:
    started = {
        "step": "start-drain",
        "outcome": "done",
        "message": "drain",
        "at": format_time(T0 - timedelta(minutes=minutes_ago)),
    }
    return RepairView.from_object({
        "metadata": {"name": NAME},
        "spec": {"nodeName": "gpu-node-001", "findings": [{"code": "xid-79", "firstSeen": format_time(T0)}]},
        "status": {"phase": "Draining", "reason": "xid-79", "action": "reboot", "attempt": 1,
                   "acknowledgedAt": format_time(T0), "receivedAt": format_time(T0), "detectedAt": format_time(T0),
                   "nodeWasCordoned": False, "history": [started, *history]},
    })  # fmt: skip


FACTS = Facts(node_unschedulable=True, our_taint=True, pods_left=0)


def with_jobs(*jobs: str, error: str = "") -> Facts:
    return replace(FACTS, slurm=SlurmView("gpu-node-001", "MIXED+DRAIN", "repairbot: x", jobs, error))


def test_running_slurm_jobs_hold_the_reboot_and_are_named_once() -> None:
    policy = parse_policy({"slurm": {"enabled": True}})
    decision = decide(draining(1), with_jobs("17", "18"), policy, T0)
    assert decision.step is Step.CONTINUE_DRAIN and decision.event == "WaitingForSlurmJobs"
    entry = decision.patch["history"][-1]
    assert entry["step"] == "slurm-wait" and "17, 18" in entry["message"]
    again = decide(draining(1, (entry,)), with_jobs("17", "18"), policy, T0)
    assert again.step is Step.CONTINUE_DRAIN and not again.patch  # named once, not every poll


def test_no_jobs_or_an_unreadable_slurm_lets_the_rung_go() -> None:
    policy = parse_policy({"slurm": {"enabled": True}})
    assert decide(draining(1), with_jobs(), policy, T0).step is Step.REQUEST_ACTION
    unreadable = with_jobs("17", error="slurmctld unreachable")
    assert decide(draining(1), unreadable, policy, T0).step is Step.REQUEST_ACTION  # never blocks Kubernetes


def test_after_the_timeout_jobs_are_held_for_a_human_by_default() -> None:
    policy = parse_policy({"slurm": {"enabled": True, "jobTimeout": "10m"}})
    decision = decide(draining(11), with_jobs("17"), policy, T0)
    assert decision.patch["phase"] == "Blocked" and decision.event == "SlurmJobsRunning"
    assert not decision.slurm_requeue  # never cancelled, never requeued unless the policy says so


def test_after_the_timeout_jobs_are_requeued_when_the_policy_says_so() -> None:
    policy = parse_policy({"slurm": {"enabled": True, "jobTimeout": "10m", "onJobTimeout": "requeue"}})
    decision = decide(draining(11), with_jobs("17"), policy, T0)
    assert decision.slurm_requeue == ("17",) and decision.event == "SlurmJobsRequeued"
    assert decision.patch["history"][-1]["step"] == "slurm-requeue"
