"""The webhook reads from its watch caches: a notification costs its writes, one report per node, nothing else."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from kubernetes import client
from test_webhook_on_apiserver import ALERTMANAGER

from repairbot.model import LABEL_STATE


def am_alert(node: str, gpu: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "GpuXid", "node": node, "xid": "79", "gpu": str(gpu)},
        "annotations": {"summary": f"Xid 79 on {node} GPU {gpu}"},
        "startsAt": "2026-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{node}-{gpu}",
    }  # fmt: skip


def am(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "repairbot", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
            "alerts": list(alerts)}  # fmt: skip


def served(apiserver: Any) -> Counter[tuple[str, str]]:
    """(verb, resource) of what the API server served since the last reset, watches left out."""
    rows = Counter[tuple[str, str]]()
    for (verb, resource, _client), count in apiserver.server._state.requests.items():
        if verb != "watch":
            rows[(verb, resource)] += count
    return rows


async def test_a_100_alert_payload_on_50_nodes_is_one_write_per_node_and_no_node_write(
    webhook: Any, apiserver: Any, kube_objects: Any
) -> None:
    nodes = [f"gpu-{n}" for n in range(3, 53)]
    for node in nodes:
        apiserver.server.create_object(kube_objects.gpu_node(node))
    await asyncio.sleep(0.5)  # the webhook's node cache sees them through its watch
    apiserver.server._state.requests.clear()

    status, answer = await webhook.post(ALERTMANAGER, am(*(am_alert(node, gpu) for gpu in (0, 1) for node in nodes)))

    cost = served(apiserver)
    assert status == 202 and len(answer["repairs"]) == 100 and answer["ignored"] == []
    # the node read of each repair opened (opt-out) and its create; no list, no node patch, nothing per alert
    assert cost == {("get", "nodes"): 50, ("create", "gpurepairs"): 50}, cost
    repairs = {r["spec"]["nodeName"]: r for r in webhook.repairs()}
    assert sorted(repairs) == sorted(nodes)
    assert all(sorted(f["gpu"]["index"] for f in r["spec"]["findings"]) == [0, 1] for r in repairs.values())
    assert {answer_ref["name"] for answer_ref in answer["repairs"]} == {r["metadata"]["name"] for r in repairs.values()}
    assert not any(LABEL_STATE in webhook.node_labels(node) for node in nodes)  # the operator's, if they wait


async def test_a_new_repair_reads_its_node_once_for_opt_out_and_a_merge_reads_nothing(
    webhook: Any, apiserver: Any
) -> None:
    core = client.CoreV1Api(webhook.api)
    core.patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/disabled": "true"}}})
    core.patch_node("gpu-2", {"metadata": {"labels": {LABEL_STATE: "repairing"}}})
    await asyncio.sleep(0.5)
    apiserver.server._state.requests.clear()

    _, answer = await webhook.post(ALERTMANAGER, am(am_alert("gpu-1", 0), am_alert("gpu-2", 0)))

    assert answer["ignored"] == [{"fingerprint": "fp-gpu-1-0", "reason": "node-disabled"}]
    assert served(apiserver) == {("get", "nodes"): 2, ("create", "gpurepairs"): 1}  # and no node patch
    assert [r["spec"]["nodeName"] for r in webhook.repairs()] == ["gpu-2"]
    assert webhook.node_labels("gpu-2")[LABEL_STATE] == "repairing"
    apiserver.server._state.requests.clear()

    _, answer = await webhook.post(ALERTMANAGER, am(am_alert("gpu-2", 1)))

    assert served(apiserver) == {("update", "gpurepairs"): 1}  # the merge: the repair from the cache
