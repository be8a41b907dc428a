"""Scale: the operator's memory and CPU watching 1,000 / 5,000 / 10,000 nodes, idle and under a 1 % failure burst.

Run: ``.venv/bin/python benchmarks/scale_bench.py [--quick] [--nodes 20000]``. Writes
``benchmarks/results/scale.json`` and prints a table.

For each fleet size, a fresh cluster process and ``repairbot operator`` as its
own process with the packaged default policy (budget 5 %, breaker 10 faults /
2 per leaf, settle 30 s). Once the operator watches the fleet and has digested
the initial listing:

* **idle**: RSS, and CPU seconds per wall second over a quiet window;
* **burst**: 1 % of the nodes (spread over the fleet, one per leaf switch)
  report a fatal Xid at the same instant through intake; CPU seconds per wall
  second over a fixed window from the burst, peak RSS (VmHWM) and how long
  until every repair was decided (Cordoned or Blocked: with the default
  breaker, 50 or 100 faults open it).

The emulated API server's own RSS is given for context; it is the simulation,
not RepairBot. The agent's cost per node is in ``agent_bench.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, spread, summary, write_result
from findings_load import Decisions, decision_latencies, decision_times, offer_findings
from harness import ClusterProcess, OperatorProcess, ProcessMeter


def bench_scale(nodes: int, idle_s: float, burst_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), nodes) as cluster:
        root = Path(tmp)
        with OperatorProcess(root, cluster.operator_kubeconfig, None) as operator:
            ready_s = operator.wait_ready(cluster, timeout=max(300, nodes * 0.03))
            meter = ProcessMeter(operator.pid)
            time.sleep(idle_s)
            idle = {"cpu_per_wall_s": meter.cpu_per_wall(), "rss_mib": meter.rss_mib(), "window_s": idle_s}
            failing = max(1, nodes // 100)
            plan = [(name, 0) for name in cluster.node_names[:: nodes // failing][:failing]]
            decisions = Decisions(cluster.state["api"], failing, token=cluster.admin_token, ca=cluster.api_ca).start()
            meter.reset()
            started = time.monotonic()
            sent = offer_findings(cluster.kubeconfig, plan, window=0.0, workers=min(16, failing))
            complete = decisions.wait(timeout=max(burst_s, 120))
            time.sleep(max(0.0, burst_s - (time.monotonic() - started)))
            window = time.monotonic() - started
            burst = {
                "faults": failing,
                "window_s": window,
                "cpu_per_wall_s": meter.cpu_per_wall(),
                "rss_mib": meter.rss_mib(),
                "peak_rss_mib": meter.peak_rss_mib(),
                "all_decided": complete,
            }
            decisions.stop()
            cluster_rss = ProcessMeter(cluster.pid).rss_mib()
    decided = decision_times(list(decisions.latest.values()))
    per_repair, _ = decision_latencies(sent, decided)
    phases = [phase for _, phase in decided.values()]
    burst |= {
        "all_decided_after_s": max(at for at, _ in decided.values()) - sent.start if complete else None,
        "cordoned": phases.count("Cordoned"),
        "blocked": phases.count("Blocked"),
        "decision_per_repair_s": summary(per_repair),
        "intake_errors": len(sent.errors),
    }
    return {"nodes": nodes, "operator_ready_s": ready_s, "idle": idle, "burst": burst,
            "cluster_process_rss_mib": cluster_rss}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 nodes, short windows (CI)")
    parser.add_argument("--nodes", type=int, nargs="+", help="fleet sizes (default 1000 5000 10000; quick 1000)")
    parser.add_argument("--idle", type=float, help="idle window, seconds (default 30; quick 5)")
    parser.add_argument("--burst", type=float, help="burst window, seconds (default 30; quick 10)")
    args = parser.parse_args()
    sizes = args.nodes or ([1000] if args.quick else [1000, 5000, 10000])
    idle_s = args.idle or (5.0 if args.quick else 30.0)
    burst_s = args.burst or (10.0 if args.quick else 30.0)
    runs = [bench_scale(n, idle_s, burst_s) for n in sizes]
    path = write_result("scale", {"quick": args.quick, "runs": runs})
    rows = [("setup", f"operator as its own process, default policy; idle window {idle_s:g} s, "
                      f"burst window {burst_s:g} s from a 1% burst")]  # fmt: skip
    for run in runs:
        idle, burst = run["idle"], run["burst"]
        n = f"{run['nodes']:,} nodes"
        rows += [
            (f"{n}: idle", f"RSS {idle['rss_mib']:.0f} MiB, CPU {idle['cpu_per_wall_s']:.3f} s/s "
                           f"(ready {run['operator_ready_s']:.1f} s after start)"),
            (f"{n}: {burst['faults']} faults at once",
             f"CPU {burst['cpu_per_wall_s']:.3f} s/s, RSS {burst['rss_mib']:.0f} MiB "
             f"(peak {burst['peak_rss_mib']:.0f} MiB)"),
            (f"{n}: decided", f"{burst['cordoned']} Cordoned + {burst['blocked']} Blocked, all within "
                              f"{burst['all_decided_after_s'] or float('nan'):.2f} s; "
                              f"per repair {spread(burst['decision_per_repair_s'], ('p50', 'p99'))}"),
        ]  # fmt: skip
    rows.append(("results", str(path)))
    print_table("Operator at scale: RSS and CPU (process CPU seconds per wall second)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
