"""Drain passes through the real client's Eviction API against the emulated API server (PDBs evaluated live)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from repairbot.kube.drain import DrainProgress, drain_step
from repairbot.model import GpuRef
from repairbot.policy import DrainMode, DrainPolicy, DrainRule
from repairbot_sim.kube.faults import FaultRule

NODE = "gpu-1"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVICT_ONLY = DrainPolicy()


def _seed(apiserver: Any, kube_objects: Any, *pods: dict[str, Any]) -> None:
    apiserver.server.create_object(kube_objects.gpu_node(NODE))
    for pod in pods:
        apiserver.server.create_object(pod)


def _pods_on_node(apiserver: Any) -> list[str]:
    pods = apiserver.server.list_objects("v1", "Pod")
    return sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods if p["spec"].get("nodeName") == NODE
    )


def _step(
    api: client.ApiClient, rules: DrainPolicy = EVICT_ONLY, *, after: timedelta = timedelta(0), **kw: Any
) -> DrainProgress:
    return drain_step(api, NODE, rules, now=START + after, started_at=START, **kw)


def test_eviction_leaves_daemonset_mirror_and_finished_pods(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    mirror = kube_objects.running_pod("kube-proxy-gpu-1", NODE, namespace="kube-system", owner=("Node", NODE))
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    finished = kube_objects.running_pod("job-done", NODE, owner=("Job", "job"))
    finished["status"]["phase"] = "Succeeded"
    _seed(
        apiserver,
        kube_objects,
        kube_objects.running_pod("train-0", NODE),
        kube_objects.running_pod("repairbot-agent-x", NODE, namespace="repairbot", owner=("DaemonSet", "agent")),
        mirror,
        finished,
    )
    progress = _step(api)
    assert progress.evicted == ["ml/train-0"]
    assert progress.pods_left == 0 and progress.done
    assert progress.summary() == "no pods left to drain: evicted ml/train-0"
    assert _pods_on_node(apiserver) == ["kube-system/kube-proxy-gpu-1", "ml/job-done", "repairbot/repairbot-agent-x"]


def test_a_pdb_blocks_until_it_is_relaxed(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> None:
    _seed(
        apiserver,
        kube_objects,
        kube_objects.running_pod("llama-worker-001", NODE, namespace="train", labels={"app": "llama"}),
        kube_objects.running_pod("llama-worker-002", NODE, namespace="train", labels={"app": "llama"}),
        kube_objects.pdb("llama", namespace="train", min_available=1, app="llama"),
    )
    first = _step(api)
    assert first.evicted == ["train/llama-worker-001"]
    assert first.blocked == {"train/llama-worker-002": "train/llama"}
    assert first.blocking_pdbs == ("train/llama",)
    assert first.pods_left == 1
    assert first.summary().startswith("1 pod left: train/llama-worker-002 blocked by PDB train/llama")
    again = _step(api, after=timedelta(seconds=5))
    assert again.blocked == {"train/llama-worker-002": "train/llama"} and again.pods_left == 1

    apiserver.server.apply_object(kube_objects.pdb("llama", namespace="train", min_available=0, app="llama"))
    last = _step(api, after=timedelta(seconds=10))
    assert last.evicted == ["train/llama-worker-002"]
    assert last.blocked == {} and last.pods_left == 0


def test_a_budget_refusal_the_server_does_not_explain_is_reported_without_reading_budgets(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    """kube-apiserver names the budget in every DisruptionBudget cause (pod/storage/eviction.go checkAndDecrement);
    a 429 that does not is reported as such, without listing the namespace's budgets (the operator may not)."""
    _seed(apiserver, kube_objects, kube_objects.running_pod("train-0", NODE), kube_objects.pdb("train-pdb"))
    apiserver.server.faults.add(
        FaultRule(
            method="POST",
            path=r"/pods/train-0/eviction",
            status=429,
            count=-1,
            message="Cannot evict pod as it would violate the pod's disruption budget.",
        )
    )
    progress = _step(api)
    assert progress.blocked == {"ml/train-0": "ml/<unknown>"}
    assert progress.errors == []
    asked = {row.get("resource") for row in apiserver.server.audit.rows()}
    assert "poddisruptionbudgets" not in asked


def test_wait_mode_leaves_pods_until_the_wait_runs_out(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    rules = DrainPolicy(rules=(DrainRule(DrainMode.WAIT, namespace="batch", wait_timeout=timedelta(minutes=10)),))
    _seed(
        apiserver,
        kube_objects,
        kube_objects.running_pod("render-7", NODE, namespace="batch", owner=("Job", "render")),
        kube_objects.running_pod("train-0", NODE),
    )
    early = _step(api, rules, after=timedelta(minutes=3))
    assert early.waiting == ["batch/render-7"]
    assert early.evicted == ["ml/train-0"]
    assert early.pods_left == 1
    assert "batch/render-7 waiting to finish" in early.summary()
    late = _step(api, rules, after=timedelta(minutes=10))
    assert late.evicted == ["batch/render-7"] and late.pods_left == 0


def _force_rules(*, allow_force: bool) -> DrainPolicy:
    rule = DrainRule(DrainMode.FORCE_AFTER, namespace="ml", wait_timeout=timedelta(minutes=5))
    return DrainPolicy(allow_force=allow_force, rules=(rule,))


def test_force_after_deletes_past_the_timeout_only_with_allow_force(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _seed(
        apiserver, kube_objects, kube_objects.running_pod("train-0", NODE), kube_objects.pdb("train", min_available=1)
    )
    before = _step(api, _force_rules(allow_force=True), after=timedelta(minutes=4))
    assert before.blocked == {"ml/train-0": "ml/train"} and before.forced == []

    refused = _step(api, _force_rules(allow_force=False), after=timedelta(minutes=6))
    assert refused.blocked == {"ml/train-0": "ml/train"} and refused.forced == []
    assert _pods_on_node(apiserver) == ["ml/train-0"]

    forced = _step(api, _force_rules(allow_force=True), after=timedelta(minutes=6))
    assert forced.forced == ["ml/train-0"]
    assert forced.pods_left == 0
    assert "force-deleted ml/train-0" in forced.summary()
    assert _pods_on_node(apiserver) == []


def test_a_gpu_reset_moves_only_pods_that_use_a_gpu(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> None:
    gpu_pod = kube_objects.running_pod("train-0", NODE)
    gpu_pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    cpu_pod = kube_objects.running_pod("log-shipper", NODE, namespace="obs", owner=("ReplicaSet", "shipper"))
    _seed(apiserver, kube_objects, gpu_pod, cpu_pod)
    progress = _step(api, only_gpu=GpuRef(index=3))
    assert progress.evicted == ["ml/train-0"]
    assert progress.pods_left == 0
    assert _pods_on_node(apiserver) == ["obs/log-shipper"]


def test_terminating_pods_count_as_left_until_gone(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> None:
    _seed(apiserver, kube_objects, kube_objects.running_pod("train-0", NODE, termination_seconds=2))
    first = _step(api)
    assert first.evicted == ["ml/train-0"] and first.pods_left == 1
    second = _step(api, after=timedelta(seconds=1))
    assert second.leaving == ["ml/train-0"] and second.evicted == [] and second.pods_left == 1
    assert "ml/train-0 terminating" in second.summary()
    deadline = time.monotonic() + 6
    while _step(api, after=timedelta(seconds=3)).pods_left and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _step(api, after=timedelta(seconds=4)).done


def test_api_errors_are_retried_then_reported(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> None:
    _seed(apiserver, kube_objects, kube_objects.running_pod("train-0", NODE), kube_objects.running_pod("train-1", NODE))
    apiserver.server.faults.add(FaultRule(method="POST", path=r"/pods/train-0/eviction", status=500, count=1))
    apiserver.server.faults.add(
        FaultRule(method="POST", path=r"/pods/train-1/eviction", status=503, count=-1, message="etcd unavailable")
    )
    progress = _step(api)
    assert progress.evicted == ["ml/train-0"]  # one 500, then success on the retry
    assert progress.errors == ["ml/train-1: eviction failed: 503 ServiceUnavailable: etcd unavailable"]
    assert progress.pods_left == 1
    assert "error: ml/train-1: eviction failed" in progress.summary()


def test_a_pod_gone_before_its_eviction_is_not_an_error(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects, kube_objects.running_pod("train-0", NODE))
    apiserver.server.faults.add(FaultRule(method="POST", path=r"/pods/train-0/eviction", status=404, count=1))
    progress = _step(api)
    assert progress.errors == [] and progress.evicted == []
    assert progress.pods_left == 1  # the injected 404 lied: the recount still sees the pod


def _bare(kube_objects: Any, name: str, **kw: Any) -> dict[str, Any]:
    """A pod no controller owns (a ``kubectl run`` debug shell): nothing recreates it."""
    pod = kube_objects.running_pod(name, NODE, **kw)
    del pod["metadata"]["ownerReferences"]
    return pod


def test_a_bare_pod_is_named_and_evicted_through_its_budget_never_deleted(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _seed(
        apiserver,
        kube_objects,
        _bare(kube_objects, "debug-shell", namespace="train", labels={"app": "llama"}),
        kube_objects.running_pod("llama-worker-001", NODE, namespace="train", labels={"app": "llama"}),
        kube_objects.pdb("llama", namespace="train", min_available=1, app="llama"),
    )
    first = _step(api)
    assert first.unmanaged == ["train/debug-shell"]
    assert first.evicted == ["train/debug-shell"] and first.blocked == {"train/llama-worker-001": "train/llama"}
    assert "not managed by a controller: train/debug-shell" in first.summary()
    assert _pods_on_node(apiserver) == ["train/llama-worker-001"]

    _seed_only(apiserver, _bare(kube_objects, "notebook", namespace="train", labels={"app": "llama"}))
    second = _step(api)  # two healthy under minAvailable 1: the worker goes, then the budget refuses the bare pod
    assert second.evicted == ["train/llama-worker-001"]
    assert second.blocked == {"train/notebook": "train/llama"}
    assert second.unmanaged == ["train/notebook"] and second.forced == []
    assert _pods_on_node(apiserver) == ["train/notebook"]


def _seed_only(apiserver: Any, *objects: dict[str, Any]) -> None:
    for obj in objects:
        apiserver.server.create_object(obj)
