"""Agent benchmarks: the agent's CPU and memory per 8-GPU node, one poll's cost, and injected Xid → GPURepair.

Run: ``.venv/bin/python benchmarks/agent_bench.py [--quick]``. Writes
``benchmarks/results/agent.json`` and prints a table.

* **Per node**: one agent as its own process (``agent_process.py``: composed
  as ``repairbot agent`` composes it, NVML events, kernel log, polls every
  10 s, the executor with its default 5 s resync; simulated backends),
  connected to a cluster process, healthy; its CPU seconds per wall second,
  RSS, and API requests per minute over a window.
* **One poll** runs the production detectors over the simulated NVML backend
  and sysfs tree (the real NVML calls cost more; see docs/validation for a
  run on a real GPU when one was available).
* **Latency** runs the whole path over real sockets: fault injected through
  the sandbox's control endpoint → NVML event / kernel-log line → agent →
  intake → emulated API server → a watcher sees the new GPURepair.
"""

from __future__ import annotations

import argparse
import functools
import operator
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, rss_mib, summary, write_result
from harness import ClusterProcess, ProcessMeter

from repairbot.agent.assemble import AgentConfig, polled_detectors
from repairbot.agent.runner import NodeAgent
from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.sandbox import SandboxConfig


def bench_agent_process(window: float, interval: float = 10.0) -> dict[str, Any]:
    """One healthy node's agent, alone in a process: CPU seconds per wall second and RSS over ``window``."""
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), 1) as cluster:
        command = [
            sys.executable, str(Path(__file__).parent / "agent_process.py"),
            "--kubeconfig", cluster.state["kubeconfigs"]["agents"][cluster.node_names[0]],
            "--node", cluster.node_names[0], "--root", str(Path(tmp) / "node"), "--interval", str(interval),
        ]  # fmt: skip
        agent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert agent.stdout is not None
            if agent.stdout.readline().strip() != "started":
                raise RuntimeError("the agent process did not start")
            time.sleep(2.0)  # first poll, condition written, executor watching
            meter = ProcessMeter(agent.pid)
            cluster.reset_requests()
            time.sleep(window)
            counts = cluster.requests()
            by_kind: dict[str, float] = {}
            for row in counts["requests"]:
                key = f"{row['verb']} {row['resource']}"
                by_kind[key] = by_kind.get(key, 0) + row["count"] * 60 / window
            return {
                "api_requests_per_minute": counts["total"] * 60 / window,
                "api_requests_per_minute_by_kind": by_kind,
                "window_s": window,
                "poll_interval_s": interval,
                "cpu_per_wall_s": meter.cpu_per_wall(),
                "rss_mib": meter.rss_mib(),
                "peak_rss_mib": meter.peak_rss_mib(),
            }
        finally:
            agent.kill()  # measured; a clean stop would wait out the executor's watch (up to the interval)
            agent.wait(30)


def bench_poll(polls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as root:
        node = SimulatedGpuNode("bench-node", Path(root))
        config = AgentConfig(node="bench-node", sysfs_root=node.sysfs.root, kmsg_path=node.kmsg_path, expected_gpus=8)
        agent = NodeAgent(node="bench-node", detectors=polled_detectors(config, node.backend))
        agent.poll_once()  # warm caches, first-seen rates
        rss_before = rss_mib()
        walls: list[float] = []
        cpu_start = time.process_time()
        for _ in range(polls):
            started = time.perf_counter()
            agent.poll_once()
            walls.append((time.perf_counter() - started) * 1000)
        cpu_ms = (time.process_time() - cpu_start) * 1000 / polls
        return {
            "polls": polls,
            "gpus": 8,
            "wall_ms": summary(walls),
            "cpu_ms_per_poll": cpu_ms,
            "cpu_percent_at_10s_interval": cpu_ms / 10_000 * 100,
            "rss_mib": rss_mib(),
            "rss_growth_mib": rss_mib() - rss_before,
        }


# Non-application Xids: each one must reach a GPURepair. One code per GPU per node keeps
# every injection a fresh finding (no burst debouncing), as on a real fleet.
XIDS = (48, 79, 95, 119, 120, 62, 64, 74)


def bench_latency(injections: int) -> dict[str, object]:
    nodes = max(1, -(-injections // len(XIDS)))
    with (
        tempfile.TemporaryDirectory() as root,
        BackgroundSandbox(
            SandboxConfig(state_dir=Path(root), nodes=nodes, agent_interval=10.0, operator=False)
        ) as sandbox,
    ):
        custom = client.CustomObjectsApi(api_client(sandbox.state["kubeconfig"]))
        seen: dict[tuple[str, str], tuple[float, str]] = {}  # (node, code) → (when, ADDED|MODIFIED)
        arrived = threading.Condition()
        stop = threading.Event()

        def watch_repairs() -> None:
            watcher = watch.Watch()
            while not stop.is_set():
                try:
                    stream = watcher.stream(
                        custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, timeout_seconds=1
                    )
                    for event in stream:
                        now = time.perf_counter()
                        obj = event["object"]
                        with arrived:
                            for finding in obj["spec"].get("findings", []):
                                seen.setdefault((obj["spec"]["nodeName"], finding["code"]), (now, event["type"]))
                            arrived.notify_all()
                        if stop.is_set():
                            break
                except Exception:
                    if not stop.is_set():
                        raise

        watcher_thread = threading.Thread(target=watch_repairs, daemon=True)
        watcher_thread.start()
        time.sleep(0.5)
        created: list[float] = []
        merged: list[float] = []
        with httpx.Client(base_url=sandbox.state["control"], timeout=10) as control:
            for i in range(injections):
                node = sandbox.state["nodes"][i % nodes]
                code = XIDS[i // nodes]
                key = (node, f"xid-{code}")
                started = time.perf_counter()
                control.post(
                    f"/nodes/{node}/faults", json={"fault": f"xid:{code}", "gpu": i // nodes}
                ).raise_for_status()
                with arrived:
                    if not arrived.wait_for(functools.partial(operator.contains, seen, key), timeout=10):
                        raise RuntimeError(f"injection {i}: xid {code} on {node} not in a GPURepair within 10 s")
                when, kind = seen[key]
                (created if kind == "ADDED" else merged).append((when - started) * 1000)
        stop.set()
        watcher_thread.join(3)
        everything = created + merged
        return {
            "injections": injections,
            "nodes": nodes,
            "latency_ms": summary(everything),
            "new_repair_ms": summary(created),
            "merge_into_repair_ms": summary(merged) if merged else None,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for CI")
    args = parser.parse_args()
    polls, injections, window = (50, 20, 12.0) if args.quick else (1000, 200, 60.0)
    process = bench_agent_process(window)
    poll = bench_poll(polls)
    latency = bench_latency(injections)
    path = write_result(
        "agent", {"quick": args.quick, "agent_process": process, "poll": poll, "xid_to_gpurepair": latency}
    )
    wall = poll["wall_ms"]
    lat = latency["latency_ms"]
    assert isinstance(wall, dict) and isinstance(lat, dict)
    print_table(
        "RepairBot agent",
        [
            (
                "agent process per 8-GPU node, CPU",
                f"{process['cpu_per_wall_s']:.4f} s/s ({window:g} s window, polls every 10 s, healthy node)",
            ),
            ("agent process per 8-GPU node, RSS", f"{process['rss_mib']:.0f} MiB (peak {process['peak_rss_mib']:.0f})"),
            (
                "agent API requests per minute, healthy",
                f"{process['api_requests_per_minute']:.0f} ("
                + ", ".join(f"{k} {v:.0f}" for k, v in process["api_requests_per_minute_by_kind"].items())
                + ")",
            ),
            ("poll of 8 GPUs, wall p50 / p99", f"{wall['p50']:.2f} ms / {wall['p99']:.2f} ms ({polls} polls)"),
            (
                "poll CPU time",
                f"{poll['cpu_ms_per_poll']:.2f} ms/poll = {poll['cpu_percent_at_10s_interval']:.3f}% of a core at 10 s",
            ),
            (
                "benchmark process RSS over the polls",
                f"{poll['rss_mib']:.1f} MiB (growth {poll['rss_growth_mib']:+.1f} MiB)",
            ),
            ("Xid injected → GPURepair, p50", f"{lat['p50']:.1f} ms"),
            (
                "Xid injected → GPURepair, p99",
                f"{lat['p99']:.1f} ms ({injections} injections, {latency['nodes']} nodes)",
            ),
            ("results", str(path)),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
