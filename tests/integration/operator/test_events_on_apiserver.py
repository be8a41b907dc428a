"""Kubernetes Events from the EventRecorder, read back through the API and the real kubectl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client, config

from repairbot.kube.client import raw_call
from repairbot.kube.events import EventRecorder, EventType, ObjectRef
from repairbot.model import parse_time
from repairbot_sim.kube.faults import FaultRule
from repairbot_sim.kubeapi import write_kubeconfig

REPAIR = {
    "apiVersion": "repairbot.io/v1alpha1",
    "kind": "GPURepair",
    "metadata": {"name": "gpu-1-20260101120000", "labels": {"repairbot.io/node": "gpu-1"}},
    "spec": {"nodeName": "gpu-1", "source": "agent"},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _events(core: client.CoreV1Api) -> list[dict[str, Any]]:
    return list(raw_call(core.list_namespaced_event, "default")["items"])


def test_events_land_on_the_node_and_the_repair(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    node = apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    repair = apiserver.server.create_object(REPAIR)
    recorder = EventRecorder(api, instance="operator-0")
    recorder.record(ObjectRef.from_object(node), EventType.WARNING, "Cordoned", "cordoned node gpu-1 for xid-79")
    recorder.record(ObjectRef.from_object(repair), "Normal", "drain-started", "draining node gpu-1")
    events = sorted(_events(core), key=lambda e: e["involvedObject"]["kind"])
    assert [(e["involvedObject"]["kind"], e["type"], e["reason"]) for e in events] == [
        ("GPURepair", "Normal", "DrainStarted"),
        ("Node", "Warning", "Cordoned"),
    ]
    on_repair, on_node = events
    assert on_node["involvedObject"] == {
        "kind": "Node",
        "name": "gpu-1",
        "apiVersion": "v1",
        "uid": node["metadata"]["uid"],
    }
    assert on_repair["involvedObject"]["apiVersion"] == "repairbot.io/v1alpha1"
    assert on_repair["involvedObject"]["uid"] == repair["metadata"]["uid"]
    assert on_node["reportingComponent"] == "repairbot-operator"
    assert on_node["reportingInstance"] == "operator-0"
    assert on_node["source"] == {"component": "repairbot-operator", "host": "operator-0"}
    assert on_node["count"] == 1 and on_node["firstTimestamp"] == on_node["lastTimestamp"]
    assert recorder.failures == 0


def test_an_involved_object_mapping_is_accepted(apiserver: Any, api: client.ApiClient, core: Any) -> None:
    recorder = EventRecorder(api)
    ref = {"apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair", "name": "gpu-1-20260101120000", "uid": "u-9"}
    recorder.record(ref, "Warning", "ReconcileError", "boom")
    (event,) = _events(core)
    assert event["involvedObject"] == ref and event["type"] == "Warning"


def test_a_repeat_within_ten_minutes_bumps_the_count(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    clock = FakeClock()
    recorder = EventRecorder(api, clock=clock)
    ref = ObjectRef.node("gpu-1")
    recorder.record(ref, EventType.NORMAL, "Draining", "3 pods left")
    clock.now += timedelta(minutes=4)
    recorder.record(ref, EventType.NORMAL, "Draining", "3 pods left")
    events = _events(core)
    assert len(events) == 1
    assert events[0]["count"] == 2
    assert parse_time(events[0]["firstTimestamp"]) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_time(events[0]["lastTimestamp"]) == datetime(2026, 1, 1, 12, 4, tzinfo=UTC)

    recorder.record(ref, EventType.NORMAL, "Draining", "2 pods left")  # a new message is a new event
    clock.now += timedelta(minutes=11)
    recorder.record(ref, EventType.NORMAL, "Draining", "3 pods left")  # past the window: a new event
    assert sorted((e["message"], e["count"]) for e in _events(core)) == [
        ("2 pods left", 1), ("3 pods left", 1), ("3 pods left", 2),
    ]  # fmt: skip


def test_an_expired_event_is_created_again(apiserver: Any, api: client.ApiClient, core: Any) -> None:
    recorder = EventRecorder(api)
    ref = ObjectRef.node("gpu-1")
    recorder.record(ref, EventType.NORMAL, "Validating", "validating node gpu-1")
    name = _events(core)[0]["metadata"]["name"]
    raw_call(core.delete_namespaced_event, name, "default")  # the API server's event TTL ran out
    recorder.record(ref, EventType.NORMAL, "Validating", "validating node gpu-1")
    assert [e["count"] for e in _events(core)] == [1]
    assert recorder.failures == 0


def test_a_failed_event_is_counted_never_raised(apiserver: Any, api: client.ApiClient) -> None:
    apiserver.server.faults.add(FaultRule(method="POST", path=r"/events", status=500, count=-1))
    recorder = EventRecorder(api)
    recorder.record(ObjectRef.node("gpu-1"), EventType.WARNING, "DrainTimedOut", "drain timed out")
    assert recorder.failures == 1
    assert recorder.last_error is not None and "DrainTimedOut" in recorder.last_error


def test_an_unreachable_api_server_is_counted_never_raised(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig("http://127.0.0.1:9", kubeconfig, token="nobody-listens")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    api.configuration.retries = 0
    recorder = EventRecorder(api)
    recorder.record(ObjectRef.node("gpu-1"), EventType.NORMAL, "Cordoned", "cordoned")
    assert recorder.failures == 1


def test_kubectl_describe_node_shows_the_events(
    apiserver: Any, api: client.ApiClient, kubectl: Any, kube_objects: Any
) -> None:
    node = apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    recorder = EventRecorder(api)
    recorder.record(ObjectRef.from_object(node), EventType.WARNING, "DrainBlocked",
                    "1 pod left: train/llama-worker-002 blocked by PDB train/llama")  # fmt: skip
    described = kubectl("describe", "node", "gpu-1").stdout
    assert "DrainBlocked" in described
    assert "blocked by PDB train/llama" in described
