"""MTTA side by side: RepairBot's agent, a polling health check, and the manual process (a reference figure).

Run: ``.venv/bin/python benchmarks/mtta_bench.py [--quick]``. Writes
``benchmarks/results/mtta.json`` and prints a table.

MTTA here is *fault injected at the node → node cordoned and tainted*, the
second read off a watch on the nodes (what ``kubectl get nodes`` would show),
not off the operator's own status.

One cluster, one operator process, two arms of simulated GPU nodes, the same
fault (``fall-off-bus``: Xid 79 in the kernel log and NVML, the GPU lost) on
the same schedule (a Poisson stream, alternating between the arms so both see
the same load):

* **RepairBot**: the production agent (``build_agent``: NVML events, kernel
  log, polls every 10 s), reporting to intake and keeping the node's
  ``GPUHealthy`` condition. The action executor is left out: it takes no part
  in detection, and 200 of them re-listing every 10 s would load this
  machine's emulated API server, not a real one.
* **Polling health check**: no event sources; every ``T`` seconds a poll of
  the node's GPU state (the agent's own NVML health and GPU-count checks, as
  ``nvidia-smi``/DCGM health checks see it), reporting to the same intake,
  each node's timer at a random phase. Five real minutes per sample would
  take hours, so it runs at a scaled ``T`` and the table also gives the
  projection to ``T = 300 s``: each fault's measured wait for the next poll is
  multiplied by ``300 / T`` and its measured intake → cordon time added as is.
  A poll that ran late on a busy machine is scaled too, so the projection errs
  high; the table also gives what a uniform poll phase alone would wait.
* **Manual process**: NAVER's measured acknowledgement time, 101 s, quoted as a
  reference row: it is not measured here.

Both arms report to the same operator; drains are held back (``settleTime``
1 h, budget and breaker wide open) so the run measures acknowledgement only.

Every simulated node lives in this process, so each node's agent or poller
runs only around its own fault: an agent starts 2 s before it (threads up,
first poll clean), a poller ``T`` to ``2T`` before it (a uniform phase at the
fault), and each stops once its finding is in intake. Hundreds of idle agents
at once would only measure this process's GIL (their idle wake-ups alone take
a core); ``agent_bench.py`` measures one agent alone.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import ms, print_table, spread, summary, write_result
from harness import ClusterProcess, NodeMarks, OperatorProcess, ProcessMeter, bench_client, write_policy

from repairbot.agent.assemble import AgentConfig, build_agent, polled_detectors
from repairbot.agent.runner import FindingSink, NodeAgent
from repairbot.agent.service import IntakeSink, NodeConditionSink
from repairbot.kube.intake import Intake
from repairbot.model import Finding
from repairbot_sim.gpu import SimulatedGpuNode

MANUAL_REFERENCE_S = 101.0
MANUAL_SOURCE = "NAVER, measured acknowledgement of a GPU fault by the manual process (figure quoted in issue 7)"
PROJECTED_INTERVAL_S = 300.0
AGENT_INTERVAL_S = 10.0  # the agent's production default (repairbot agent --interval)
AGENT_WARMUP_S = 2.0  # an agent starts this long before its node's fault: threads up, first poll done
FAULT = "fall-off-bus"
ACK_ONLY_POLICY = {
    "budget": {"maxUnavailable": "100%"},
    "breaker": {"maxFaults": 1_000_000, "maxPerDomain": 1_000_000, "settleTime": "1h"},
}


@dataclass
class TimedSink:
    """Notes when each node first handed a finding to intake, hands it on, then calls ``after``."""

    inner: FindingSink
    detected: dict[str, float]
    after: Callable[[], None] = lambda: None

    def report(self, node: str, findings: list[Finding]) -> None:
        self.detected.setdefault(node, time.time())
        self.inner.report(node, findings)
        self.after()


def arm(
    names: list[str], root: Path, kubeconfig: str, detected: dict[str, float], *, poll_every: float | None = None
) -> tuple[list[NodeAgent], dict[str, SimulatedGpuNode]]:
    """RepairBot's agent per node; or, with ``poll_every``, a health check at that interval (the agent's
    polled GPU checks only: no NVML events, no kernel log, no node condition)."""
    agents, nodes = [], {}
    for name in names:
        node = SimulatedGpuNode(name, root / name)
        config = AgentConfig(
            node=name, sysfs_root=node.sysfs.root, kmsg_path=node.kmsg_path, expected_gpus=8, interval=AGENT_INTERVAL_S
        )
        api = bench_client(kubeconfig)
        if poll_every is None:
            agent = build_agent(config, node.backend)
            agent.conditions = NodeConditionSink(api)
        else:
            agent = NodeAgent(node=name, detectors=polled_detectors(config, node.backend), interval=poll_every)
        # Its job done once the finding is in intake: stop, so idle agents do not pile up in this process.
        agent.sink = TimedSink(IntakeSink(Intake(api)), detected, after=agent.request_stop)
        agents.append(agent)
        nodes[name] = node
    return agents, nodes


def bench_mtta(nodes: int, faults: int, rate: float, interval: float, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), nodes) as cluster:
        root = Path(tmp)
        policy = write_policy(root, ACK_ONLY_POLICY)
        with OperatorProcess(root, cluster.operator_kubeconfig, policy) as operator:
            ready_s = operator.wait_ready(cluster)
            chosen = rng.sample(cluster.node_names, 2 * faults)
            arm_a, arm_b = chosen[0::2], chosen[1::2]
            detected: dict[str, float] = {}
            agents, agent_nodes = arm(arm_a, root / "agents", cluster.kubeconfig, detected)
            pollers, poller_nodes = arm(arm_b, root / "pollers", cluster.kubeconfig, detected, poll_every=interval)
            marks = NodeMarks(cluster.state["api"], token=cluster.admin_token, ca=cluster.api_ca).start()
            starts = {agent.node: agent.start for agent in agents + pollers}
            targets = agent_nodes | poller_nodes
            plan: list[tuple[float, str, str]] = []  # (when, "start" | "inject", node)
            due = time.monotonic() + interval + AGENT_WARMUP_S + 1.0
            for name in (n for pair in zip(arm_a, arm_b, strict=True) for n in pair):
                due += rng.expovariate(rate)
                lead = AGENT_WARMUP_S if name in agent_nodes else interval + rng.uniform(0, interval)
                plan += [(due - lead, "start", name), (due, "inject", name)]
            injected: dict[str, float] = {}
            meters = {"operator": ProcessMeter(operator.pid), "cluster": ProcessMeter(cluster.pid),
                      "benchmark (agents, pollers)": ProcessMeter(os.getpid())}  # fmt: skip
            for when, kind, name in sorted(plan):
                time.sleep(max(0.0, when - time.monotonic()))
                if kind == "start":
                    starts[name]()
                else:
                    gpu = len(injected) % 8
                    injected[name] = time.time()
                    targets[name].inject(FAULT, gpu)
            complete = marks.wait_for(chosen, timeout=interval + 120)
            cpu = {name: meter.cpu_per_wall() for name, meter in meters.items()}
            marks.stop()
            for agent in agents + pollers:
                agent.request_stop()
    missing = [n for n in chosen if n not in marks.marked]
    if not complete:
        print(f"warning: {len(missing)} nodes never cordoned: {missing[:5]}", file=sys.stderr)

    def times(names: list[str]) -> dict[str, list[float]]:
        done = [n for n in names if n in marks.marked and n in detected]
        return {
            "mtta": [marks.marked[n] - injected[n] for n in done],
            "detect": [detected[n] - injected[n] for n in done],
            "pipeline": [marks.marked[n] - detected[n] for n in done],
        }

    ours, polled = times(arm_a), times(arm_b)
    scale = PROJECTED_INTERVAL_S / interval
    projected = [d * scale + p for d, p in zip(polled["detect"], polled["pipeline"], strict=True)]
    result: dict[str, Any] = {
        "nodes": nodes,
        "faults_per_arm": faults,
        "fault": FAULT,
        "rate_per_s": rate,
        "operator_ready_s": ready_s,
        "cpu_per_wall_s_during_faults": cpu,
        "never_cordoned": missing,
        "repairbot": {
            "agent_poll_interval_s": AGENT_INTERVAL_S,
            "mtta_s": summary(ours["mtta"]),
            "detect_s": summary(ours["detect"]),
            "intake_to_cordon_s": summary(ours["pipeline"]),
        },
        "poller": {
            "interval_s": interval,
            "mtta_s": summary(polled["mtta"]),
            "detect_s": summary(polled["detect"]),
            "intake_to_cordon_s": summary(polled["pipeline"]),
            "projected_interval_s": PROJECTED_INTERVAL_S,
            "projection": f"detect_s x {scale:g} + intake_to_cordon_s, per fault",
            "projected_mtta_s": summary(projected),
            "uniform_phase_wait_s": {f"p{q}": PROJECTED_INTERVAL_S * q / 100 for q in (50, 90, 99)},
        },
        "manual_reference": {"mtta_s": MANUAL_REFERENCE_S, "measured_here": False, "source": MANUAL_SOURCE},
    }
    p50 = result["repairbot"]["mtta_s"]["p50"]
    result["ratios"] = {
        "poller_projected_p50_over_repairbot_p50": result["poller"]["projected_mtta_s"]["p50"] / p50,
        "poller_projected_p99_over_repairbot_p99": result["poller"]["projected_mtta_s"]["p99"]
        / result["repairbot"]["mtta_s"]["p99"],
        "manual_over_repairbot_p50": MANUAL_REFERENCE_S / p50,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 nodes, 20 faults per arm, T = 2 s (CI)")
    parser.add_argument("--nodes", type=int, help="fleet size (default 1000; quick 100)")
    parser.add_argument("--faults", type=int, help="faults per arm (default 200; quick 20)")
    parser.add_argument("--rate", type=float, default=10.0, help="faults per second, both arms together")
    parser.add_argument("--poll-interval", type=float, help="the poller's scaled interval T (default 10 s; quick 2 s)")
    args = parser.parse_args()
    nodes = args.nodes or (100 if args.quick else 1000)
    faults = args.faults or (20 if args.quick else 200)
    interval = args.poll_interval or (2.0 if args.quick else 10.0)
    result = bench_mtta(nodes, faults, args.rate, interval)
    path = write_result("mtta", {"quick": args.quick, **result})
    ours, polled = result["repairbot"], result["poller"]
    scale = PROJECTED_INTERVAL_S / interval
    rows = [
        ("setup", f"{nodes} nodes, {faults} faults per arm ({FAULT}), Poisson {args.rate:g}/s, arms alternating"),
        ("RepairBot agent (measured)  MTTA", spread(ours["mtta_s"])),
        ("  of which fault → intake", spread(ours["detect_s"], ("p50", "p99"))),
        (f"poll every {interval:g} s (measured, scaled)  MTTA", spread(polled["mtta_s"])),
        ("  of which fault → intake (wait for the poll)", spread(polled["detect_s"], ("p50", "p99"))),
        ("  of which intake → cordoned", spread(polled["intake_to_cordon_s"], ("p50", "p99"))),
        (f"poll every {PROJECTED_INTERVAL_S:g} s (projected: wait x {scale:g})  MTTA",
         spread(polled["projected_mtta_s"])),
        ("  check: a uniform poll phase alone waits", "p50 150.0 s / p90 270.0 s / p99 297.0 s"),
        ("manual process (NAVER, reference figure, NOT measured)", ms(MANUAL_REFERENCE_S)),
        ("CPU s/s while faults flowed",
         ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_per_wall_s_during_faults"].items())),
        ("ratio: 5-min poll p50 / RepairBot p50",
         f"{result['ratios']['poller_projected_p50_over_repairbot_p50']:,.0f}x"),
        ("ratio: manual 101 s / RepairBot p50", f"{result['ratios']['manual_over_repairbot_p50']:,.0f}x"),
        ("results", str(path)),
    ]  # fmt: skip
    print_table("MTTA: fault at the node → node cordoned + tainted", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
