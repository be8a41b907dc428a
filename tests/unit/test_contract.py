"""The operator↔agent contract: what the operator writes under status.request and the agent under status.agent
is read back the same by both sides, and a broken status is a clear "nothing to do", never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.agent.executor import StepKind, decide
from repairbot.contract import VALIDATE, AgentResult, Exchange, Request, answer_status, is_active, is_terminal
from repairbot.machine import RepairView
from repairbot.model import Action, GpuRef, Phase, parse_time

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
RESET_REQUEST = {
    "id": "gpu-node-001-20261122000000-1-gpu-reset",
    "action": "gpu-reset",
    "requestedAt": "2026-11-22T10:00:00.000Z",
    "deadline": "2026-11-22T10:05:00.000Z",
    "gpu": {"index": 3, "uuid": "GPU-3", "pci": "0000:3b:00.0"},
}
VALIDATE_REQUEST = {
    "id": "gpu-node-001-20261122000000-1-validate",
    "action": "validate",
    "requestedAt": "2026-11-22T10:00:00.000Z",
    "deadline": "2026-11-22T10:10:00.000Z",
    "dcgmDiagLevel": 2,
    "requireLoadCheck": True,
}


def gpurepair(status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "gpu-node-001-20261122000000"}, "spec": {"nodeName": "gpu-node-001"}, "status": status}


def test_a_gpu_reset_request_reads_the_same_on_the_operator_and_the_agent_side() -> None:
    repair = gpurepair({"phase": "Remediating", "request": RESET_REQUEST})
    request = Exchange.from_repair(repair).request
    assert request == Request(
        id=RESET_REQUEST["id"],
        action="gpu-reset",
        requested_at=parse_time("2026-11-22T10:00:00.000Z"),
        deadline=parse_time("2026-11-22T10:05:00.000Z"),
        gpu=GpuRef(index=3, uuid="GPU-3", pci="0000:3b:00.0"),
    )
    assert request.action == Action.GPU_RESET and request.for_agent
    assert RepairView.from_object(repair).request == request
    step = decide(repair, "boot-1")
    assert (step.kind, step.request_id, step.action, step.gpu) == (StepKind.START, request.id, "gpu-reset", request.gpu)


def test_a_validation_request_carries_its_dcgm_level_and_load_check_to_the_agent() -> None:
    repair = gpurepair({"phase": "Validating", "request": VALIDATE_REQUEST})
    request = Exchange.from_repair(repair).request
    assert request is not None and (request.dcgm_diag_level, request.require_load_check) == (2, True)
    step = decide(repair, "boot-1")
    assert (step.kind, step.diag_level, step.load_check) == (StepKind.START, 2, True)


def test_a_power_cycle_request_is_for_the_bmc_not_the_agent() -> None:
    repair = gpurepair({"phase": "Remediating", "request": {"id": "p-1", "action": "power-cycle", "bootId": "b0"}})
    request = Exchange.from_repair(repair).request
    assert request is not None and request.boot_id == "b0" and not request.for_agent
    assert decide(repair, "b0").kind is StepKind.IDLE


def test_the_answer_the_agent_writes_is_the_answer_the_operator_reads() -> None:
    started = answer_status("r-1", AgentResult.RUNNING, "reboot started", NOW, finished=False, boot_id="b0")
    assert started["finishedAt"] is None and started["details"] is None  # a start clears the old ending
    done = answer_status("r-1", AgentResult.FAILED, "x" * 5000, NOW + timedelta(seconds=3), finished=True)
    merged = {**started, **done}
    exchange = Exchange.from_repair(gpurepair({"request": {"id": "r-1", "action": "reboot"}, "agent": merged}))
    answer = exchange.current_answer
    assert answer is not None
    assert (answer.request_id, answer.result, answer.boot_id) == ("r-1", AgentResult.FAILED, "b0")
    assert (answer.started_at, answer.finished_at) == (NOW, NOW + timedelta(seconds=3))
    assert len(answer.message) == 1000 and answer.malformed == ()


def test_an_answer_about_an_earlier_request_is_stale_and_the_new_request_is_started() -> None:
    status = {"phase": "Remediating", "request": RESET_REQUEST, "agent": {"requestId": "old-1", "result": "failed"}}
    exchange = Exchange.from_repair(gpurepair(status))
    assert exchange.answer is not None and not exchange.answer.answers(exchange.request)
    assert exchange.current_answer is None
    assert decide(gpurepair(status), "boot-1").kind is StepKind.START


@pytest.mark.parametrize(
    "status",
    [None, "garbage", {}, {"request": "nope", "agent": 7}, {"request": {"action": "reboot"}}, {"agent": {"x": {}}}],
    ids=["no-status", "status-not-an-object", "empty", "blocks-not-objects", "request-without-id", "agent-no-answer"],
)
def test_a_missing_or_malformed_status_means_no_request_and_no_answer(status: Any) -> None:
    assert Exchange.from_repair(gpurepair(status)) == Exchange(None, None)


def test_unreadable_fields_are_named_and_left_at_their_defaults() -> None:
    raw = {"id": "v-1", "action": "validate", "deadline": "soon", "dcgmDiagLevel": "high", "gpu": "GPU-3"}
    request = Request.from_status(raw)
    assert request is not None
    assert (request.deadline, request.dcgm_diag_level, request.gpu) == (None, 0, GpuRef())
    assert set(request.malformed) == {"deadline", "dcgmDiagLevel", "gpu"}
    answer = Exchange.from_repair(
        gpurepair({"request": raw, "agent": {"requestId": "v-1", "result": "exploded", "startedAt": "then"}})
    ).answer
    assert answer is not None and answer.result is None and set(answer.malformed) == {"result", "startedAt"}


def test_the_operator_still_refuses_a_request_whose_deadline_it_cannot_read() -> None:
    repair = gpurepair({"phase": "Remediating", "request": {**RESET_REQUEST, "deadline": "soon"}})
    with pytest.raises(ValueError, match=r"status\.request\.deadline"):
        RepairView.from_object(repair)


def test_terminal_phases_end_a_repair_and_every_other_phase_keeps_it_active() -> None:
    for phase in Phase:
        assert is_terminal(phase.value) is phase.is_terminal
        assert is_active(gpurepair({"phase": phase.value})) is not phase.is_terminal
    assert is_active(gpurepair({})) and is_active({"metadata": {}})
    assert not is_terminal(None) and not is_terminal("Exploded")


def test_a_request_the_operator_writes_reads_back_as_the_same_request() -> None:
    """One contract, both ways: what ``to_status`` writes, ``from_status`` parses unchanged (the agent's view)."""
    asked = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    for request in (
        Request("r-1-gpu-reset", "gpu-reset", asked, asked, gpu=GpuRef(index=3, pci="0000:2b:00.0")),
        Request("r-2-power-cycle", "power-cycle", asked, asked + timedelta(minutes=15), boot_id="boot-a"),
        Request("r-2-validate", VALIDATE, asked, asked, dcgm_diag_level=2, require_load_check=True),
    ):
        assert Request.from_status(request.to_status()) == request
    reset = Request("r-1-reboot", "reboot", asked, asked).to_status()
    assert set(reset) == {"id", "action", "requestedAt", "deadline"}, "a reboot carries no GPU, boot id or diag level"
