"""A simulated machine behind the agent's :class:`~repairbot.agent.host.AgentHost`.

The remediations in :mod:`repairbot.remediations` run here exactly as on a
real node — their own refusals and command sequences — and reach this machine
only through the same primitives: boot id, GPU holders, and :meth:`SimulatedHost.run`,
which acts the host commands they issue (``nvidia-smi``, ``modprobe``,
``systemctl``) out on the simulated hardware, answering as those commands
would (an exit status and a line of output). Resets and reboots take (scaled)
time, change the simulated hardware the way real ones would, and a reboot
gives the node a new boot id — which is how the executor, exactly as on a real
node, learns the reboot happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from repairbot.detectors.kernel_log import normalize_pci
from repairbot.model import GpuRef
from repairbot.remediations.action import ActionOutcome
from repairbot_sim.fake_nvml import FakeGpu
from repairbot_sim.gpu import SimulatedGpuNode


@dataclass(frozen=True, slots=True)
class ActionTimes:
    """How long simulated actions take, in wall seconds (real ones: ~10 s reset, minutes to reboot).

    ``validate`` is the simulated ``dcgmi diag`` (real ones: minutes), long
    enough in tests that need to catch a repair in Validating.
    """

    gpu_reset: float = 0.5
    driver_reload: float = 1.0
    reboot: float = 2.0
    validate: float = 0.0


@dataclass
class SimulatedHost:
    node: SimulatedGpuNode
    times: ActionTimes = field(default_factory=ActionTimes)
    on_reboot_started: Callable[[], None] = lambda: None
    on_reboot_finished: Callable[[], None] = lambda: None
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def boot_id(self) -> str:
        return self.node.boot_id

    def gpu_processes(self, gpu: GpuRef) -> list[int]:
        devices = self.node.backend.devices if gpu.index is None else [self.node.backend.device(gpu.index)]
        return [pid for device in devices for pid in device.pids]

    def run(self, args: Sequence[str], *, check: bool = True) -> ActionOutcome:
        """The host commands the remediations issue, acted out; anything else is "command not found"."""
        command = list(args)
        match command:
            case ["nvidia-smi", "-pm", ("0" | "1"), *rest]:
                code, output = (0, "") if self._devices(rest) else (6, "No devices were found")
            case ["nvidia-smi", "--gpu-reset", *rest]:
                code, output = self._gpu_reset(rest)
            case ["systemctl", ("stop" | "start"), _service]:
                code, output = 0, ""
            case ["systemctl", "reboot"]:
                code, output = self._start_reboot()
            case ["modprobe", "-r", *_modules]:
                code, output = self._unload_driver()
            case ["modprobe", "nvidia"]:
                code, output = self._load_driver()
            case _:
                code, output = 127, f"{command[0] if command else ''}: command not found"
        line = " ".join(command)
        if code != 0 and check:
            return ActionOutcome(False, f"{line} exited {code}: {output}")
        return ActionOutcome(True, f"{line}: ok", details={"output": output})

    def _devices(self, rest: list[str]) -> list[FakeGpu]:
        """The GPUs ``-i <uuid|pci|index>`` names (all without ``-i``); [] when it names none."""
        if rest[:1] != ["-i"] or len(rest) < 2:
            return list(self.node.backend.devices)
        wanted = rest[1]
        return [d for d in self.node.backend.devices if wanted in (d.uuid, str(d.index)) or _same_pci(wanted, d.pci)]

    def _gpu_reset(self, rest: list[str]) -> tuple[int, str]:
        devices = self._devices(rest)
        if not devices:
            return 6, "No devices were found"
        self.sleep(self.times.gpu_reset)
        with self._lock:
            failed = [d.index for d in devices if not self.node.reset_gpu(d.index)]
        if failed:
            return 255, f"GPU(s) {failed}: unable to reset, the GPU is unreachable or in use"
        return 0, f"GPU(s) {[d.index for d in devices]} successfully reset"

    def _unload_driver(self) -> tuple[int, str]:
        if self.gpu_processes(GpuRef()):
            return 1, "modprobe: FATAL: Module nvidia is in use."
        self.sleep(self.times.driver_reload)
        return 0, ""

    def _load_driver(self) -> tuple[int, str]:
        """The driver comes back and initialises every GPU; one that does not is a failed load."""
        with self._lock:
            failed = [d.index for d in self.node.backend.devices if not self.node.reset_gpu(d.index)]
        if failed:
            return 1, f"driver loaded but GPU(s) {failed} did not initialise"
        return 0, ""

    def _start_reboot(self) -> tuple[int, str]:
        """Returns at once, like ``systemctl reboot``; the node comes back with a new boot id later."""
        self.on_reboot_started()
        threading.Thread(target=self._reboot, name=f"reboot-{self.node.name}", daemon=True).start()
        return 0, ""

    def dcgm_diag(self, level: int) -> ActionOutcome | None:
        """A simulated ``dcgmi diag``: it fails where the simulated hardware is broken, as the real one would."""
        self.sleep(self.times.validate)
        broken = [d.index for d in self.node.backend.devices if d.remap_failure or d.lost or not d.visible]
        if broken:
            return ActionOutcome(False, f"dcgmi diag -r {level} failed on GPU(s) {broken}")
        return ActionOutcome(True, f"dcgmi diag -r {level} passed on {len(self.node.backend.devices)} GPUs")

    def power_cycle(self) -> None:
        """What the simulated BMC does on a reset: a cold boot after the (scaled) reboot time."""
        self.on_reboot_started()
        threading.Thread(target=self._cold_boot, name=f"power-cycle-{self.node.name}", daemon=True).start()

    def _cold_boot(self) -> None:
        self.sleep(self.times.reboot)
        with self._lock:
            self.node.power_cycle()
        self.on_reboot_finished()

    def _reboot(self) -> None:
        self.sleep(self.times.reboot)
        with self._lock:
            self.node.reboot()
        self.on_reboot_finished()


def _same_pci(wanted: str, pci: str) -> bool:
    """nvidia-smi takes a PCI bus id in any of its spellings (NVML's ``00000000:18:00.0`` or the short one)."""
    try:
        return normalize_pci(wanted) == normalize_pci(pci)
    except ValueError:
        return False
