"""Operator-added time per repair: what RepairBot itself spends between the steps of a whole repair.

Run: ``.venv/bin/python benchmarks/operator_bench.py [--quick]``. Writes
``benchmarks/results/operator.json`` and prints a table.

Whole repairs, one at a time (so no PodDisruptionBudget wait enters the
number), on the cluster process with ``repairbot operator`` as its own
process and production agents (``SimulatedFleet``) in this one: a GPU falls
off the bus, the agent reports it, the operator cordons, drains (the training
pod takes its termination grace), asks the agent to reboot (simulated, fixed
time), asks it to validate, and returns the node to service.

    added = (returned to service - fault injected)
            - drain grace - action runtime - validation runtime

The grace and the action time are the simulation's constants; the validation
runtime is the agent's own measurement (``status.agent.startedAt → finishedAt``).
What is left is the operator's decisions and writes, the watch round trips
between operator and agent, and the simulated kubelet's boot report. The
history of each repair splits it by step.

MTTA at fleet scale is ``mtta_bench.py``; bursts ``burst_bench.py``; memory and
CPU ``scale_bench.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))

from common import ms, print_table, spread, summary, write_result
from harness import ClusterProcess, OperatorProcess, bench_client, write_policy

from repairbot.kube.client import as_object
from repairbot.model import GROUP, LABEL_NODE, PLURAL, VERSION, parse_time
from repairbot_sim.agents import SimulatedFleet
from repairbot_sim.host import ActionTimes

GRACE_S = 1
TIMES = ActionTimes(gpu_reset=0.2, driver_reload=0.2, reboot=1.0)
FAULT = "fall-off-bus"  # Xid 79 → ladder [reboot, power-cycle, quarantine]
POLICY = {
    "budget": {"maxUnavailable": "100%"},
    "breaker": {"maxFaults": 1_000_000, "maxPerDomain": 1_000_000, "settleTime": "0s"},
    "validation": {"dcgmDiagLevel": 0, "quietPeriod": "0s"},
}
SEGMENTS = ("acknowledge", "to_drain", "drain_overhead", "action_overhead", "validation_overhead")


def _at(history: list[dict[str, Any]], step: str) -> float:
    return parse_time(next(e["at"] for e in history if e["step"] == step)).timestamp()


def decompose(status: dict[str, Any], injected: float) -> dict[str, float]:
    """One Succeeded repair's time, by step, with the fixed and external parts taken out."""
    history = status["history"]
    cordon, drain = _at(history, "cordon"), _at(history, "start-drain")
    request, validate, back = _at(history, "request"), _at(history, "validate"), _at(history, "return-to-service")
    agent = status["agent"]
    validation = (parse_time(agent["finishedAt"]) - parse_time(agent["startedAt"])).total_seconds()
    total = parse_time(status["resolvedAt"]).timestamp() - injected
    parts = {
        "acknowledge": cordon - injected,
        "to_drain": drain - cordon,
        "drain_overhead": request - drain - GRACE_S,
        "action_overhead": validate - request - TIMES.reboot,
        "validation_overhead": back - validate - validation,
    }
    return {"total": total, "validation_runtime": validation, "added": total - GRACE_S - TIMES.reboot - validation,
            **parts}  # fmt: skip


def wait_resolved(custom: client.CustomObjectsApi, node: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = as_object(
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"{LABEL_NODE}={node}")
        )
        for repair in items["items"]:
            status = repair.get("status") or {}
            if status.get("phase") == "Succeeded":
                return dict(status)
            if status.get("phase") in ("Failed", "Quarantined", "Cancelled", "Blocked"):
                raise RuntimeError(f"repair of {node} ended {status['phase']}: {status.get('message')}")
        time.sleep(0.05)
    raise TimeoutError(f"the repair of {node} did not succeed within {timeout:.0f} s")


def bench_operator_added(repairs: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        ClusterProcess(Path(tmp), repairs, termination_seconds=GRACE_S) as cluster,
    ):
        root = Path(tmp)
        with OperatorProcess(root, cluster.operator_kubeconfig, write_policy(root, POLICY)) as operator:
            operator.wait_ready(cluster)
            fleet = SimulatedFleet.build(
                cluster.node_names,
                root / "agents",
                lambda node: bench_client(cluster.state["kubeconfigs"]["agents"][node]),
                interval=1.0,
                times=TIMES,
            )
            fleet.start()
            custom = client.CustomObjectsApi(bench_client(cluster.kubeconfig))
            rows = []
            try:
                time.sleep(1.5)  # every agent has polled once and watches its node's repairs
                for i, name in enumerate(cluster.node_names):
                    injected = time.time()
                    fleet.members[name].node.inject(FAULT, i % 8)
                    rows.append(decompose(wait_resolved(custom, name, timeout=60), injected))
            finally:
                fleet.stop()
    return {
        "repairs": len(rows),
        "fault": FAULT,
        "drain_grace_s": GRACE_S,
        "action_runtime_s": TIMES.reboot,
        "total_s": summary([r["total"] for r in rows]),
        "validation_runtime_s": summary([r["validation_runtime"] for r in rows]),
        "operator_added_s": summary([r["added"] for r in rows]),
        "by_step_s": {segment: summary([r[segment] for r in rows]) for segment in SEGMENTS},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repairs (CI)")
    parser.add_argument("--repairs", type=int, help="repairs, one at a time (default 30; quick 5)")
    args = parser.parse_args()
    repairs = args.repairs or (5 if args.quick else 30)
    added = bench_operator_added(repairs)
    path = write_result("operator", {"quick": args.quick, "operator_added": added})
    steps = added["by_step_s"]
    rows = [
        ("setup", f"{added['repairs']} whole repairs one at a time ({FAULT} → reboot → validate → uncordon)"),
        ("total, fault injected → returned to service", spread(added["total_s"], ("p50", "p99"))),
        ("minus drain grace / action / validation runtime",
         f"{ms(GRACE_S)} / {ms(TIMES.reboot)} / p50 {ms(added['validation_runtime_s']['p50'])}"),
        ("= operator-added time per repair", spread(added["operator_added_s"], ("p50", "p99"))),
        ("  fault → cordoned (acknowledge)", spread(steps["acknowledge"], ("p50", "p99"))),
        ("  cordoned → drain started", spread(steps["to_drain"], ("p50", "p99"))),
        ("  drain, beyond the pods' grace", spread(steps["drain_overhead"], ("p50", "p99"))),
        ("  reboot asked → seen back (beyond the reboot)", spread(steps["action_overhead"], ("p50", "p99"))),
        ("  validation asked → returned (beyond the checks)", spread(steps["validation_overhead"], ("p50", "p99"))),
        ("results", str(path)),
    ]  # fmt: skip
    print_table("Operator-added time per repair", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
