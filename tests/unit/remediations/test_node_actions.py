"""The node-local remediations' own logic, against a host that records the commands it is asked to run.

The recording host is a plain implementation of the :class:`Host` protocol
(the seam the agent's real host and the sandbox's simulated one implement),
so these tests read the command sequences the real node would see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from repairbot.model import GpuRef
from repairbot.remediations.action import ActionOutcome, NodeContext
from repairbot.remediations.driver_reload import DRIVER_RELOAD, NVML_HOLDERS
from repairbot.remediations.gpu_reset import GPU_RESET, reset_target
from repairbot.remediations.reboot import REBOOT

UUID = "GPU-0b9e1a7c-4e55-11ee-be56-0242ac120002"


@dataclass
class RecordingHost:
    """Answers every command with exit 0, except those listed in ``failing``; remembers what ran."""

    holders: list[int] = field(default_factory=list)
    failing: frozenset[str] = frozenset()
    ran: list[tuple[str, bool]] = field(default_factory=list)

    def boot_id(self) -> str:
        return "boot-a"

    def gpu_processes(self, gpu: GpuRef) -> list[int]:
        return self.holders

    def run(self, args: Sequence[str], *, check: bool = True) -> ActionOutcome:
        line = " ".join(args)
        self.ran.append((line, check))
        if line in self.failing and check:
            return ActionOutcome(False, f"{line} exited 1: boom")
        return ActionOutcome(True, f"{line}: ok")

    @property
    def commands(self) -> list[str]:
        return [line for line, _ in self.ran]


def test_gpu_reset_turns_persistence_off_around_the_reset_of_the_named_gpu() -> None:
    host = RecordingHost()
    outcome = GPU_RESET.run(NodeContext(host, GpuRef(index=3, uuid=UUID, pci="0000:2a:00.0")))
    assert outcome.ok
    assert host.ran == [
        (f"nvidia-smi -pm 0 -i {UUID}", False),
        (f"nvidia-smi --gpu-reset -i {UUID}", True),
        (f"nvidia-smi -pm 1 -i {UUID}", False),
    ]


def test_gpu_reset_names_the_gpu_by_uuid_else_pci_else_index_else_resets_all() -> None:
    assert reset_target(GpuRef(index=3, uuid=UUID, pci="0000:2a:00.0")) == ["-i", UUID]
    assert reset_target(GpuRef(index=3, pci="0000:2a:00.0")) == ["-i", "0000:2a:00.0"]
    assert reset_target(GpuRef(index=3)) == ["-i", "3"]
    assert reset_target(GpuRef(index=0)) == ["-i", "0"]
    assert reset_target(GpuRef()) == []


def test_gpu_reset_is_refused_while_a_process_holds_the_gpu_and_nothing_runs() -> None:
    host = RecordingHost(holders=[4242])
    outcome = GPU_RESET.run(NodeContext(host, GpuRef(index=1, pci="0000:2a:00.0")))
    assert (outcome.ok, outcome.refused) == (False, True)
    assert "4242" in outcome.message and "0000:2a:00.0" in outcome.message
    assert host.ran == []


def test_a_failed_reset_is_the_outcome_and_persistence_still_comes_back() -> None:
    host = RecordingHost(failing=frozenset({f"nvidia-smi --gpu-reset -i {UUID}"}))
    outcome = GPU_RESET.run(NodeContext(host, GpuRef(uuid=UUID)))
    assert not outcome.ok and not outcome.refused and "exited 1" in outcome.message
    assert host.commands[-1] == f"nvidia-smi -pm 1 -i {UUID}"


def test_driver_reload_stops_the_nvml_holders_around_the_modules() -> None:
    host = RecordingHost()
    assert DRIVER_RELOAD.run(NodeContext(host)).ok
    stops = [f"systemctl stop {s}" for s in NVML_HOLDERS]
    starts = [f"systemctl start {s}" for s in NVML_HOLDERS]
    unload = "modprobe -r nvidia_uvm nvidia_drm nvidia_modeset nvidia"
    assert host.commands == [*stops, unload, "modprobe nvidia", *starts]
    assert [check for line, check in host.ran if line.startswith("systemctl")] == [False] * 2 * len(NVML_HOLDERS)


def test_driver_reload_stops_at_a_failed_unload() -> None:
    unload = "modprobe -r nvidia_uvm nvidia_drm nvidia_modeset nvidia"
    host = RecordingHost(failing=frozenset({unload}))
    outcome = DRIVER_RELOAD.run(NodeContext(host))
    assert not outcome.ok and unload in outcome.message
    assert "modprobe nvidia" not in host.commands


def test_driver_reload_is_refused_while_processes_hold_gpus() -> None:
    host = RecordingHost(holders=[7, 9])
    outcome = DRIVER_RELOAD.run(NodeContext(host))
    assert outcome.refused and "[7, 9]" in outcome.message and host.ran == []


def test_reboot_asks_systemd() -> None:
    host = RecordingHost()
    assert REBOOT.run(NodeContext(host)).ok
    assert host.ran == [("systemctl reboot", True)]
