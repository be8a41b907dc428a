"""Operator benchmarks: MTTA at fleet scale, cordon throughput in a burst, operator-added time, memory.

Run: ``.venv/bin/python benchmarks/operator_bench.py [--quick]``. Writes
``benchmarks/results/operator.json`` and prints a table.

* **MTTA** (finding detected → node cordoned and tainted) over a paced stream
  of faults on a large simulated fleet. Findings enter through intake over
  HTTP, exactly as the agent sends them; the clock is the GPURepair's own
  ``detectedAt`` → ``acknowledgedAt``.
* **Burst**: many faults at once (budget and breaker opened wide) — how fast
  the operator cordons them all, and the p99 MTTA under that load.
* **Operator-added time per repair** on a small sandbox with agents:
  MTTR minus the simulated reboot and the policy's waits, i.e. what RepairBot
  itself spends between steps.
* **Memory**: the operator as its own process (``repairbot operator``) watching
  a fleet of idle nodes; its RSS after the initial listing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, rss_mib, summary, write_result

from repairbot.kube.client import api_client
from repairbot.kube.intake import Intake
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, GpuRef, Severity, parse_time
from repairbot.sim.background import BackgroundSandbox
from repairbot.sim.host import ActionTimes
from repairbot.sim.sandbox import SandboxConfig

WIDE_OPEN = {
    "budget": {"maxUnavailable": "100%"},
    "breaker": {"maxFaults": 100000, "maxPerDomain": 100000, "settleTime": "0s"},
    "actionTimeouts": {"reboot": "1h"},
}


def write_policy(directory: Path, overrides: dict[str, Any]) -> Path:
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path


def xid79(gpu: int) -> Finding:
    return Finding(
        code="xid-79",
        message="benchmark: GPU has fallen off the bus",
        action=Action.REBOOT,
        severity=Severity.FATAL,
        gpu=GpuRef(index=gpu),
        xid=79,
        first_seen=datetime.now(UTC),
    )


def mtta_seconds(kube: client.ApiClient, count: int, timeout: float) -> list[float]:
    """Wait until ``count`` repairs are acknowledged; their MTTA in seconds."""
    custom = client.CustomObjectsApi(kube)
    deadline = time.monotonic() + timeout
    while True:
        items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        acked = [r for r in items if (r.get("status") or {}).get("acknowledgedAt")]
        if len(acked) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [
        (parse_time(r["status"]["acknowledgedAt"]) - parse_time(r["status"]["detectedAt"])).total_seconds()
        for r in acked
    ]


def operator_process(kubeconfig: str, policy: Path) -> subprocess.Popen[bytes]:
    """``repairbot operator`` as its own process, as in a pod: it does not share a GIL with the API server."""
    env = {**os.environ, "POD_NAMESPACE": "repairbot"}
    command = [
        sys.executable, "-m", "repairbot.cli", "operator", "--kubeconfig", kubeconfig, "--policy", str(policy),
        "--metrics-port", "0", "--health-port", "0", "--no-leader-election",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_mtta(nodes: int, faults: int, rate: float, burst: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        policy = write_policy(Path(root), WIDE_OPEN)
        config = SandboxConfig(state_dir=Path(root) / "state", nodes=nodes, agents=False, operator=False)
        with BackgroundSandbox(config) as sandbox:
            operator = operator_process(sandbox.state["kubeconfig"], policy)
            time.sleep(6 + nodes / 2000)  # start-up, priming the fleet cache
            kube = api_client(sandbox.state["kubeconfig"])
            intake = Intake(kube)
            names = sandbox.state["nodes"]
            started = time.monotonic()
            for i in range(faults):
                intake.report(names[i], [xid79(i % 8)])
                time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
            paced = mtta_seconds(kube, faults, timeout=120)
            burst_nodes = names[faults : faults + burst]
            burst_started = time.monotonic()
            for i, name in enumerate(burst_nodes):
                intake.report(name, [xid79(i % 8)])
            sent = time.monotonic() - burst_started
            everything = mtta_seconds(kube, faults + len(burst_nodes), timeout=180)
            took = time.monotonic() - burst_started
            burst_mtta = sorted(everything)[-len(burst_nodes) :] if burst_nodes else []
            operator.terminate()
            operator.wait(30)
    return {
        "nodes": nodes,
        "paced": {"faults": faults, "rate_per_s": rate, "mtta_s": summary(paced)},
        "burst": {
            "faults": len(burst_nodes),
            "sent_in_s": sent,
            "all_cordoned_in_s": took,
            "cordons_per_s": len(burst_nodes) / took if took else None,
            "mtta_s": summary(everything[-len(burst_nodes) :]) if burst_nodes else None,
            "slowest_mtta_s": max(burst_mtta) if burst_mtta else None,
        },
    }


def bench_operator_added(repairs: int) -> dict[str, Any]:
    times = ActionTimes(gpu_reset=0.2, driver_reload=0.2, reboot=1.0)
    with tempfile.TemporaryDirectory() as root:
        policy = write_policy(Path(root), {**WIDE_OPEN, "validation": {"dcgmDiagLevel": 0, "quietPeriod": "0s"}})
        config = SandboxConfig(
            state_dir=Path(root) / "state", nodes=repairs, agent_interval=0.5, action_times=times, policy_path=policy
        )
        with BackgroundSandbox(config) as sandbox:
            kube = api_client(sandbox.state["kubeconfig"])
            custom = client.CustomObjectsApi(kube)
            for i, name in enumerate(sandbox.state["nodes"]):
                sandbox.sandbox.agents.members[name].node.inject("xid:79", i % 8)  # type: ignore[union-attr]
                time.sleep(0.3)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
                done = [r for r in items if (r.get("status") or {}).get("phase") == "Succeeded"]
                if len(done) == repairs:
                    break
                time.sleep(0.2)
    mttr = [
        (parse_time(r["status"]["resolvedAt"]) - parse_time(r["status"]["detectedAt"])).total_seconds() for r in done
    ]
    added = [m - times.reboot for m in mttr]
    return {"repairs": len(done), "reboot_s": times.reboot, "mttr_s": summary(mttr), "operator_added_s": summary(added)}


def bench_memory(nodes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        policy = write_policy(Path(root), WIDE_OPEN)
        config = SandboxConfig(state_dir=Path(root) / "state", nodes=nodes, agents=False, operator=False)
        with BackgroundSandbox(config) as sandbox:
            process = operator_process(sandbox.state["kubeconfig"], policy)
            try:
                time.sleep(8 + nodes / 1000)  # start-up and the initial listing of every node
                rss = rss_mib(process.pid)
                cpu_before = _cpu_seconds(process.pid)
                time.sleep(10)
                idle_cpu = (_cpu_seconds(process.pid) - cpu_before) / 10 * 100
            finally:
                process.terminate()
                process.wait(30)
    return {"nodes": nodes, "operator_rss_mib": rss, "idle_cpu_percent": idle_cpu}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for CI")
    args = parser.parse_args()
    if args.quick:
        mtta = bench_mtta(nodes=100, faults=20, rate=10, burst=20)
        added = bench_operator_added(repairs=3)
        memory = [bench_memory(1000)]
    else:
        mtta = bench_mtta(nodes=1000, faults=200, rate=10, burst=200)
        added = bench_operator_added(repairs=8)
        memory = [bench_memory(n) for n in (1000, 5000, 10000)]
    path = write_result("operator", {"quick": args.quick, "mtta": mtta, "operator_added": added, "memory": memory})
    paced, burst = mtta["paced"]["mtta_s"], mtta["burst"]
    rows = [
        (f"MTTA p50 / p99 ({paced['n']} faults at {mtta['paced']['rate_per_s']}/s, {mtta['nodes']} nodes)",
         f"{paced['p50'] * 1000:.0f} ms / {paced['p99'] * 1000:.0f} ms"),
        (f"burst of {burst['faults']}: all cordoned in", f"{burst['all_cordoned_in_s']:.2f} s "
         f"({burst['cordons_per_s']:.0f} cordons/s), worst MTTA {burst['slowest_mtta_s']:.2f} s"),
        (f"operator-added time per repair p50 / p99 ({added['repairs']} repairs)",
         f"{added['operator_added_s']['p50']:.2f} s / {added['operator_added_s']['p99']:.2f} s "
         f"(MTTR p50 {added['mttr_s']['p50']:.2f} s incl. {added['reboot_s']:.1f} s simulated reboot)"),
    ]  # fmt: skip
    for item in memory:
        rows.append((f"operator RSS / idle CPU, {item['nodes']} nodes",
                     f"{item['operator_rss_mib']:.0f} MiB / {item['idle_cpu_percent']:.1f}%"))  # fmt: skip
    rows.append(("results", str(path)))
    print_table("RepairBot operator", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
