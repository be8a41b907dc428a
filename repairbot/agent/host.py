"""Node-local actions the executor performs: GPU reset, driver reload, reboot.

:class:`HostActions` is the seam between the agent and the machine. The real
implementation shells out to ``nvidia-smi``, ``modprobe`` and ``systemctl``
inside the host's namespaces (the agent runs with ``hostPID``); the sandbox
plugs in a simulated host with the same methods.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from repairbot.model import GpuRef

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# Run host commands in PID 1's namespaces: the agent's container has no systemd or kernel modules of its own.
HOST_PREFIX = ("nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--")
# Node-local NVML clients that hold the GPU open and make a reset fail with "In use by another client".
# Level 3 takes about half an hour on an 8-GPU node; give it room, bounded.
DCGM_DIAG_TIMEOUT = 3600.0
NVML_HOLDERS = ("nvidia-persistenced", "nvidia-dcgm", "nv-hostengine", "dcgm-exporter")


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an action did. ``refused`` means it was not attempted, with the reason."""

    ok: bool
    message: str
    refused: bool = False
    details: dict[str, str] = field(default_factory=dict)


class HostActions(Protocol):
    def boot_id(self) -> str: ...

    def gpu_processes(self, gpu: GpuRef) -> list[int]:
        """PIDs holding ``gpu`` (all GPUs when the ref is empty)."""
        ...

    def reset_gpu(self, gpu: GpuRef) -> ActionOutcome: ...

    def reload_driver(self) -> ActionOutcome: ...

    def reboot(self) -> ActionOutcome:
        """Start a reboot. Success is judged later, by a changed boot id."""
        ...

    def dcgm_diag(self, level: int) -> ActionOutcome | None:
        """``dcgmi diag -r <level>``; None when DCGM is not installed on this node."""
        ...


class ProcessLister(Protocol):
    """Lists PIDs using a GPU (NVML's running-process query in production)."""

    def __call__(self, gpu: GpuRef) -> list[int]: ...


@dataclass(slots=True)
class LinuxHost:
    """The real machine, reached through ``nsenter`` into PID 1's namespaces."""

    boot_id_path: Path = BOOT_ID_PATH
    command_timeout: float = 120.0
    process_lister: ProcessLister | None = None

    def boot_id(self) -> str:
        return self.boot_id_path.read_text(encoding="utf-8").strip()

    def gpu_processes(self, gpu: GpuRef) -> list[int]:
        return self.process_lister(gpu) if self.process_lister else []

    def reset_gpu(self, gpu: GpuRef) -> ActionOutcome:
        holders = self.gpu_processes(gpu)
        if holders:
            return ActionOutcome(
                False,
                f"refused: processes {holders} still hold GPU {gpu.identity() or 'all'}; drain them first",
                refused=True,
            )
        target = gpu.uuid or gpu.pci
        args = ["nvidia-smi", "--gpu-reset"] + (["-i", target] if target else [])
        # Persistence mode keeps a handle open; NVIDIA's own tooling disables it around a reset.
        self._run(["nvidia-smi", "-pm", "0"] + (["-i", target] if target else []), check=False)
        outcome = self._run(args)
        self._run(["nvidia-smi", "-pm", "1"] + (["-i", target] if target else []), check=False)
        return outcome

    def reload_driver(self) -> ActionOutcome:
        for service in NVML_HOLDERS:
            self._run(["systemctl", "stop", service], check=False)
        unload = self._run(["modprobe", "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"])
        if not unload.ok:
            return unload
        load = self._run(["modprobe", "nvidia"])
        for service in NVML_HOLDERS:
            self._run(["systemctl", "start", service], check=False)
        return load

    def reboot(self) -> ActionOutcome:
        return self._run(["systemctl", "reboot"])

    def dcgm_diag(self, level: int) -> ActionOutcome | None:
        """Run DCGM's active diagnostic; its exit code is its verdict (0 pass, otherwise a failure)."""
        if shutil.which("dcgmi") is None:
            return None
        try:
            done = subprocess.run(
                ["dcgmi", "diag", "-r", str(level)],
                capture_output=True,
                text=True,
                timeout=DCGM_DIAG_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return ActionOutcome(False, f"dcgmi diag -r {level}: {error}")
        tail = (done.stdout + done.stderr).strip()[-800:]
        if done.returncode != 0:
            return ActionOutcome(
                False, f"dcgmi diag -r {level} failed (exit {done.returncode})", details={"output": tail}
            )
        return ActionOutcome(True, f"dcgmi diag -r {level} passed", details={"output": tail})

    def _run(self, args: list[str], *, check: bool = True) -> ActionOutcome:
        command = [*HOST_PREFIX, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.command_timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return ActionOutcome(False, f"{' '.join(args)}: {error}")
        output = (done.stdout + done.stderr).strip()[-500:]
        if done.returncode != 0 and check:
            return ActionOutcome(False, f"{' '.join(args)} exited {done.returncode}: {output}")
        return ActionOutcome(True, f"{' '.join(args)}: ok", details={"output": output})
