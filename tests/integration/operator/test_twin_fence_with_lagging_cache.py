"""Twins admitted from watch caches that lag: the claim on the node, fenced by its resourceVersion, lets one in.

Each operator decides from its own watch cache (no list of the node's repairs per admission). Here the
second operator's cache never saw the first twin nor its cordon, as a cache lagging a create would: its
cordon is fenced off by the node's resourceVersion, the retry reads the node's claim, and the second twin
is folded into the first instead of being admitted beside it.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.kube.events import EventRecorder
from repairbot.kube.intake import Intake
from repairbot.kube.marks import ANNOTATION_REPAIR
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, GpuRef, Source
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.facts import FactGatherer
from repairbot.operator.fleet_cache import FleetCache
from repairbot.operator.reconciler import Reconciler
from repairbot.policy import parse_policy

FIRST, SECOND = "gpu-1-20261122100000", "gpu-1-20261122100001"


def _repair(api: client.ApiClient, name: str, gpu: int, source: Source) -> None:
    finding = Finding(code="xid-79", message="off the bus", action=Action.REBOOT, gpu=GpuRef(index=gpu), source=source)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": source.value, "findings": [finding.to_dict()]}}  # fmt: skip
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


def _operator(api: client.ApiClient, *, lagging_behind: str | None = None) -> Reconciler:
    """An operator deciding from its own cache, primed now and never fed a watch event afterwards;
    ``lagging_behind``: a repair whose create that cache has not seen yet."""
    policy = parse_policy({"budget": {"maxUnavailable": "100%"}})
    cache = FleetCache()
    cache.prime(api)
    if lagging_behind is not None:
        cache.repair_gone(lagging_behind)
    gatherer = FactGatherer(api, policy, fleet=cache.view, cached_node=cache.node)
    return Reconciler(api=api, policy=policy, breakers=BreakerStore(api, "repairbot"), events=EventRecorder(api),
                      gatherer=gatherer, fleet_cache=cache)  # fmt: skip


def test_twins_decided_from_caches_that_never_saw_each_other_end_as_one_cordoned_repair(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    _repair(api, FIRST, 0, Source.AGENT)
    _repair(api, SECOND, 2, Source.GRAFANA)
    current = _operator(api, lagging_behind=SECOND)  # each cache has missed the other twin's create
    lagging = _operator(api, lagging_behind=FIRST)  # and this one will miss the first twin's cordon too

    first = current.reconcile(FIRST)
    second = lagging.reconcile(SECOND)

    assert first is not None and first.decision.step.value == "cordon"
    assert second is None  # folded: its findings went into the record, it was not admitted
    [left] = Intake(api).repairs_of("gpu-1")
    assert left["metadata"]["name"] == FIRST
    assert left["status"]["phase"] == "Cordoned"
    assert sorted(f["source"] for f in left["spec"]["findings"]) == ["agent", "grafana"]
    node = client.CoreV1Api(api).read_node("gpu-1")
    assert node.metadata.annotations[ANNOTATION_REPAIR] == FIRST
    assert node.spec.unschedulable


def test_a_claim_left_by_a_finished_repair_does_not_hold_the_next_one_back(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    node = kube_objects.gpu_node("gpu-1")
    node["metadata"]["annotations"] = {ANNOTATION_REPAIR: "gpu-1-20261001000000"}  # a repair long deleted
    apiserver.server.create_object(node)
    _repair(api, FIRST, 0, Source.AGENT)

    result = _operator(api).reconcile(FIRST)

    assert result is not None and result.decision.step.value == "cordon"
    assert client.CoreV1Api(api).read_node("gpu-1").metadata.annotations[ANNOTATION_REPAIR] == FIRST
