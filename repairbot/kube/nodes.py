"""Node reads and writes shared by the agent and the operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from repairbot.kube.client import raw_call, retried
from repairbot.model import format_time


@dataclass(frozen=True, slots=True)
class NodeCondition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merged_conditions(
    current: list[dict[str, Any]], wanted: NodeCondition, now: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """``current`` with ``wanted`` set, and whether anything changed (pure).

    ``lastTransitionTime`` moves only when the status flips, so an SRE reading
    ``kubectl describe node`` sees how long a GPU has been bad, not when the
    agent last looked. ``lastHeartbeatTime`` says the agent is alive.
    """
    others = [c for c in current if c.get("type") != wanted.type]
    previous = next((c for c in current if c.get("type") == wanted.type), None)
    fields = (("status", wanted.status), ("reason", wanted.reason), ("message", wanted.message))
    changed = previous is None or any(previous.get(k) != v for k, v in fields)
    transition = (
        previous["lastTransitionTime"]
        if previous is not None and previous.get("status") == wanted.status and previous.get("lastTransitionTime")
        else format_time(now)
    )
    condition = {
        "type": wanted.type,
        "status": wanted.status,
        "reason": wanted.reason,
        "message": wanted.message,
        "lastTransitionTime": transition,
        "lastHeartbeatTime": format_time(now),
    }
    return [*others, condition], changed


def set_node_condition(api: client.ApiClient, node: str, wanted: NodeCondition) -> bool:
    """Write one node condition through ``nodes/status``; returns whether it changed."""
    core = client.CoreV1Api(api)

    def write() -> bool:
        current = raw_call(core.read_node_status, node)
        conditions = (current.get("status") or {}).get("conditions") or []
        merged, changed = merged_conditions(conditions, wanted, datetime.now(UTC))
        if not changed:
            return False
        # Strategic merge on status.conditions keys by type: only ours is touched.
        ours = next(c for c in merged if c["type"] == wanted.type)
        raw_call(core.patch_node_status, node, {"status": {"conditions": [ours]}})
        return True

    return retried(write)


def node_gpu_count(api: client.ApiClient, node: str) -> int | None:
    """GPUs the node should have: the ``nvidia.com/gpu.count`` label, else its capacity."""
    obj = raw_call(client.CoreV1Api(api).read_node, node)
    label = (obj.get("metadata", {}).get("labels") or {}).get("nvidia.com/gpu.count")
    if label and str(label).isdigit():
        return int(label)
    capacity = (obj.get("status", {}).get("capacity") or {}).get("nvidia.com/gpu")
    return int(capacity) if capacity and str(capacity).isdigit() else None
