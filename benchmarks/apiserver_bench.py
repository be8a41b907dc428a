"""The emulated API server alone: requests per second and latency for a fixed, repair-shaped request mix.

Run: ``.venv/bin/python benchmarks/apiserver_bench.py [--quick]``. Writes
``benchmarks/results/apiserver.json`` and prints a table.

The cluster (``sandbox_server.py``) runs in its own process with its fleet
seeded, RBAC and admission on, as every other benchmark sees it. A few client
threads (one HTTP/1.1 keep-alive connection each, raw ``httpx`` so the client
costs little next to the server) each play repairs on their own nodes, one
round per node, under the identities that send these requests in production:

* the node's agent (its own ServiceAccount, so node-scoped admission runs):
  GET the node, create a GPURepair (CRD schema, CEL rules, admission policy),
  PUT it back with a second finding (optimistic concurrency, as intake merges);
* the operator (its ServiceAccount under the chart's RBAC): GET the repair,
  merge-patch the node's labels, patch the repair's ``/status``, create an
  Event, list the node's pods (``fieldSelector=spec.nodeName``) and the node's
  repairs (``labelSelector=repairbot.io/node``).

Nine requests a round. Reported: requests per second over the whole run,
p50/p99 per request by verb, and the server process's CPU seconds per wall
second (near 1.0 means the server, one Python thread, is the limit). Every
answer must be the status the real server would give; any other is counted
as an error and fails the run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, summary, write_result
from harness import BENCH_AGENT, ClusterProcess, ProcessMeter

GROUP_PATH = "/apis/repairbot.io/v1alpha1/gpurepairs"
MERGE = {"Content-Type": "application/merge-patch+json"}


class _Client:
    """One keep-alive connection under one bearer token."""

    def __init__(self, cluster: ClusterProcess, token: str) -> None:
        self.http = httpx.Client(
            base_url=cluster.state["api"],
            verify=cluster.api_ca,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"{BENCH_AGENT}/1"},
            timeout=60,
        )


class _Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def call(self, name: str, client: _Client, method: str, url: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        response = client.http.request(method, url, **kwargs)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.latencies.setdefault(name, []).append(elapsed)
            if response.status_code != expect:
                self.errors.append(f"{name} {method} {url}: {response.status_code} {response.text[:200]}")
        body: dict[str, Any] = response.json() if response.content else {}
        return body


def _round(rec: _Recorder, agent: _Client, operator: _Client, node: str, tag: str) -> None:
    name = f"bench-{node}-{tag}"
    rec.call("get node", agent, "GET", f"/api/v1/nodes/{node}", 200)
    finding = {"code": "xid-79", "message": "benchmark", "firstSeen": "2026-05-01T10:00:00Z", "gpu": {"index": 0}}
    body = {
        "apiVersion": "repairbot.io/v1alpha1",
        "kind": "GPURepair",
        "metadata": {"name": name, "labels": {"repairbot.io/node": node}},
        "spec": {"nodeName": node, "source": "agent", "findings": [finding]},
    }
    created = rec.call("create repair", agent, "POST", GROUP_PATH, 201, json=body)
    created.setdefault("spec", {})["findings"] = [finding, {**finding, "gpu": {"index": 1}}]
    rec.call("update repair", agent, "PUT", f"{GROUP_PATH}/{name}", 200, json=created)
    rec.call("get repair", operator, "GET", f"{GROUP_PATH}/{name}", 200)
    labels = {"metadata": {"labels": {"repairbot.io/bench": tag}}}
    rec.call("patch node", operator, "PATCH", f"/api/v1/nodes/{node}", 200, json=labels, headers=MERGE)
    status = {"status": {"phase": "Cordoned", "message": "benchmark"}}
    rec.call("patch status", operator, "PATCH", f"{GROUP_PATH}/{name}/status", 200, json=status, headers=MERGE)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": "default"},
        "involvedObject": {"apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair", "name": name},
        "reason": "Cordoned",
        "message": "benchmark",
        "type": "Normal",
        "source": {"component": "repairbot"},
    }
    rec.call("create event", operator, "POST", "/api/v1/namespaces/default/events", 201, json=event)
    rec.call("list pods", operator, "GET", "/api/v1/pods", 200, params={"fieldSelector": f"spec.nodeName={node}"})
    rec.call("list repairs", operator, "GET", GROUP_PATH, 200, params={"labelSelector": f"repairbot.io/node={node}"})


def bench(nodes: int, threads: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), nodes) as cluster:
        names = cluster.node_names
        agent_tokens = cluster.state["tokens"]["agents"]
        operator_token = cluster.state["tokens"]["operator"]
        rec = _Recorder()

        def worker(index: int) -> None:
            mine = names[index::threads]
            operator = _Client(cluster, operator_token)
            agents = {node: _Client(cluster, agent_tokens[node]) for node in mine[:rounds]}
            for i in range(rounds):
                node = mine[i % len(mine)]
                _round(rec, agents[node] if node in agents else _Client(cluster, agent_tokens[node]), operator,
                       node, str(i // len(mine)))  # fmt: skip

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        meter = ProcessMeter(cluster.pid)
        started = time.monotonic()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        wall = time.monotonic() - started
        server_cpu = meter.cpu_per_wall()
        server_rss = meter.rss_mib()
    total = sum(len(v) for v in rec.latencies.values())
    every = [x for v in rec.latencies.values() for x in v]
    return {
        "nodes": nodes,
        "threads": threads,
        "rounds": rounds * threads,
        "requests": total,
        "wall_s": wall,
        "requests_per_s": total / wall,
        "latency_s": summary(every),
        "by_request": {name: summary(values) for name, values in sorted(rec.latencies.items())},
        "server_cpu_per_wall_s": server_cpu,
        "server_rss_mib": server_rss,
        "errors": rec.errors[:20],
        "error_count": len(rec.errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 nodes, 4 x 50 rounds (CI)")
    parser.add_argument("--nodes", type=int, help="fleet size (default 1000; quick 200)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--rounds", type=int, help="rounds per thread (default 250; quick 50)")
    args = parser.parse_args()
    nodes = args.nodes or (200 if args.quick else 1000)
    rounds = args.rounds or (50 if args.quick else 250)
    run = bench(nodes, args.threads, rounds)
    path = write_result("apiserver", {"quick": args.quick, "runs": [run]})
    lat = run["latency_s"]
    rows = [
        ("setup", f"{nodes:,} nodes, {args.threads} client threads, {run['rounds']} rounds of 9 requests"),
        ("throughput", f"{run['requests_per_s']:.0f} requests/s ({run['requests']} in {run['wall_s']:.1f} s)"),
        ("latency", f"p50 {lat['p50'] * 1000:.1f} ms, p99 {lat['p99'] * 1000:.1f} ms"),
        ("server", f"CPU {run['server_cpu_per_wall_s']:.2f} s/s, RSS {run['server_rss_mib']:.0f} MiB"),
    ]
    rows += [(name, f"p50 {s['p50'] * 1000:.1f} ms, p99 {s['p99'] * 1000:.1f} ms")
             for name, s in run["by_request"].items()]  # fmt: skip
    rows += [("errors", str(run["error_count"])), ("results", str(path))]
    print_table("Emulated API server: a repair-shaped request mix", rows)
    for error in run["errors"]:
        print(error, file=sys.stderr)
    return 1 if run["error_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
