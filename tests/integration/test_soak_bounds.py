"""Soak: 10,000 findings for one node and 1,000 repairs over simulated weeks stay bounded.

Time is simulated by writing each finished repair's own times (``resolvedAt``,
history) eight weeks apart in total and sweeping retention with an injected
clock once a simulated day — no real sleeping. Findings go through the real
intake; objects through the emulated API server, which refuses what etcd
refuses. Every object must stay under 512 KiB, the number of GPURepairs under
what the retention policy allows, and this process's RSS (intake, retention
and the emulator holding every object) flat.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from repairbot.bounds import OBJECT_SIZE_TARGET
from repairbot.kube.intake import Intake
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, GpuRef, Severity, Source, format_time
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.retention import RetentionCollector
from repairbot.policy import parse_policy

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 5, tzinfo=UTC)
NODES = [f"gpu-{i}" for i in range(10)]
PHASES = ["Succeeded"] * 7 + ["Cancelled", "Failed", "Quarantined"]


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def listing(custom: client.CustomObjectsApi) -> list[dict[str, Any]]:
    return list(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])


def finished_repair(index: int, ended: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """One repair as the operator leaves it: findings, a dozen history steps, a terminal phase."""
    node = NODES[index % len(NODES)]
    phase = PHASES[index % len(PHASES)]
    name = f"{node}-{ended:%Y%m%d%H%M%S}"
    finding = {
        "code": "xid-79",
        "message": "GPU has fallen off the bus " * 20,
        "action": "reboot",
        "firstSeen": format_time(ended - timedelta(hours=1)),
        "count": 1 + index % 5,
        "gpu": {"index": index % 8},
    }
    history = [{"step": step, "outcome": "done", "message": f"{step} on {node} " * 10,
                "at": format_time(ended - timedelta(minutes=60 - 5 * i))}
               for i, step in enumerate(["cordon", "drain", "request", "reboot", "validate", "return-to-service"] * 2)
               ]  # fmt: skip
    status: dict[str, Any] = {
        "phase": phase,
        "history": history,
        "resolvedAt": format_time(ended),
        "detectedAt": format_time(ended - timedelta(hours=1)),
        "reason": "xid-79",
    }
    if phase == "Quarantined" and index % 20 == 9:  # half the quarantines were released by a human later
        status["conditions"] = [{"type": "Released", "status": "True", "reason": "ReleasedByHuman"}]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": node}},
            "spec": {"nodeName": node, "source": "agent", "findings": [finding]}}  # fmt: skip
    return body, {"status": status}


def test_ten_thousand_findings_and_a_thousand_repairs_over_weeks_stay_bounded(
    kube_api: client.ApiClient, apiserver: Any, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-hot"))  # intake opens repairs of real nodes only
    custom = client.CustomObjectsApi(kube_api)
    policy = parse_policy({"retention": {"keepPerNode": 3, "ttl": "7d"}}).retention
    now = {"t": T0}
    collector = RetentionCollector(kube_api, policy, OperatorMetrics(), clock=lambda: now["t"])

    # 10,000 findings for one node, through the real intake: 200 classes x 8 GPUs, repeated, 900 KB messages among them.
    intake = Intake(kube_api)
    for batch in range(100):
        findings = [Finding(f"alert-gpu-{(batch * 100 + i) % 200}", "m" * (900_000 if i == 0 else 200),
                            Action.NOTIFY if i % 50 else Action.REBOOT, Severity.WARNING, GpuRef(index=i % 8),
                            source=Source.ALERTMANAGER, evidence={f"label.{n}": "v" * 300 for n in range(40)})
                    for i in range(100)]  # fmt: skip
        intake.report("gpu-hot", findings, source=Source.ALERTMANAGER)
    (hot,) = listing(custom)
    assert len(json.dumps(hot)) < OBJECT_SIZE_TARGET
    assert sum(f["count"] for f in hot["spec"]["findings"]) == 10_000

    # 1,000 finished repairs over eight simulated weeks (one every ~80 minutes), retention swept once a day.
    step = timedelta(weeks=8) / 1000
    baseline = 0
    largest = 0
    deleted = 0
    for index in range(1000):
        ended = T0 + step * index
        body, status = finished_repair(index, ended)
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, body["metadata"]["name"], status)
        if ended - now["t"] >= timedelta(days=1):
            now["t"] = ended
            deleted += collector.sweep()
            items = listing(custom)
            largest = max(largest, *(len(json.dumps(item)) for item in items))
            young = sum(1 for i in range(index + 1) if ended - (T0 + step * i) <= policy.ttl)
            held = sum(1 for i in range(index + 1) if PHASES[i % len(PHASES)] == "Quarantined" and i % 20 != 9)
            assert len(items) <= 1 + len(NODES) * policy.keep_per_node + young + held
        if index == 250:
            baseline = rss_bytes()
    items = listing(custom)
    assert deleted > 600 and len(items) < 400
    assert largest < OBJECT_SIZE_TARGET
    grown = rss_bytes() - baseline
    assert grown < 64 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB over 750 simulated repairs"
