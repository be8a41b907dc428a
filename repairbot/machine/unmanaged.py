"""The drain's word on pods no controller owns: named once per drain in the repair's history.

``kubectl drain`` refuses such pods without ``--force`` because nothing
recreates them. RepairBot drains them like any other pod (the policy's rules
and the PodDisruptionBudgets decide how), but their owners deserve to know,
by name, that their pod is gone for good: a ``drain`` / ``unmanaged-pods``
history entry, which Slack and Jira carry like every other step. One entry per
drain (counted from its ``start-drain``), whatever the number of passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

STEP_DRAIN = "drain"
OUTCOME_UNMANAGED = "unmanaged-pods"
NAMED_MAX = 10
"""Pods named in the entry; the rest are counted (a node can hold a hundred bare pods)."""


def unmanaged_message(pods: Sequence[str], *, named: int = NAMED_MAX) -> str:
    """``2 pods not managed by a controller: they will not come back after eviction: train/a, train/b``."""
    shown = ", ".join(pods[:named])
    more = len(pods) - named
    noun = "pod" if len(pods) == 1 else "pods"
    rest = f" and {more} more" if more > 0 else ""
    return f"{len(pods)} {noun} not managed by a controller: they will not come back after eviction: {shown}{rest}"


def already_noted(history: Sequence[Mapping[str, Any]]) -> bool:
    """Has this drain (the entries since the last ``start-drain``) named its unmanaged pods already?"""
    for entry in reversed(history):
        if entry.get("step") == STEP_DRAIN and entry.get("outcome") == OUTCOME_UNMANAGED:
            return True
        if entry.get("step") == "start-drain":
            return False
    return False
