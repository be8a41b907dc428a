"""The executor's pure decision: each request is performed at most once, reboots judged by boot id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from repairbot.agent.executor import REBOOT_GRACE, StepKind, decide
from repairbot.model import parse_time


def repair(
    request: dict[str, Any] | None = None, agent: dict[str, Any] | None = None, phase: str = "Remediating"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if request is not None:
        status["request"] = request
    if agent is not None:
        status["agent"] = agent
    return {"metadata": {"name": "gpu-node-001-20261122000000"}, "status": status}


REBOOT = {"id": "r-1", "action": "reboot"}
STARTED = "2026-11-22T10:00:00.000Z"
RESET = {"id": "r-2", "action": "gpu-reset", "gpu": {"index": 3, "uuid": "GPU-3"}}


@pytest.mark.parametrize(
    ("obj", "boot", "issued", "kind", "result"),
    [
        (repair(), "b1", frozenset(), StepKind.IDLE, ""),
        (repair(RESET), "b1", frozenset(), StepKind.START, ""),
        (repair(RESET, phase="Succeeded"), "b1", frozenset(), StepKind.IDLE, ""),
        (repair({"id": "x", "action": "format-disk"}), "b1", frozenset(), StepKind.IDLE, ""),
        (repair(RESET, {"requestId": "r-1", "result": "succeeded"}), "b1", frozenset(), StepKind.START, ""),
        (repair(RESET, {"requestId": "r-2", "result": "succeeded"}), "b1", frozenset(), StepKind.IDLE, ""),
        (repair(RESET, {"requestId": "r-2", "result": "running"}), "b1", frozenset({"r-2"}), StepKind.WAIT, ""),
        (repair(RESET, {"requestId": "r-2", "result": "running"}), "b1", frozenset(), StepKind.CONCLUDE, "failed"),
        (
            repair(REBOOT, {"requestId": "r-1", "result": "running", "bootId": "b1"}),
            "b2",
            frozenset(),
            StepKind.CONCLUDE,
            "succeeded",
        ),
        (
            repair(REBOOT, {"requestId": "r-1", "result": "running", "bootId": "b1"}),
            "b1",
            frozenset({"r-1"}),
            StepKind.WAIT,
            "",
        ),
        (
            repair(REBOOT, {"requestId": "r-1", "result": "running", "bootId": "b1"}),
            "b1",
            frozenset(),
            StepKind.CONCLUDE,
            "failed",
        ),
    ],
    ids=[
        "no-request",
        "new-request-starts",
        "finished-repair-ignored",
        "unknown-action-ignored",
        "answer-to-older-request-starts-new",
        "already-answered",
        "running-here-waits",
        "interrupted-by-restart-fails",
        "reboot-boot-id-changed-succeeds",
        "reboot-in-progress-waits",
        "reboot-never-happened-fails",
    ],
)
def test_decide(obj: dict[str, Any], boot: str, issued: frozenset[str], kind: StepKind, result: str) -> None:
    step = decide(obj, boot, issued)
    assert step.kind is kind
    assert step.result == result


def test_a_reboot_a_previous_agent_started_moments_ago_is_waited_for() -> None:
    """A DaemonSet rollout replaced the agent between ``systemctl reboot`` and the power-off: not a failure yet."""
    answer = {"requestId": "r-1", "result": "running", "bootId": "b1", "startedAt": STARTED}
    just_after = parse_time(STARTED) + timedelta(seconds=5)
    assert decide(repair(REBOOT, answer), "b1", frozenset(), just_after).kind is StepKind.WAIT
    too_late = parse_time(STARTED) + REBOOT_GRACE + timedelta(seconds=1)
    late = decide(repair(REBOOT, answer), "b1", frozenset(), too_late)
    assert (late.kind, late.result) == (StepKind.CONCLUDE, "failed")
    assert decide(repair(REBOOT, answer), "b2", frozenset(), just_after).result == "succeeded"


def test_a_validation_a_restart_interrupted_is_run_again() -> None:
    request = {"id": "v-1", "action": "validate", "dcgmDiagLevel": 2}
    step = decide(repair(request, {"requestId": "v-1", "result": "running"}), "b1", frozenset())
    assert (step.kind, step.action, step.diag_level) == (StepKind.START, "validate", 2)
    assert decide(repair(request, {"requestId": "v-1", "result": "running"}), "b1", frozenset({"v-1"})).kind is (
        StepKind.WAIT
    )


def test_start_carries_the_gpu() -> None:
    step = decide(repair(RESET), "b1")
    assert step.gpu.index == 3 and step.gpu.uuid == "GPU-3"
    assert step.action == "gpu-reset" and step.request_id == "r-2"


def test_reboot_success_message_names_both_boot_ids() -> None:
    step = decide(repair(REBOOT, {"requestId": "r-1", "result": "running", "bootId": "old"}), "new")
    assert "old" in step.message and "new" in step.message
