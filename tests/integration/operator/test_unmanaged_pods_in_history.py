"""A drain names the pods no controller owns in the GPURepair's history, once, bounded (reconciler + emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from repairbot.kube.client import raw_call
from repairbot.kube.events import EventRecorder
from repairbot.model import API_VERSION, GROUP, KIND, PLURAL, VERSION, format_time
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.reconciler import Reconciler
from repairbot.policy import parse_policy

NAME = "gpu-1-20261122120000"
T0 = datetime.now(UTC).replace(microsecond=0)


def _repair(apiserver: Any, api: client.ApiClient, kube_objects: Any, *pods: dict[str, Any]) -> None:
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    for pod in pods:
        apiserver.server.create_object(pod)
    finding = {"code": "xid-79", "gpu": {"index": 0}, "action": "reboot", "firstSeen": format_time(T0), "count": 1,
               "source": "agent", "message": "Xid 79: GPU has fallen off the bus"}  # fmt: skip
    body = {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": NAME, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]}}  # fmt: skip
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


def _bare(kube_objects: Any, name: str, **kw: Any) -> dict[str, Any]:
    pod = kube_objects.running_pod(name, "gpu-1", **kw)
    del pod["metadata"]["ownerReferences"]
    return pod


def _reconcile_until(api: client.ApiClient, phase: str, *, passes: int = 12) -> dict[str, Any]:
    reconciler = Reconciler(api=api, policy=parse_policy({"breaker": {"settleTime": "0s"}}),
                            breakers=BreakerStore(api, "repairbot"), events=EventRecorder(api))  # fmt: skip
    custom = client.CustomObjectsApi(api)
    for _ in range(passes):
        reconciler.reconcile(NAME)
        status = dict(custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME).get("status") or {})
        if status.get("phase") == phase:
            return status
    raise AssertionError(f"never reached {phase}: {status}")


def _notes(status: dict[str, Any]) -> list[str]:
    return [e["message"] for e in status["history"] if (e["step"], e["outcome"]) == ("drain", "unmanaged-pods")]


def test_a_drain_names_the_bare_pods_it_evicts_in_the_history_first_ten_and_a_count(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    bare = [_bare(kube_objects, f"debug-shell-{i:02d}", namespace="train", labels={"run": f"d{i}"}) for i in range(12)]
    _repair(apiserver, api, kube_objects, kube_objects.running_pod("llama-worker-001", "gpu-1"), *bare)
    status = _reconcile_until(api, "Remediating")
    shown = ", ".join(f"train/debug-shell-{i:02d}" for i in range(10))
    assert _notes(status) == [
        f"12 pods not managed by a controller: they will not come back after eviction: {shown} and 2 more"
    ]
    pods = raw_call(client.CoreV1Api(api).list_pod_for_all_namespaces)["items"]
    assert pods == []  # evicted under the policy's rules like any other pod


def test_a_bare_pod_a_budget_holds_is_named_once_while_the_drain_waits(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _repair(apiserver, api, kube_objects, _bare(kube_objects, "debug-shell", namespace="train"),
            kube_objects.pdb("shell", namespace="train", min_available=1))  # fmt: skip
    status = _reconcile_until(api, "Draining")
    for _ in range(3):  # more passes, the budget still says no
        status = _reconcile_until(api, "Draining")
    assert _notes(status) == [
        "1 pod not managed by a controller: they will not come back after eviction: train/debug-shell"
    ]
    events = raw_call(client.CoreV1Api(api).list_namespaced_event, "default")["items"]
    unmanaged = [e for e in events if e["reason"] == "UnmanagedPods"]
    assert {(e["involvedObject"]["kind"], e["type"]) for e in unmanaged} == {
        ("GPURepair", "Warning"),
        ("Node", "Warning"),
    }
    assert all("train/debug-shell" in e["message"] for e in unmanaged)
    assert [p["metadata"]["name"] for p in raw_call(client.CoreV1Api(api).list_pod_for_all_namespaces)["items"]] == [
        "debug-shell"
    ]
