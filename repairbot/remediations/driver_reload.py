"""Unload and reload the NVIDIA kernel modules: the rung for a driver wedged on a node whose GPUs answer.

Run by the agent on its node, after the drain. ``modprobe -r`` fails while
anything holds the driver, so the node's own NVML clients (persistenced, DCGM,
dcgm-exporter) are stopped around it and started again after; a workload
process still holding a GPU is refused up front, as a reset refuses it.
The modules go in dependency order: uvm, drm and modeset sit on ``nvidia``.

Safe to repeat: stopping stopped services and loading loaded modules change
nothing (unloading modules already gone fails, harmlessly).
"""

from __future__ import annotations

from dataclasses import dataclass

from repairbot.model import Action, GpuRef
from repairbot.remediations.action import ActionOutcome, NodeContext, RunsOn, Settles

NVML_HOLDERS = ("nvidia-persistenced", "nvidia-dcgm", "nv-hostengine", "dcgm-exporter")
"""Node-local NVML clients that hold the driver open; systemd units on the host."""
MODULES = ("nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")


@dataclass(frozen=True, slots=True)
class DriverReload:
    action: Action = Action.DRIVER_RELOAD
    runs: RunsOn = RunsOn.AGENT
    settles: Settles = Settles.ON_RETURN
    repeat_safe: bool = True

    def run(self, ctx: NodeContext) -> ActionOutcome:
        holders = ctx.host.gpu_processes(GpuRef())
        if holders:
            return ActionOutcome(False, f"refused: processes {holders} still hold GPUs; drain them first", refused=True)
        for service in NVML_HOLDERS:
            ctx.host.run(["systemctl", "stop", service], check=False)
        unload = ctx.host.run(["modprobe", "-r", *MODULES])
        if not unload.ok:
            return unload
        load = ctx.host.run(["modprobe", "nvidia"])
        for service in NVML_HOLDERS:
            ctx.host.run(["systemctl", "start", service], check=False)
        return load


DRIVER_RELOAD = DriverReload()
