"""A simulated machine behind the agent's :class:`~repairbot.agent.host.HostActions`.

Resets and reboots take (scaled) time, change the simulated hardware the way
real ones would, and a reboot gives the node a new boot id — which is how the
executor, exactly as on a real node, learns the reboot happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from repairbot.agent.host import ActionOutcome
from repairbot.model import GpuRef
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

    def reset_gpu(self, gpu: GpuRef) -> ActionOutcome:
        holders = self.gpu_processes(gpu)
        if holders:
            return ActionOutcome(False, f"refused: processes {holders} still hold the GPU", refused=True)
        self.sleep(self.times.gpu_reset)
        indexes = [gpu.index] if gpu.index is not None else [d.index for d in self.node.backend.devices]
        with self._lock:
            failed = [i for i in indexes if not self.node.reset_gpu(i)]
        if failed:
            return ActionOutcome(False, f"nvidia-smi --gpu-reset failed for GPU(s) {failed}: GPU unreachable")
        return ActionOutcome(True, f"GPU(s) {indexes} reset")

    def reload_driver(self) -> ActionOutcome:
        if self.gpu_processes(GpuRef()):
            return ActionOutcome(False, "refused: processes still hold GPUs", refused=True)
        self.sleep(self.times.driver_reload)
        with self._lock:
            failed = [d.index for d in self.node.backend.devices if not self.node.reset_gpu(d.index)]
        if failed:
            return ActionOutcome(False, f"driver reloaded but GPU(s) {failed} did not initialise")
        return ActionOutcome(True, "nvidia driver reloaded")

    def reboot(self) -> ActionOutcome:
        """Returns at once, like ``systemctl reboot``; the node comes back with a new boot id later."""
        self.on_reboot_started()
        threading.Thread(target=self._reboot, name=f"reboot-{self.node.name}", daemon=True).start()
        return ActionOutcome(True, "reboot started")

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
