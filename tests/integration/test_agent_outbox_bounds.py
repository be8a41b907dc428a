"""The agent's outbox against a real intake: a batch the API server refuses for size is dropped, not re-sent forever."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.agent.runner import NodeAgent
from repairbot.agent.service import IntakeSink
from repairbot.kube.intake import Intake
from repairbot.model import Action, Finding, GpuRef
from repairbot_sim.kube.faults import FaultRule


def xid(code: int, gpu: int) -> Finding:
    return Finding(f"xid-{code}", f"Xid {code}", Action.REBOOT, gpu=GpuRef(index=gpu), xid=code)


def test_agent_drops_a_batch_the_api_server_refuses_as_too_large_instead_of_retrying_forever(
    kube_api: client.ApiClient, apiserver: Any, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))  # intake opens repairs of real nodes only
    agent = NodeAgent(node="gpu-1", detectors=[], sink=IntakeSink(Intake(kube_api)))
    apiserver.server.faults.add(FaultRule(method="POST", path="/gpurepairs", status=500,
                                          message="etcdserver: request is too large", count=-1))  # fmt: skip
    agent.on_event(xid(79, 0))
    posts_after_first = sum(1 for f in apiserver.server.faults.fired if f[1] == "POST")
    for _ in range(5):
        agent.flush()
    assert sum(1 for f in apiserver.server.faults.fired if f[1] == "POST") == posts_after_first == 2
    assert agent.tracker.take_outbox() == []
    assert agent.metrics.registry.get_sample_value("repairbot_agent_intake_dropped_total") == 1
    apiserver.server.faults.clear()
    agent.on_event(xid(48, 1))  # the next finding goes through as usual
    repairs = client.CustomObjectsApi(kube_api).list_cluster_custom_object("repairbot.io", "v1alpha1", "gpurepairs")
    assert [f["code"] for f in repairs["items"][0]["spec"]["findings"]] == ["xid-48"]


def test_an_agent_that_cannot_reach_intake_keeps_a_bounded_outbox(
    kube_api: client.ApiClient, apiserver: Any, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    agent = NodeAgent(node="gpu-1", detectors=[], sink=IntakeSink(Intake(kube_api)))
    apiserver.server.faults.add(FaultRule(method="*", path="/gpurepairs", status=403, message="forbidden", count=-1))
    for i in range(300):
        agent.tracker.requeue([xid(13, i % 8), Finding(f"alert-{i}", "x", Action.NOTIFY, gpu=GpuRef(index=i % 8))])
        agent.flush()
    pending = agent.tracker.take_outbox()
    assert len(pending) <= 24
    assert sum(f.count for f in pending) == 600  # merged and tallied, nothing silently lost
