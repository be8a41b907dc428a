"""Safety windows count from the operator's receive time, whatever the source's clock says (table tests).

A late-redelivered alert carries a ``startsAt`` minutes old; an agent whose
node clock runs ahead reports ``firstSeen`` in the future. Neither may move
the settle time, the breaker's windows or the lemon window.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.machine import Facts, PoolUsage, RepairView, Step, decide
from repairbot.model import format_time
from repairbot.notify.view import RepairView as NotifyView
from repairbot.operator.facts import FleetView, earlier_repairs, fleet_faults
from repairbot.policy import parse_policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
POLICY = parse_policy({"breaker": {"settleTime": "30s", "window": "10m", "domainWindow": "10m"}})
SOURCE_CLOCKS = {
    "alert redelivered 11 min late": -timedelta(minutes=11),
    "agent 60 s ahead": timedelta(seconds=60),
    "agent 60 s behind": -timedelta(seconds=60),
    "agent on time": timedelta(0),
}


def repair(first_seen: datetime, status: dict[str, Any] | None = None, created: datetime = T0) -> dict[str, Any]:
    finding = {"code": "xid-79", "firstSeen": format_time(first_seen), "gpu": {"index": 0}, "action": "reboot"}
    return {"metadata": {"name": "gpu-1-20261122030000", "creationTimestamp": format_time(created)},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]},
            "status": status or {}}  # fmt: skip


def step(obj: dict[str, Any], now: datetime) -> Any:
    """One decision, both of its writes applied (as the reconciler does)."""
    decision = decide(RepairView.from_object(obj), Facts(pool=PoolUsage(size=100)), POLICY, now)
    obj["status"].update(copy.deepcopy(dict(decision.patch)))
    obj["status"].update(copy.deepcopy(dict(decision.after)))
    return decision


@pytest.mark.parametrize("skew", SOURCE_CLOCKS.values(), ids=SOURCE_CLOCKS.keys())
def test_the_first_write_records_the_receive_time_and_keeps_the_sources_as_evidence(skew: timedelta) -> None:
    obj = repair(T0 + skew)
    assert step(obj, T0).step is Step.CORDON
    assert obj["status"]["receivedAt"] == format_time(T0)
    assert obj["status"]["detectedAt"] == format_time(T0 + skew)
    step(obj, T0 + timedelta(seconds=5))
    assert obj["status"]["receivedAt"] == format_time(T0)  # written once


@pytest.mark.parametrize("skew", SOURCE_CLOCKS.values(), ids=SOURCE_CLOCKS.keys())
def test_the_settle_time_counts_from_the_receive_time(skew: timedelta) -> None:
    obj = repair(T0 + skew)
    facts = Facts(pool=PoolUsage(size=100), node_unschedulable=True, our_taint=True)
    step(obj, T0)  # cordon
    waiting = decide(RepairView.from_object(obj), facts, POLICY, T0 + timedelta(seconds=5))
    assert waiting.step is Step.NOTHING and waiting.requeue_after == timedelta(seconds=25), waiting.message
    assert decide(RepairView.from_object(obj), facts, POLICY, T0 + timedelta(seconds=31)).step is Step.START_DRAIN


@pytest.mark.parametrize("skew", SOURCE_CLOCKS.values(), ids=SOURCE_CLOCKS.keys())
def test_breaker_and_lemon_windows_count_from_the_receive_time(skew: timedelta) -> None:
    received = T0 - timedelta(minutes=2)
    written = repair(received + skew, {"detectedAt": format_time(received + skew), "receivedAt": format_time(received),
                                       "attempt": 1}, created=received)  # fmt: skip
    unwritten = repair(T0 + skew, created=T0 - timedelta(seconds=1))  # no reconcile yet: the API server's time
    unwritten["metadata"]["name"] = "gpu-1-20261122030100"
    fleet = FleetView({"gpu-1": {"metadata": {"name": "gpu-1", "labels": {}}}}, (written, unwritten))

    assert sorted(f.at for f in fleet_faults(fleet, POLICY, T0)) == [received, T0 - timedelta(seconds=1)]
    view = RepairView.from_object(unwritten)
    assert earlier_repairs(fleet, view, POLICY, T0) == (received,)


def test_slack_and_jira_measure_mtta_from_the_receive_time_never_negative() -> None:
    ahead = T0 + timedelta(seconds=60)  # the agent's clock
    status = {"phase": "Succeeded", "detectedAt": format_time(ahead), "receivedAt": format_time(T0),
              "acknowledgedAt": format_time(T0 + timedelta(seconds=1)),
              "resolvedAt": format_time(T0 + timedelta(minutes=5))}  # fmt: skip
    view = NotifyView.from_resource(repair(ahead, status))
    assert view.mtta == timedelta(seconds=1) and view.mttr == timedelta(minutes=5)
