"""Agent benchmarks: cost of one poll of an 8-GPU node, and injected Xid → GPURepair latency.

Run: ``.venv/bin/python benchmarks/agent_bench.py [--quick]``. Writes
``benchmarks/results/agent.json`` and prints a table.

The poll benchmark runs the production detectors over the simulated NVML
backend and sysfs tree (the real NVML calls cost more; see docs/validation
for a run on a real GPU when one was available). The latency benchmark runs
the whole path over real sockets: fault injected through the sandbox's
control endpoint → NVML event / kernel-log line → agent → intake → emulated
API server → a watcher sees the new GPURepair.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, rss_mib, summary, write_result

from repairbot.agent.assemble import AgentConfig, polled_detectors
from repairbot.agent.runner import NodeAgent
from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot.sim.background import BackgroundSandbox
from repairbot.sim.gpu import SimulatedGpuNode
from repairbot.sim.sandbox import SandboxConfig


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
            SandboxConfig(state_dir=Path(root), nodes=nodes, agent_interval=30.0, operator=False)
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
                    if not arrived.wait_for(lambda key=key: key in seen, timeout=10):
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
    polls, injections = (50, 20) if args.quick else (1000, 200)
    poll = bench_poll(polls)
    latency = bench_latency(injections)
    path = write_result("agent", {"quick": args.quick, "poll": poll, "xid_to_gpurepair": latency})
    wall = poll["wall_ms"]
    lat = latency["latency_ms"]
    assert isinstance(wall, dict) and isinstance(lat, dict)
    print_table(
        "RepairBot agent",
        [
            ("poll of 8 GPUs, wall p50 / p99", f"{wall['p50']:.2f} ms / {wall['p99']:.2f} ms ({polls} polls)"),
            (
                "poll CPU time",
                f"{poll['cpu_ms_per_poll']:.2f} ms/poll = {poll['cpu_percent_at_10s_interval']:.3f}% of a core at 10 s",
            ),
            ("agent process RSS", f"{poll['rss_mib']:.1f} MiB (growth over run {poll['rss_growth_mib']:+.1f} MiB)"),
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
