"""The operator's Slurm step: what it runs, what it writes, and that an outage is recorded once and backed off."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from repairbot.machine import Decision, RepairView, Step
from repairbot.operator.slurm_step import SlurmStep, slurm_step_pending
from repairbot.policy import SlurmPolicy
from repairbot.slurm import SlurmClient

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
NAME = "gpu-node-001-20261202100000"
IDLE = "NodeName=gpu-node-001 State=IDLE Partitions=gpu\n"
DOWN = "slurm_load_node error: Unable to contact slurm controller (connect failure)"


class Slurm:
    """Answers as scontrol/squeue do; ``down`` makes every call fail as with slurmctld stopped."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.down:
            return subprocess.CompletedProcess(list(argv), 1, "", DOWN)
        out = IDLE if argv[0] == "scontrol" and "show" in argv else ""
        return subprocess.CompletedProcess(list(argv), 0, out, "")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def step_with(slurm: Slurm, clock: Clock | None = None) -> SlurmStep:
    client = SlurmClient(runner=slurm)
    return SlurmStep(SlurmPolicy(enabled=True), client, monotonic=clock or Clock())


def repair(status: dict[str, Any]) -> RepairView:
    return RepairView.from_object({"metadata": {"name": NAME}, "spec": {"nodeName": "gpu-node-001"}, "status": status})


LABELS = {"repairbot.io/slurm-node": "gpu-node-001"}
CORDONED = {"phase": "Cordoned", "reason": "xid-79", "acknowledgedAt": "2026-12-02T10:00:00Z", "history": []}


def test_a_node_without_the_label_is_no_slurm_node() -> None:
    slurm = Slurm()
    assert step_with(slurm).read({}) is None and not slurm.calls


def test_the_cordon_drains_in_slurm_and_records_it() -> None:
    slurm = Slurm()
    step = step_with(slurm)
    view = step.read(LABELS)
    assert view is not None and view.state == "IDLE"
    patch = step.apply(repair(CORDONED), Decision(Step.NOTHING), view, CORDONED, T0)
    assert patch is not None
    drain = next(call for call in slurm.calls if "State=DRAIN" in call)
    assert f"Reason=repairbot: xid-79 (gpurepair {NAME})" in drain
    assert patch["slurm"]["drainedByRepairBot"] is True and patch["history"][-1]["step"] == "slurm-drain"


def test_an_outage_is_recorded_once_backed_off_and_cleared_when_slurm_answers() -> None:
    slurm, clock = Slurm(), Clock()
    step = step_with(slurm, clock)
    slurm.down = True
    view = step.read(LABELS)
    assert view is not None and not view.readable
    tries = len(slurm.calls)
    assert tries == 3  # tenacity: the unreachable controller is tried three times
    patch = step.apply(repair(CORDONED), None, view, CORDONED, T0)
    assert patch is not None
    (condition,) = [c for c in patch["conditions"] if c["type"] == "SlurmError"]
    assert condition["status"] == "True" and condition["reason"] == "ControllerUnreachable"
    status = CORDONED | patch
    again = step.read(LABELS)  # within the back-off: Slurm is not asked again
    assert again is not None and not again.readable and len(slurm.calls) == tries
    assert step.apply(repair(status), None, again, status, T0) is None  # the same error is not written twice

    slurm.down = False
    clock.now += 31
    back = step.read(LABELS)
    assert back is not None and back.readable
    patch = step.apply(repair(status), None, back, status, T0)
    assert patch is not None
    (condition,) = [c for c in patch["conditions"] if c["type"] == "SlurmError"]
    assert condition["status"] == "False" and condition["reason"] == "Recovered"
    assert patch["slurm"]["drainedByRepairBot"] is True  # the drain it owed caught up


def test_a_finished_repair_owes_slurm_its_resume() -> None:
    owed = {"phase": "Succeeded", "acknowledgedAt": "x", "slurm": {"node": "gpu-node-001", "drainedByRepairBot": True}}
    assert slurm_step_pending({"status": owed})
    assert not slurm_step_pending({"status": owed | {"slurm": owed["slurm"] | {"resumed": True}}})
    assert not slurm_step_pending({"status": {"phase": "Succeeded"}})
