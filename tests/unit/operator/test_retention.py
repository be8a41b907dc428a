"""Retention (pure): finished repairs past the TTL and beyond the newest N per node go; unreleased quarantines stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.model import format_time
from repairbot.operator.retention import expired
from repairbot.policy import RetentionPolicy

NOW = datetime(2026, 6, 1, tzinfo=UTC)
POLICY = RetentionPolicy(keep_per_node=2, ttl=timedelta(days=30))


def repair(name: str, phase: str | None, ended_days_ago: float, node: str = "gpu-1", **status: Any) -> dict[str, Any]:
    at = format_time(NOW - timedelta(days=ended_days_ago))
    body: dict[str, Any] = {"metadata": {"name": name, "creationTimestamp": at}, "spec": {"nodeName": node},
                            "status": {"history": [{"step": "x", "outcome": "done", "at": at}], **status}}  # fmt: skip
    if phase:
        body["status"]["phase"] = phase
    return body


def names(repairs: list[Any]) -> list[str]:
    return sorted(r["metadata"]["name"] for r in repairs)


def test_old_finished_repairs_beyond_the_newest_n_per_node_go() -> None:
    repairs = [repair(f"r{i}", "Succeeded", 40 + i) for i in range(5)]
    assert names(expired(repairs, POLICY, NOW)) == ["r2", "r3", "r4"]


def test_young_repairs_stay_even_beyond_n() -> None:
    repairs = [repair(f"r{i}", "Succeeded", i) for i in range(10)]
    assert expired(repairs, POLICY, NOW) == []


def test_the_newest_n_stay_however_old() -> None:
    repairs = [repair("a", "Failed", 400), repair("b", "Cancelled", 300)]
    assert expired(repairs, POLICY, NOW) == []


@pytest.mark.parametrize("phase", [None, "Pending", "Cordoned", "Draining", "Remediating", "Validating", "Blocked"])
def test_active_repairs_are_never_deleted_and_do_not_count_toward_n(phase: str | None) -> None:
    repairs = [repair("active", phase, 400), repair("a", "Succeeded", 100), repair("b", "Succeeded", 90)]
    assert expired(repairs, POLICY, NOW) == []


def test_a_quarantine_stays_until_released() -> None:
    held = repair("q", "Quarantined", 400)
    released = repair("q2", "Quarantined", 400, conditions=[{"type": "Released", "status": "True"}])
    not_yet = repair("q3", "Quarantined", 400, conditions=[{"type": "Released", "status": "False"}])
    repairs = [repair("a", "Succeeded", 50), repair("b", "Succeeded", 45), held, released, not_yet]
    assert names(expired(repairs, POLICY, NOW)) == ["q2"]


def test_nodes_are_counted_apart() -> None:
    repairs = [repair(f"{node}-{i}", "Succeeded", 40 + i, node=node) for node in ("gpu-1", "gpu-2") for i in range(3)]
    assert names(expired(repairs, POLICY, NOW)) == ["gpu-1-2", "gpu-2-2"]


def test_resolved_at_is_the_end_when_present_and_unreadable_ends_are_kept() -> None:
    late = repair("late", "Succeeded", 400, resolvedAt=format_time(NOW - timedelta(days=1)))
    broken = repair("broken", "Succeeded", 400)
    broken["status"]["history"][-1]["at"] = "not a time"
    broken["metadata"]["creationTimestamp"] = "garbage"
    repairs = [repair("a", "Succeeded", 50), repair("b", "Succeeded", 45), late, broken]
    assert names(expired(repairs, POLICY, NOW)) == ["a"]  # late ended yesterday: among the newest two


def test_repairs_already_being_deleted_are_left_alone() -> None:
    gone = repair("gone", "Succeeded", 400)
    gone["metadata"]["deletionTimestamp"] = format_time(NOW)
    assert expired([repair("a", "Succeeded", 50), repair("b", "Succeeded", 45), gone], POLICY, NOW) == []
