"""The retention sweep against the emulated API server: finished repairs past the policy go, the rest stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION, format_time
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.retention import RetentionCollector
from repairbot.policy import RetentionPolicy

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def seed(custom: client.CustomObjectsApi, name: str, phase: str, ended_days_ago: int, **status: Any) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent"}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    at = format_time(NOW - timedelta(days=ended_days_ago))
    patch = {"status": {"phase": phase, "resolvedAt": at, "history": [{"step": "x", "outcome": "done", "at": at}],
                        **status}}  # fmt: skip
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, patch)


def test_finished_repairs_are_garbage_collected_after_the_retention_and_counted(kube_api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_api)
    for i in range(6):
        seed(custom, f"gpu-1-old-{i}", "Succeeded", 60 + i)
    seed(custom, "gpu-1-quarantined", "Quarantined", 90)
    seed(custom, "gpu-1-released", "Quarantined", 91, conditions=[{"type": "Released", "status": "True"}])
    seed(custom, "gpu-1-active", "Blocked", 120)
    metrics = OperatorMetrics()
    collector = RetentionCollector(kube_api, RetentionPolicy(keep_per_node=2, ttl=timedelta(days=30)), metrics,
                                   clock=lambda: NOW)  # fmt: skip
    assert collector.sweep() == 5
    left = sorted(r["metadata"]["name"] for r in custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    assert left == ["gpu-1-active", "gpu-1-old-0", "gpu-1-old-1", "gpu-1-quarantined"]
    assert metrics.registry.get_sample_value("repairbot_repairs_deleted_total", {"phase": "Succeeded"}) == 4
    assert metrics.registry.get_sample_value("repairbot_repairs_deleted_total", {"phase": "Quarantined"}) == 1
    assert collector.sweep() == 0
