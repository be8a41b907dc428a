"""The agent's seam to its machine: the primitives remediations and validation need, nothing more.

The repairs themselves (the ``nvidia-smi`` reset sequence, the driver reload,
``systemctl reboot``) live one per module in :mod:`repairbot.remediations`
and reach the machine only through :class:`~repairbot.remediations.action.Host`:
boot id, GPU holders, run a command. :class:`AgentHost` adds the one thing
only validation uses, DCGM's diagnostic. The real implementation,
:class:`LinuxHost`, runs host commands inside PID 1's namespaces (the agent
runs with ``hostPID``); the sandbox plugs in a simulated host that acts the
same commands out on simulated hardware.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from repairbot.model import GpuRef
from repairbot.remediations.action import ActionOutcome, Host

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# Run host commands in PID 1's namespaces: the agent's container has no systemd or kernel modules of its own.
HOST_PREFIX = ("nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--")
# Level 3 takes about half an hour on an 8-GPU node; give it room, bounded.
DCGM_DIAG_TIMEOUT = 3600.0


class AgentHost(Host, Protocol):
    """The node as the agent sees it: the remediations' primitives and DCGM's diagnostic for validation."""

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

    def run(self, args: Sequence[str], *, check: bool = True) -> ActionOutcome:
        """Run ``args`` in the host's namespaces, bounded by ``command_timeout``; the output's tail in details."""
        command = [*HOST_PREFIX, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.command_timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return ActionOutcome(False, f"{' '.join(args)}: {error}")
        output = (done.stdout + done.stderr).strip()[-500:]
        if done.returncode != 0 and check:
            return ActionOutcome(False, f"{' '.join(args)} exited {done.returncode}: {output}")
        return ActionOutcome(True, f"{' '.join(args)}: ok", details={"output": output})
