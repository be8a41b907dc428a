"""PodDisruptionBudget arithmetic and the eviction decision, as pure functions.

This mirrors the Kubernetes disruption controller (``getExpectedPodCount``,
``countHealthyPods``) and the eviction subresource (``pkg/registry/core/pod/
storage/eviction.go``). The emulator has no controller loop, so it evaluates
budgets *live* from the current pods on every eviction and PDB read; a pod
that is terminating no longer counts as healthy, which is what makes a second
eviction in quick succession see the budget shrink, as the real
``disruptionsAllowed`` decrement does.

Rounding, as in ``intstr.GetScaledValueFromIntOrPercent(…, roundUp=true)``:
both ``minAvailable`` and ``maxUnavailable`` percentages round *up* against
the expected pod count, so ``maxUnavailable: 50%`` of 3 pods allows 2 down and
``minAvailable: 50%`` of 3 pods keeps 2 up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from repairbot_sim.kube.selectors import label_selector_from_object, match_labels

__all__ = [
    "BudgetStatus",
    "EvictionDecision",
    "budget_status",
    "decide_eviction",
    "is_pod_healthy",
    "matching_budgets",
    "scaled_value",
]

EVICTION_DENIED_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS_MESSAGE = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
)


def scaled_value(value: int | str, total: int, *, round_up: bool = True) -> int:
    """Resolve an int-or-percent (``3`` or ``"30%"``) against ``total``."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        if text.isdigit():
            return int(text)
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def is_pod_healthy(pod: dict[str, Any]) -> bool:
    """Ready and not terminating: what the disruption controller counts."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


@dataclass(frozen=True)
class BudgetStatus:
    """The numbers a PDB's status carries."""

    expected_pods: int
    current_healthy: int
    desired_healthy: int
    disruptions_allowed: int

    def as_status(self, generation: int) -> dict[str, Any]:
        return {
            "observedGeneration": generation,
            "expectedPods": self.expected_pods,
            "currentHealthy": self.current_healthy,
            "desiredHealthy": self.desired_healthy,
            "disruptionsAllowed": self.disruptions_allowed,
        }


def matching_budgets(pod: dict[str, Any], budgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PDBs in the pod's namespace whose selector matches its labels."""
    namespace = pod.get("metadata", {}).get("namespace")
    labels = pod.get("metadata", {}).get("labels") or {}
    return [
        pdb
        for pdb in budgets
        if pdb.get("metadata", {}).get("namespace") == namespace
        and match_labels(label_selector_from_object(pdb.get("spec", {}).get("selector")), labels)
    ]


def budget_status(
    pdb: dict[str, Any], pods: list[dict[str, Any]], *, expected_scale: int | None = None
) -> BudgetStatus:
    """Evaluate one budget against the pods it selects.

    ``pods`` are the pods of the PDB's namespace (filtered here by selector).
    ``expected_scale`` stands in for the sum of the owning controllers'
    ``spec.replicas`` (the real controller's ``getExpectedScale``); without it
    the number of matching pods is used.
    """
    spec = pdb.get("spec", {})
    selected = matching_budgets_pods(pdb, pods)
    healthy = sum(1 for pod in selected if is_pod_healthy(pod))
    scale = expected_scale if expected_scale is not None else len(selected)
    if spec.get("maxUnavailable") is not None:
        expected = scale
        desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected))
    elif spec.get("minAvailable") is not None:
        min_available = spec["minAvailable"]
        if isinstance(min_available, int):
            expected, desired = len(selected), min_available
        else:
            expected = scale
            desired = scaled_value(min_available, expected)
    else:
        expected, desired = len(selected), 0
    return BudgetStatus(expected, healthy, desired, max(0, healthy - desired))


def matching_budgets_pods(pdb: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of ``pods`` that ``pdb`` selects (same namespace, selector match)."""
    namespace = pdb.get("metadata", {}).get("namespace")
    requirements = label_selector_from_object(pdb.get("spec", {}).get("selector"))
    return [
        pod
        for pod in pods
        if pod.get("metadata", {}).get("namespace") == namespace
        and match_labels(requirements, pod.get("metadata", {}).get("labels"))
    ]


@dataclass(frozen=True)
class EvictionDecision:
    """What the eviction subresource answers: 201 (allowed), 429 or 500."""

    allowed: bool
    code: int = 201
    message: str = ""
    cause: str = ""
    budget: str = ""


def decide_eviction(pod: dict[str, Any], budgets: list[dict[str, Any]], pods: list[dict[str, Any]]) -> EvictionDecision:
    """Decide one eviction the way kube-apiserver does."""
    status = pod.get("status", {})
    if status.get("phase") in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        return EvictionDecision(allowed=True)
    matched = matching_budgets(pod, budgets)
    if len(matched) > 1:
        return EvictionDecision(allowed=False, code=500, message=MULTIPLE_BUDGETS_MESSAGE)
    if not matched:
        return EvictionDecision(allowed=True)
    pdb = matched[0]
    name = pdb["metadata"]["name"]
    numbers = budget_status(pdb, pods)
    if not is_pod_healthy(pod):
        policy = pdb.get("spec", {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        if policy == "AlwaysAllow" or numbers.current_healthy >= numbers.desired_healthy > 0:
            return EvictionDecision(allowed=True, budget=name)
    elif numbers.disruptions_allowed > 0:
        return EvictionDecision(allowed=True, budget=name)
    cause = (
        f"The disruption budget {name} needs {numbers.desired_healthy} healthy pods "
        f"and has {numbers.current_healthy} currently"
    )
    return EvictionDecision(allowed=False, code=429, message=EVICTION_DENIED_MESSAGE, cause=cause, budget=name)
