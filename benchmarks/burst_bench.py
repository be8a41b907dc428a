"""Burst: thousands of findings in one second across the fleet, with the storm breaker off and on.

Run: ``.venv/bin/python benchmarks/burst_bench.py [--quick]``. Writes
``benchmarks/results/burst.json`` and prints a table.

5,000 findings are offered within one second, five per node on 1,000 nodes
(a fatal Xid on GPUs 0-4, node after node), through intake over HTTP exactly
as agents send them: one :class:`NodeAgent` per node (the production class and
send spacing: a node's first finding at once, the rest coalesced into one next
write), its intake reading the node's repairs from a watch cache, all agents on
a shared bounded pool of sender threads (each with its own client). The
operator runs as its own process. Two runs, each on a
fresh cluster and operator, differ only in the policy's ``breaker``:

* **off**: ``maxFaults`` and ``maxPerDomain`` out of reach: every repair is cordoned.
* **on**: the default breaker (10 faults in 10 min, 2 per leaf switch in 5 min):
  the first repairs are cordoned, then the breaker opens and the rest are
  Blocked (cordoned, nothing destructive), under one incident.

Both runs open the budget wide (100 %, so no repair waits in Pending for a
slot) and hold drains back (``settleTime`` 1 h), so the window holds ingest and
decision only.

Reported: the ingest rate (findings accepted by intake per second), the
decision latency (a repair's first finding offered → its phase decided,
Cordoned or Blocked, by the operator's own decision stamp in the history; and
per finding: offered → accepted into a decided repair), and the API requests
per repair counted at the emulated API server, the senders' (intake) and the
operator's apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, spread, summary, write_result
from findings_load import Decisions, decision_latencies, decision_times, offer_findings
from harness import (
    ClusterProcess,
    OperatorProcess,
    ProcessMeter,
    operator_requests,
    requests_by_client,
    write_policy,
)

BREAKER = {
    "off": {"maxFaults": 1_000_000, "maxPerDomain": 1_000_000, "settleTime": "1h"},
    "on": {"settleTime": "1h"},  # every other breaker setting at the policy's default
}


def bench_burst(breaker: str, nodes: int, findings: int, window: float, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), nodes) as cluster:
        root = Path(tmp)
        policy = write_policy(root, {"budget": {"maxUnavailable": "100%"}, "breaker": BREAKER[breaker]})
        with OperatorProcess(root, cluster.operator_kubeconfig, policy) as operator:
            operator.wait_ready(cluster)
            decisions = Decisions(cluster.state["api"], nodes, token=cluster.admin_token, ca=cluster.api_ca).start()
            names = cluster.node_names
            plan = [(names[k % nodes], k // nodes) for k in range(findings)]
            cluster.reset_requests()
            meters = {"operator": ProcessMeter(operator.pid), "cluster": ProcessMeter(cluster.pid),
                      "benchmark (senders, watch)": ProcessMeter(os.getpid())}  # fmt: skip
            sent = offer_findings(cluster.kubeconfig, plan, window, workers)
            complete = decisions.wait(timeout=300)
            cpu = {name: meter.cpu_per_wall() for name, meter in meters.items()}
            counts = cluster.requests()
            decisions.stop()
    repairs = list(decisions.latest.values())
    decided = decision_times(repairs)
    per_repair, per_finding = decision_latencies(sent, decided)
    by_client = requests_by_client(counts)
    intake_requests = by_client.get("repairbot-bench", 0)
    operator_total = sum(r["count"] for r in operator_requests(counts))
    ingest_s = sent.ingest_s
    phases = [phase for _, phase in decided.values()]
    return {
        "breaker": breaker,
        "policy_breaker": BREAKER[breaker],
        "nodes": nodes,
        "findings_offered": findings,
        "offered_within_s": window,
        "senders": workers,
        "findings_accepted": len(sent.accepted),
        "intake_errors": sent.errors[:20],
        "intake_error_count": len(sent.errors),
        "ingest_s": ingest_s,
        "ingest_per_s": len(sent.accepted) / ingest_s if ingest_s > 0 else None,
        "all_decided": complete,
        "all_decided_after_s": max(at for at, _ in decided.values()) - sent.start if decided else None,
        "cpu_per_wall_s_until_decided": cpu,
        "repairs": len(repairs),
        "repairs_decided": len(decided),
        "cordoned": phases.count("Cordoned"),
        "blocked": phases.count("Blocked"),
        "incidents": sorted({(r.get("status") or {}).get("incident") for r in repairs} - {None}),
        "decision_per_repair_s": summary(per_repair),
        "decision_per_finding_s": summary(per_finding),
        "api_requests": {
            "total": counts["total"],
            "by_client": by_client,
            "intake_per_finding": intake_requests / max(1, len(sent.accepted)),
            "agent_reports": sent.reports,
            "agent_reports_per_repair": sent.reports / max(1, len(decided)),
            "intake_per_repair": intake_requests / max(1, len(decided)),
            "operator_per_repair": operator_total / max(1, len(decided)),
            "operator_top": operator_requests(counts)[:12],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 findings on 100 nodes (CI)")
    parser.add_argument("--nodes", type=int, help="default 1000; quick 100")
    parser.add_argument("--findings", type=int, help="default 5000; quick 500")
    parser.add_argument("--window", type=float, default=1.0, help="seconds the findings are offered within")
    parser.add_argument("--senders", type=int, default=16, help="sender threads (each its own client)")
    args = parser.parse_args()
    nodes = args.nodes or (100 if args.quick else 1000)
    findings = args.findings or (500 if args.quick else 5000)
    runs = [bench_burst(mode, nodes, findings, args.window, args.senders) for mode in ("off", "on")]
    path = write_result("burst", {"quick": args.quick, "runs": runs})
    rows = [("setup", f"{findings:,} findings offered in {args.window:g} s across {nodes:,} nodes, "
                      f"{args.senders} senders; budget 100%, drains held (settleTime 1h)")]  # fmt: skip
    for run in runs:
        api = run["api_requests"]
        name = f"breaker {run['breaker']}"
        rows += [
            (f"{name}: ingest", f"{run['findings_accepted']:,} accepted in {run['ingest_s']:.1f} s = "
                                f"{run['ingest_per_s']:,.0f} findings/s ({run['intake_error_count']} errors)"),
            (f"{name}: decided", f"{run['repairs_decided']:,} repairs: {run['cordoned']:,} Cordoned, "
                                 f"{run['blocked']:,} Blocked; incidents {len(run['incidents'])}; all within "
                                 f"{run['all_decided_after_s']:.1f} s"),
            (f"{name}: CPU s/s until all decided",
             ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_per_wall_s_until_decided"].items())),
            (f"{name}: decision latency per repair", spread(run["decision_per_repair_s"], ("p50", "p99"))),
            (f"{name}: decision latency per finding", spread(run["decision_per_finding_s"], ("p50", "p99"))),
            (f"{name}: API requests per repair", f"{api['operator_per_repair']:.1f} operator + "
                                                 f"{api['intake_per_repair']:.1f} intake "
                                                 f"({api['intake_per_finding']:.1f} per finding)"),
        ]  # fmt: skip
    rows.append(("results", str(path)))
    print_table("Burst: findings → GPURepair phase decided (Cordoned or Blocked)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
