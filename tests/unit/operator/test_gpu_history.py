"""A GPU's fault history is read from its node's past GPURepairs, through the operator's watch-fed cache.

The per-GPU lemon rule needs, of every earlier repair of the node, which GPUs its findings named; the
fleet cache keeps a slim copy of each repair, and once kept only the node's name, so the rule saw no GPU.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from repairbot.machine import GpuRepair, RepairView
from repairbot.model import GpuRef, format_time
from repairbot.operator.facts import earlier_gpu_repairs
from repairbot.operator.fleet_cache import FleetCache
from repairbot.policy import Policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
BOARD = {"index": 3, "uuid": "GPU-6b1d3f2a", "pci": "0000:2b:00.0", "serial": "1650123012345"}


def past_repair(name: str, received: datetime, gpu: dict[str, Any] | None, attempt: int = 1) -> dict[str, Any]:
    finding: dict[str, Any] = {"code": "xid-79", "firstSeen": format_time(received), "action": "reboot"}
    if gpu is not None:
        finding["gpu"] = gpu
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]},
            "status": {"phase": "Succeeded", "attempt": attempt, "receivedAt": format_time(received)}}  # fmt: skip


def test_the_fleet_cache_keeps_which_gpu_each_past_repair_named_so_a_repeat_offender_is_seen() -> None:
    cache = FleetCache()
    cache.repair_seen(past_repair("gpu-1-a", T0 - timedelta(days=2), BOARD))
    cache.repair_seen(past_repair("gpu-1-b", T0 - timedelta(days=1), None))  # a node-level fault: no GPU
    cache.repair_seen(past_repair("gpu-1-c", T0 - timedelta(hours=1), BOARD, attempt=0))  # never reached a rung
    cache.repair_seen(past_repair("gpu-1-d", T0 - timedelta(days=9), BOARD))  # before the lemon window
    now = RepairView(name="gpu-1-e", node="gpu-1")
    assert earlier_gpu_repairs(cache.view(), now, Policy(), T0) == (
        GpuRepair(T0 - timedelta(days=2), (GpuRef.from_dict(BOARD),)),
        GpuRepair(T0 - timedelta(days=1), ()),
    )
