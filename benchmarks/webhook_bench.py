"""Webhook: throughput and latency of Alertmanager notifications of 100 firing alerts each.

Run: ``.venv/bin/python benchmarks/webhook_bench.py [--quick]``. Writes
``benchmarks/results/webhook.json`` and prints a table.

``repairbot webhook`` runs as its own process (bearer-token auth, default
alert mapping) against the cluster process; this process posts Alertmanager
version-4 notifications with httpx, one in flight at a time by default (as
Alertmanager sends one group), and times each from request to the 202.

* **first delivery**: every alert a new firing (own fingerprint and startsAt),
  ``GpuXid`` with ``xid=79`` and a ``node`` label; the first pass over the
  fleet opens one repair per node, later passes name other GPUs of the same
  nodes and are merged into those repairs (one repair per node).
* **repeat**: the same notifications again, as Alertmanager repeats a group
  that still fires: idempotent, answered from the webhook's memory of firings.

Each round reports payloads/s, alerts/s, latency p50/p99, what the 202 bodies
said (repairs, ignored), the GPURepairs in the cluster after it, and the API
requests the webhook made per alert. No operator runs: this is the webhook alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))

from common import print_table, spread, summary, write_result
from harness import ClusterProcess, bench_client, requests_by_client

from repairbot.kube.client import as_object
from repairbot.model import GROUP, PLURAL, VERSION

ALERTS_PER_PAYLOAD = 100
PATH = "/webhook/alertmanager"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alert(node: str, gpu: int, starts: datetime, status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": "GpuXid", "node": node, "xid": "79", "gpu": str(gpu), "severity": "critical"}
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"Xid 79 on {node} GPU {gpu}: GPU has fallen off the bus"},
        "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=DCGM_FI_DEV_XID_ERRORS",
        "fingerprint": fingerprint,
    }


def notification(alerts: list[dict[str, Any]], group: int) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="GpuXid", group="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "repairbot",
        "groupLabels": {"alertname": "GpuXid"},
        "commonLabels": {"alertname": "GpuXid", "xid": "79"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def payloads(names: list[str], count: int) -> list[dict[str, Any]]:
    """``count`` notifications of 100 alerts: node after node, then the next GPU of each, ..."""
    base = datetime.now(UTC) - timedelta(minutes=1)
    out = []
    for p in range(count):
        alerts = []
        for j in range(ALERTS_PER_PAYLOAD):
            k = p * ALERTS_PER_PAYLOAD + j
            alerts.append(alert(names[k % len(names)], (k // len(names)) % 8, base + timedelta(milliseconds=k)))
        out.append(notification(alerts, p))
    return out


class WebhookProcess:
    def __init__(self, root: Path, kubeconfig: str) -> None:
        self.token = secrets.token_urlsafe(24)
        token_file = root / "webhook-token"
        token_file.write_text(self.token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "repairbot.cli", "webhook", "--host", "127.0.0.1", "--port", str(self.port),
            "--kubeconfig", kubeconfig, "--token-file", str(token_file),
        ]  # fmt: skip
        self._log = (root / "webhook.log").open("w")
        self.process = subprocess.Popen(command, env=dict(os.environ), stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the webhook exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the webhook did not answer /healthz")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._log.close()


def deliver(http: httpx.Client, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    repairs = ignored = 0
    started = time.perf_counter()
    for body in bodies:
        sent = time.perf_counter()
        response = http.post(PATH, json=body)
        latencies.append(time.perf_counter() - sent)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 202:
            answer = response.json()
            repairs += len(answer["repairs"])
            ignored += len(answer["ignored"])
    wall = time.perf_counter() - started
    alerts = sum(len(b["alerts"]) for b in bodies)
    return {
        "payloads": len(bodies),
        "alerts": alerts,
        "wall_s": wall,
        "payloads_per_s": len(bodies) / wall,
        "alerts_per_s": alerts / wall,
        "latency_s": summary(latencies),
        "http_status": statuses,
        "alerts_taken_into_repairs": repairs,
        "alerts_ignored": ignored,
    }


def bench_webhook(nodes: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ClusterProcess(Path(tmp), nodes) as cluster:
        webhook = WebhookProcess(Path(tmp), cluster.kubeconfig)
        try:
            webhook.wait_ready()
            custom = client.CustomObjectsApi(bench_client(cluster.kubeconfig))
            headers = {"Authorization": f"Bearer {webhook.token}"}
            bodies = payloads(cluster.node_names, count)
            rounds = {}
            with httpx.Client(base_url=webhook.url, headers=headers, timeout=120) as http:
                # Warm-up: one resolved alert (opens nothing) makes the webhook list the nodes once.
                warm = notification([alert(cluster.node_names[0], 0, datetime.now(UTC), "resolved")], -1)
                http.post(PATH, json=warm).raise_for_status()
                for name in ("first", "repeat"):
                    cluster.reset_requests()
                    result = deliver(http, bodies)
                    by_client = requests_by_client(cluster.requests())
                    webhook_requests = by_client.get("OpenAPI-Generator", 0)
                    items = as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))["items"]
                    result |= {
                        "gpurepairs_in_cluster": len(items),
                        "nodes_with_repairs": len({r["spec"]["nodeName"] for r in items}),
                        "findings_in_repairs": sum(len(r["spec"].get("findings") or []) for r in items),
                        "api_requests_by_webhook": webhook_requests,
                        "api_requests_per_alert": webhook_requests / result["alerts"],
                    }
                    rounds[name] = result
        finally:
            webhook.stop()
    return {"nodes": nodes, "alerts_per_payload": ALERTS_PER_PAYLOAD, "concurrency": 1, **rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 nodes, 4 payloads per round (CI)")
    parser.add_argument("--nodes", type=int, help="default 1000; quick 200")
    parser.add_argument("--payloads", type=int, help="payloads of 100 alerts per round (default 20; quick 4)")
    args = parser.parse_args()
    nodes = args.nodes or (200 if args.quick else 1000)
    count = args.payloads or (4 if args.quick else 20)
    result = bench_webhook(nodes, count)
    path = write_result("webhook", {"quick": args.quick, **result})
    rows = [("setup", f"repairbot webhook as its own process, {nodes:,} nodes, {count} Alertmanager v4 payloads "
                      f"of {ALERTS_PER_PAYLOAD} firing alerts per round, one in flight")]  # fmt: skip
    for name, label in (("first", "first delivery"), ("repeat", "repeat (idempotent)")):
        r = result[name]
        rows += [
            (f"{label}: throughput", f"{r['payloads_per_s']:.2f} payloads/s = {r['alerts_per_s']:,.0f} alerts/s"),
            (f"{label}: latency per payload", spread(r["latency_s"], ("p50", "p99"))),
            (f"{label}: outcome", f"HTTP {r['http_status']}; {r['alerts_taken_into_repairs']:,} alerts into repairs; "
                                  f"{r['gpurepairs_in_cluster']:,} GPURepairs on {r['nodes_with_repairs']:,} nodes"),
            (f"{label}: API requests per alert", f"{r['api_requests_per_alert']:.1f}"),
        ]  # fmt: skip
    rows.append(("results", str(path)))
    print_table("Webhook: Alertmanager notifications of 100 alerts", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
