"""PodDisruptionBudget arithmetic and eviction decisions match Kubernetes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot_sim.kube.disruption import budget_status, decide_eviction, is_pod_healthy, scaled_value


def pod(
    name: str,
    *,
    ready: bool = True,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    terminating: bool = False,
    namespace: str = "ml",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {"app": "train"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}}


def pdb(name: str = "train", *, namespace: str = "ml", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "train"}}, **spec},
    }


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [(3, 10, 3), ("50%", 3, 2), ("50%", 4, 2), ("10%", 5, 1), ("0%", 5, 0), ("100%", 7, 7), ("34%", 3, 2), ("5", 9, 5)],
)
def test_scaled_value_rounds_up(value: int | str, total: int, expected: int) -> None:
    assert scaled_value(value, total) == expected


@pytest.mark.parametrize(
    ("spec", "healthy", "unhealthy", "expected"),
    [
        # (expected_pods, current_healthy, desired_healthy, disruptions_allowed)
        ({"minAvailable": 2}, 3, 0, (3, 3, 2, 1)),
        ({"minAvailable": 3}, 3, 0, (3, 3, 3, 0)),
        ({"minAvailable": 3}, 2, 1, (3, 2, 3, 0)),
        ({"minAvailable": "50%"}, 3, 0, (3, 3, 2, 1)),
        ({"maxUnavailable": 1}, 3, 0, (3, 3, 2, 1)),
        ({"maxUnavailable": 1}, 2, 1, (3, 2, 2, 0)),
        ({"maxUnavailable": "50%"}, 3, 0, (3, 3, 1, 2)),
        ({"maxUnavailable": 0}, 4, 0, (4, 4, 4, 0)),
        ({"maxUnavailable": "100%"}, 2, 0, (2, 2, 0, 2)),
        ({}, 2, 0, (2, 2, 0, 2)),
    ],
)
def test_budget_status(spec: dict[str, Any], healthy: int, unhealthy: int, expected: tuple[int, int, int, int]) -> None:
    pods = [pod(f"h{i}") for i in range(healthy)] + [pod(f"u{i}", ready=False) for i in range(unhealthy)]
    pods.append(pod("other", labels={"app": "serve"}))
    pods.append(pod("elsewhere", namespace="other"))
    status = budget_status(pdb(**spec), pods)
    assert (
        status.expected_pods,
        status.current_healthy,
        status.desired_healthy,
        status.disruptions_allowed,
    ) == expected


def test_expected_scale_from_controllers_is_used_for_percentages() -> None:
    pods = [pod("a"), pod("b")]
    status = budget_status(pdb(maxUnavailable="25%"), pods, expected_scale=4)
    assert (status.expected_pods, status.desired_healthy, status.disruptions_allowed) == (4, 3, 0)


def test_terminating_pods_are_not_healthy() -> None:
    assert not is_pod_healthy(pod("a", terminating=True))
    assert is_pod_healthy(pod("a"))


def test_eviction_denied_with_kubernetes_wording() -> None:
    pods = [pod("a"), pod("b")]
    decision = decide_eviction(pods[0], [pdb(minAvailable=2)], pods)
    assert not decision.allowed and decision.code == 429
    assert decision.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert decision.cause == "The disruption budget train needs 2 healthy pods and has 2 currently"


@pytest.mark.parametrize(
    ("target", "budgets", "allowed", "code"),
    [
        (pod("a"), [], True, 201),
        (pod("a"), [pdb(minAvailable=1)], True, 201),
        (pod("a", phase="Succeeded"), [pdb(minAvailable=5)], True, 201),
        (pod("a", phase="Pending"), [pdb(minAvailable=5)], True, 201),
        (pod("a"), [pdb(minAvailable=1), pdb("second", minAvailable=1)], False, 500),
        (pod("a", ready=False), [pdb(minAvailable=1)], True, 201),  # unready pod, budget still healthy
        (pod("a", ready=False), [pdb(minAvailable=2)], False, 429),
        (pod("a", ready=False), [pdb(minAvailable=2, unhealthyPodEvictionPolicy="AlwaysAllow")], True, 201),
    ],
)
def test_eviction_decisions(target: dict[str, Any], budgets: list[dict[str, Any]], allowed: bool, code: int) -> None:
    pods = [target, pod("b")]
    decision = decide_eviction(target, budgets, pods)
    assert (decision.allowed, decision.code) == (allowed, code)


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 25))
def test_disruptions_never_negative_and_never_exceed_healthy(healthy: int, unhealthy: int, min_available: int) -> None:
    pods = [pod(f"h{i}") for i in range(healthy)] + [pod(f"u{i}", ready=False) for i in range(unhealthy)]
    status = budget_status(pdb(minAvailable=min_available), pods)
    assert 0 <= status.disruptions_allowed <= healthy
    assert status.disruptions_allowed == max(0, healthy - min_available)
