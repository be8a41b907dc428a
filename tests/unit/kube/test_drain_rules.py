"""Pure parts of the drain: which pods leave, in which mode, and which PDB said no."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.kube.drain import (
    DrainProgress,
    grace_ran_out,
    mode_for,
    must_leave,
    pdb_names_from_status,
    stays_on_node,
    uses_gpu,
)
from repairbot.model import GpuRef
from repairbot.policy import DrainMode, DrainPolicy, DrainRule

REAL_REFUSAL = {
    "kind": "Status",
    "status": "Failure",
    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
    "reason": "TooManyRequests",
    "details": {"causes": [{"reason": "DisruptionBudget",
                            "message": "The disruption budget llama needs 2 healthy pods and has 2 currently"}]},
    "code": 429,
}  # fmt: skip


ONE_NEEDS = "The disruption budget a needs 1 healthy pods and has 0 currently"


def _refusal(*messages: str) -> dict[str, Any]:
    causes = [{"reason": "DisruptionBudget", "message": message} for message in messages]
    return {**REAL_REFUSAL, "details": {"causes": causes}}


def _pod(
    *,
    namespace: str = "ml",
    labels: dict[str, str] | None = None,
    owner: str = "ReplicaSet",
    phase: str = "Running",
    annotations: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main"}
    if resources is not None:
        container["resources"] = resources
    return {
        "metadata": {
            "name": "p", "namespace": namespace, "labels": labels or {}, "annotations": annotations or {},
            "ownerReferences": [{"kind": owner, "name": "o", "controller": True}],
        },
        "spec": {"containers": [container]},
        "status": {"phase": phase},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (REAL_REFUSAL, ["llama"]),
        (_refusal(ONE_NEEDS, ONE_NEEDS), ["a"]),
        (_refusal("The disruption budget llama is still being processed by the server."), ["llama"]),
        ({**REAL_REFUSAL, "details": {}}, []),
        ({"message": "Too many requests, please try again later."}, []),
    ],
)  # fmt: skip
def test_pdb_names_from_the_refusal_status(body: dict[str, Any], names: list[str]) -> None:
    assert pdb_names_from_status(json.dumps(body)) == names


@pytest.mark.parametrize("body", [None, "", "not json", "[1, 2]", b"\xff"])
def test_a_body_that_is_no_status_names_nothing(body: Any) -> None:
    assert pdb_names_from_status(body) == []


@pytest.mark.parametrize(
    ("pod", "stays"),
    [
        (_pod(), False),
        (_pod(owner="DaemonSet"), True),
        (_pod(annotations={"kubernetes.io/config.mirror": "hash"}), True),
        (_pod(phase="Succeeded"), True),
        (_pod(phase="Failed"), True),
        (_pod(phase="Pending"), False),
    ],
)
def test_which_pods_stay_on_the_node(pod: dict[str, Any], stays: bool) -> None:
    assert stays_on_node(pod) is stays


@pytest.mark.parametrize(
    ("resources", "gpu"),
    [
        (None, False),
        ({"requests": {"cpu": "4"}}, False),
        ({"limits": {"nvidia.com/gpu": "1"}}, True),
        ({"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 2}}, True),
        ({"limits": {"nvidia.com/mig-1g.10gb": "1"}}, True),
        ({"limits": {"nvidia.com/gpu": "0"}}, False),
    ],
)
def test_gpu_pods_are_those_asking_for_one(resources: dict[str, Any] | None, gpu: bool) -> None:
    assert uses_gpu(_pod(resources=resources)) is gpu
    assert must_leave(_pod(resources=resources), GpuRef(index=0)) is gpu
    assert must_leave(_pod(resources=resources), None) is True


def test_an_init_container_holding_a_gpu_counts() -> None:
    pod = _pod()
    pod["spec"]["initContainers"] = [{"name": "warmup", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
    assert uses_gpu(pod)


POLICY = DrainPolicy(
    allow_force=True,
    rules=(
        DrainRule(DrainMode.WAIT, namespace="batch", wait_timeout=timedelta(minutes=10)),
        DrainRule(
            DrainMode.FORCE_AFTER, namespace="ml", label_selector={"force": "yes"}, wait_timeout=timedelta(minutes=5)
        ),
    ),
)


@pytest.mark.parametrize(
    ("pod", "elapsed", "expected"),
    [
        (_pod(namespace="batch"), timedelta(minutes=9), (DrainMode.WAIT, False)),
        (_pod(namespace="batch"), timedelta(minutes=10), (DrainMode.WAIT, True)),
        (_pod(labels={"force": "yes"}), timedelta(minutes=4), (DrainMode.FORCE_AFTER, False)),
        (_pod(labels={"force": "yes"}), timedelta(minutes=5), (DrainMode.FORCE_AFTER, True)),
        (_pod(labels={"force": "no"}), timedelta(hours=1), (DrainMode.EVICT, False)),
    ],
)
def test_mode_comes_from_the_first_matching_rule(
    pod: dict[str, Any], elapsed: timedelta, expected: tuple[DrainMode, bool]
) -> None:
    assert mode_for(pod, POLICY, elapsed) == expected


def test_force_after_without_allow_force_is_plain_eviction() -> None:
    rules = DrainPolicy(allow_force=False, rules=POLICY.rules)
    assert mode_for(_pod(labels={"force": "yes"}), rules, timedelta(hours=1)) == (DrainMode.EVICT, True)


def test_grace_runs_out_after_the_deletion_stamp_plus_the_grace() -> None:
    pod = _pod()
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert not grace_ran_out(pod, now)
    pod["metadata"] |= {"deletionTimestamp": "2026-01-01T11:59:00Z", "deletionGracePeriodSeconds": 30}
    assert grace_ran_out(pod, now)
    pod["metadata"]["deletionGracePeriodSeconds"] = 90
    assert not grace_ran_out(pod, now)


def test_summary_names_pods_budgets_and_errors() -> None:
    progress = DrainProgress(
        pods_left=3,
        blocked={"train/llama-worker-002": "train/llama"},
        waiting=["batch/render-7"],
        leaving=["ml/train-0"],
        errors=["ml/x: eviction failed: 500 InternalError: boom"],
    )
    assert progress.summary() == (
        "3 pods left: train/llama-worker-002 blocked by PDB train/llama; batch/render-7 waiting to finish; "
        "ml/train-0 terminating; error: ml/x: eviction failed: 500 InternalError: boom"
    )
    assert progress.blocking_pdbs == ("train/llama",) and not progress.done


def test_summary_of_a_finished_drain_and_of_long_lists() -> None:
    assert DrainProgress(pods_left=0).summary() == "no pods left to drain"
    many = DrainProgress(pods_left=7, evicted=[f"ml/p{i}" for i in range(7)])
    assert many.summary() == "7 pods left: evicted ml/p0, ml/p1, ml/p2, ml/p3, ml/p4 and 2 more"
