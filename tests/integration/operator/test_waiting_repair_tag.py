"""The ``faulty`` tag is the operator's, written only while a repair waits: never by intake, never twice.

Issue 16: intake used to label the node of every repair an alert opened ``repairbot.io/state=faulty``,
a second request per alert for a label the operator's cordon patch replaced with ``repairing`` a moment
later. Now the operator writes ``faulty`` only when it decides a Pending repair waits without touching
its node (the budget queue), deciding from the node as its watch cache holds it: a repair re-deciding
every 30 s writes nothing more, and one admitted at once goes straight to ``repairing``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from kubernetes import client

from repairbot.kube.events import EventRecorder
from repairbot.kube.intake import Intake
from repairbot.model import (
    ANNOTATION_CANCEL_REQUESTED_BY,
    GROUP,
    LABEL_STATE,
    PLURAL,
    VERSION,
    Action,
    Finding,
    GpuRef,
    Source,
)
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.facts import FactGatherer
from repairbot.operator.fleet_cache import FleetCache
from repairbot.operator.reconciler import Reconciler
from repairbot.policy import parse_policy
from repairbot.webhook.cache import WebhookCache


def _xid(gpu: int, source: Source) -> Finding:
    return Finding(code="xid-79", message="off the bus", action=Action.REBOOT, gpu=GpuRef(index=gpu), source=source)


def _operator(
    api: client.ApiClient, max_unavailable: int | str, cache: FleetCache | None = None
) -> tuple[Reconciler, FleetCache]:
    """An operator deciding from its own cache (``cache``, or a new one), primed now; the test hands it the node
    events it should see."""
    policy = parse_policy({"budget": {"maxUnavailable": max_unavailable}})
    cache = cache or FleetCache()
    cache.prime(api)
    gatherer = FactGatherer(api, policy, fleet=cache.view, cached_node=cache.node)
    reconciler = Reconciler(api=api, policy=policy, breakers=BreakerStore(api, "repairbot"),
                            events=EventRecorder(api), gatherer=gatherer, fleet_cache=cache)  # fmt: skip
    return reconciler, cache


def _served(apiserver: Any) -> Counter[tuple[str, str]]:
    """(verb, resource) of every request the emulator served since the last reset, watches left out."""
    counted = httpx.get(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file).json()
    rows = Counter[tuple[str, str]]()
    for row in counted["requests"]:
        if row["verb"] != "watch":
            rows[(row["verb"], row["resource"])] += row["count"]
    return rows


def _reset(apiserver: Any) -> None:
    httpx.delete(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file).raise_for_status()


def _setup(apiserver: Any, kube_objects: Any, *nodes: str) -> None:
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    for node in nodes:
        apiserver.server.create_object(kube_objects.gpu_node(node))


def test_a_repair_queued_by_a_full_budget_tags_its_node_faulty_once_not_on_every_re_decision(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _setup(apiserver, kube_objects, "gpu-0", "gpu-1")
    core = client.CoreV1Api(api)
    core.patch_node("gpu-0", {"spec": {"unschedulable": True}})  # out of service: the budget of one is spent
    repair = Intake(api).report("gpu-1", [_xid(0, Source.AGENT)], source=Source.AGENT)
    operator, cache = _operator(api, 1)
    _reset(apiserver)

    decisions = [operator.reconcile(repair.name) for _ in range(4)]  # queued, then deciding again every 30 s

    served = _served(apiserver)
    assert [r.decision.step.value for r in decisions if r is not None] == ["queue"] * 4
    assert served[("patch", "nodes")] == 1  # the tag, once: the cache shows it to every later decision
    assert ("get", "nodes") not in served  # decided from the cached node: no read for the tag
    assert core.read_node("gpu-1").metadata.labels[LABEL_STATE] == "faulty"

    core.patch_node("gpu-0", {"spec": {"unschedulable": False}})  # a slot frees up; the watch tells the cache
    cache.node_seen(api.sanitize_for_serialization(core.read_node("gpu-0")))
    admitted = operator.reconcile(repair.name)

    assert admitted is not None and admitted.decision.step.value == "cordon"
    node = core.read_node("gpu-1")
    assert node.metadata.labels[LABEL_STATE] == "repairing" and node.spec.unschedulable


def test_an_alerts_repair_admitted_at_once_never_writes_faulty_and_the_alert_costs_one_write(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _setup(apiserver, kube_objects, "gpu-1")
    webhook_cache = WebhookCache(api).start()  # the webhook's own caches: intake reads the node's repairs there
    try:
        assert webhook_cache.wait_synced(10)
        _reset(apiserver)
        repair = Intake(api, webhook_cache).report("gpu-1", [_xid(2, Source.GRAFANA)], source=Source.GRAFANA)
        # the alert: its repair's create (the one write), and the opt-out check's node read; no node patch
        assert _served(apiserver) == {("create", "gpurepairs"): 1, ("get", "nodes"): 1}, _served(apiserver)
    finally:
        webhook_cache.stop()
    core = client.CoreV1Api(api)
    assert LABEL_STATE not in (core.read_node("gpu-1").metadata.labels or {})
    operator, _ = _operator(api, "100%")
    _reset(apiserver)

    admitted = operator.reconcile(repair.name)

    assert admitted is not None and admitted.decision.step.value == "cordon"
    assert _served(apiserver)[("patch", "nodes")] == 1  # the cordon: taint, cordon and `repairing` in one patch
    assert core.read_node("gpu-1").metadata.labels[LABEL_STATE] == "repairing"


def test_a_queued_repair_cancelled_by_a_human_takes_its_faulty_tag_off_and_opens_no_manual_repair(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    """A ``faulty`` label left behind with no repair would make the operator open a manual repair of the node."""
    _setup(apiserver, kube_objects, "gpu-0", "gpu-1")
    core = client.CoreV1Api(api)
    core.patch_node("gpu-0", {"spec": {"unschedulable": True}})
    repair = Intake(api).report("gpu-1", [_xid(0, Source.ALERTMANAGER)], source=Source.ALERTMANAGER)
    operator, cache = _operator(api, 1)
    assert (queued := operator.reconcile(repair.name)) is not None and queued.decision.step.value == "queue"
    assert core.read_node("gpu-1").metadata.labels[LABEL_STATE] == "faulty"
    cache.node_seen(api.sanitize_for_serialization(core.read_node("gpu-1")))  # the watch shows the tag
    annotations = {"metadata": {"annotations": {ANNOTATION_CANCEL_REQUESTED_BY: "alice"}}}
    custom = client.CustomObjectsApi(api)
    cache.repair_seen(custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, repair.name, annotations))

    cancelled = operator.reconcile(repair.name)

    assert cancelled is not None and cancelled.decision.step.value == "cancel"
    node = core.read_node("gpu-1")
    assert LABEL_STATE not in (node.metadata.labels or {}) and not node.spec.unschedulable
