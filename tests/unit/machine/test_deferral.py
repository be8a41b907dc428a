"""Deferred repairs in the pure machine: a pending row remap waits for idle GPUs, never evicting running work.

A tiny world plays the handler, as in ``test_machine.py``: it writes each
decision's ``patch``, the node marks, then ``after``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.catalog.deferral import deferrable_rule
from repairbot.catalog.xid import default_catalog
from repairbot.machine import DESTRUCTIVE_STEPS, Decision, Facts, PoolUsage, RepairView, Step, catalog_fallback, decide
from repairbot.model import Action, format_time
from repairbot.policy import Policy, parse_policy

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday, 10:00 UTC
NAME = "gpu-node-004-20261202100000"
NODE = "gpu-node-004"
DEFERRABLE = deferrable_rule(default_catalog())
FALLBACK = catalog_fallback(default_catalog())
TRAINING = ("train/llama-worker-004",)


def policy_for(data: dict[str, Any] | None = None) -> Policy:
    data = dict(data or {})
    data.setdefault("breaker", {}).setdefault("settleTime", "0s")
    return parse_policy(data)


def finding(code: str, minutes: int = 0, action: str = "gpu-reset") -> dict[str, Any]:
    return {"code": code, "firstSeen": format_time(T0 + timedelta(minutes=minutes)), "gpu": {"index": 2},
            "action": action}  # fmt: skip


def new_repair(*findings: dict[str, Any]) -> dict[str, Any]:
    found = list(findings or [finding("row-remap-pending")])
    return {"metadata": {"name": NAME}, "spec": {"nodeName": NODE, "source": "agent", "findings": found}}


@dataclass
class World:
    obj: dict[str, Any]
    policy: Policy = field(default_factory=policy_for)
    now: datetime = T0
    facts: Facts = field(default_factory=lambda: Facts(pool=PoolUsage(size=100), running_pods=TRAINING))
    unschedulable: bool = False

    @property
    def status(self) -> dict[str, Any]:
        return self.obj.setdefault("status", {})

    def decide(self) -> Decision:
        facts = replace(self.facts, node_unschedulable=self.unschedulable, our_taint=self.unschedulable)
        return decide(RepairView.from_object(self.obj), facts, self.policy, self.now, fallback=FALLBACK,
                      deferrable=DEFERRABLE)  # fmt: skip

    def step(self, expected: Step) -> Decision:
        decision = self.decide()
        assert decision.step is expected, (decision.step, decision.message)
        self.status.update(copy.deepcopy(dict(decision.patch)))
        if decision.cordon:
            self.unschedulable = True
        if decision.uncordon:
            self.unschedulable = False
        self.status.update(copy.deepcopy(dict(decision.after)))
        return decision

    def deferred(self) -> dict[str, Any] | None:
        return next((c for c in self.status.get("conditions") or () if c["type"] == "Deferred"), None)

    def history(self) -> list[str]:
        return [entry["step"] for entry in self.status.get("history") or ()]


def cordoned(world: World) -> World:
    world.step(Step.CORDON)
    assert world.unschedulable and world.status["phase"] == "Cordoned"
    return world


def test_a_pending_row_remap_is_deferred_while_a_gpu_pod_runs() -> None:
    world = cordoned(World(new_repair()))
    held = world.step(Step.DEFER)
    assert not held.is_destructive and not held.touches_node  # no drain, no eviction, no node change
    assert held.event == "Deferred" and held.requeue_after is not None
    assert world.status["phase"] == "Cordoned" and world.status["reason"] == "row-remap-pending"
    condition = world.deferred()
    assert condition is not None and condition["status"] == "True" and condition["reason"] == "WaitingForIdleGpus"
    assert "train/llama-worker-004" in condition["message"] and "nothing evicted" in condition["message"]
    assert world.history() == ["cordon", "cordon", "defer"]  # one note for Slack and Jira

    for minutes in (1, 60, 60 * 24 * 6):  # hours and days later, the job still running: the same quiet wait
        world.now = T0 + timedelta(minutes=minutes)
        again = world.step(Step.DEFER)
        assert not again.patch and not again.is_destructive
    assert world.history() == ["cordon", "cordon", "defer"]


def test_the_drain_starts_once_no_gpu_pod_is_left() -> None:
    world = cordoned(World(new_repair()))
    world.step(Step.DEFER)
    world.facts = replace(world.facts, running_pods=())  # the job finished
    drain = world.step(Step.START_DRAIN)
    assert world.status["phase"] == "Draining" and "GPUs idle" in drain.message
    condition = world.deferred()
    assert condition is not None and condition["status"] == "False" and condition["reason"] == "GpusIdle"
    world.facts = replace(world.facts, pods_left=0)
    request = world.step(Step.REQUEST_ACTION)
    assert request.action is Action.GPU_RESET


def test_an_idle_node_is_not_deferred_at_all() -> None:
    world = cordoned(World(new_repair(), facts=Facts(pool=PoolUsage(size=100), running_pods=())))
    drain = world.step(Step.START_DRAIN)
    assert drain.message == f"draining node {NODE}" and world.deferred() is None
    assert "defer" not in world.history()


def test_pods_that_cannot_be_listed_count_as_running() -> None:
    world = cordoned(World(new_repair(), facts=Facts(pool=PoolUsage(size=100), running_pods=None)))
    held = world.step(Step.DEFER)
    assert "could not be listed" in held.message


WEEKEND = {"deferral": {"maintenanceWindows": [{"days": ["Sat", "Sun"], "start": "02:00", "end": "06:00"}]}}


def test_a_maintenance_window_lets_the_drain_go_ahead_although_a_job_runs() -> None:
    world = cordoned(World(new_repair(), policy=policy_for(WEEKEND)))
    held = world.step(Step.DEFER)
    assert "or in the next maintenance window" in held.message
    world.now = datetime(2026, 12, 5, 1, 59, tzinfo=UTC)  # Saturday, a minute early
    world.step(Step.DEFER)
    world.now = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    drain = world.step(Step.START_DRAIN)
    assert "maintenance window open (Sat, Sun 02:00-06:00 UTC)" in drain.message
    assert world.deferred()["reason"] == "MaintenanceWindow"  # type: ignore[index]
    # The drain evicts what runs, as any drain does (PDBs honoured): the window is when that is accepted.
    world.facts = replace(world.facts, pods_left=1)
    world.step(Step.CONTINUE_DRAIN)


def test_inside_a_window_an_admitted_repair_drains_at_once() -> None:
    world = cordoned(World(new_repair(), policy=policy_for(WEEKEND), now=datetime(2026, 12, 6, 3, 0, tzinfo=UTC)))
    world.step(Step.START_DRAIN)
    assert world.deferred() is None


def test_an_urgent_finding_merged_into_a_deferred_repair_escalates_and_drains_at_once() -> None:
    world = cordoned(World(new_repair()))
    world.step(Step.DEFER)
    world.obj["spec"]["findings"].append(finding("xid-79", minutes=5, action="reboot"))
    escalated = world.step(Step.ESCALATE)
    assert world.status["reason"] == "xid-79" and world.status["attempt"] == 1
    assert "xid-79" in escalated.message
    drain = world.step(Step.START_DRAIN)  # the training job is still running: it cannot wait for that
    assert "xid-79 cannot wait" in drain.message
    condition = world.deferred()
    assert condition is not None and condition["status"] == "False" and condition["reason"] == "UrgentFinding"
    world.facts = replace(world.facts, pods_left=0)
    assert world.step(Step.REQUEST_ACTION).action is Action.REBOOT


def test_an_urgent_finding_of_the_same_ladder_ends_the_deferral_without_escalating() -> None:
    world = cordoned(World(new_repair()))
    world.step(Step.DEFER)
    world.obj["spec"]["findings"].append(finding("ecc-dbe", minutes=5))
    drain = world.step(Step.START_DRAIN)
    assert "ecc-dbe cannot wait" in drain.message and world.status["reason"] == "row-remap-pending"


@pytest.mark.parametrize("code", ["row-remap-pending", "retired-pages-pending", "xid-63", "xid-156"])
def test_every_next_convenient_time_finding_defers(code: str) -> None:
    # retired-pages-pending has no ladder of its own by default (notify): a cluster that resets for it defers.
    policy = policy_for({"ladders": {"retired-pages-pending": ["gpu-reset"]}})
    world = cordoned(World(new_repair(finding(code)), policy=policy))
    world.step(Step.DEFER)


@pytest.mark.parametrize("code", ["xid-79", "xid-48", "ecc-dbe", "row-remap-failure", "xid-64"])
def test_urgent_findings_never_defer(code: str) -> None:
    world = cordoned(World(new_repair(finding(code))))
    world.step(Step.START_DRAIN)


def test_without_a_deferral_rule_nothing_waits() -> None:
    world = cordoned(World(new_repair()))
    view = RepairView.from_object(world.obj)
    facts = replace(world.facts, node_unschedulable=True, our_taint=True)
    assert decide(view, facts, world.policy, world.now, fallback=FALLBACK).step is Step.START_DRAIN


def test_a_later_rung_is_never_deferred() -> None:
    """After a failed reset the node was drained already; the next rung must not wait for new work."""
    world = cordoned(World(new_repair(finding("xid-63"))))  # the catalog's ladder: reset, reboot, quarantine
    world.facts = replace(world.facts, running_pods=())
    world.step(Step.START_DRAIN)
    world.facts = replace(world.facts, pods_left=0)
    world.step(Step.REQUEST_ACTION)
    world.status["agent"] = {"requestId": world.status["request"]["id"], "result": "failed", "message": "busy"}
    world.step(Step.NEXT_RUNG)
    world.facts = replace(world.facts, running_pods=TRAINING)  # whatever the listing says now
    world.step(Step.START_DRAIN)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda w: setattr(w, "facts", replace(w.facts, finding_present=False)), "Cancelled"),  # the remap applied
        (lambda w: setattr(w, "unschedulable", False), "Cancelled"),  # a human uncordoned the node
        (lambda w: setattr(w, "facts", replace(w.facts, node_exists=False)), "Cancelled"),
    ],
)
def test_a_repair_that_ends_while_deferred_says_it_no_longer_waits(change: Any, expected: str) -> None:
    world = cordoned(World(new_repair()))
    world.step(Step.DEFER)
    change(world)
    world.step(Step.CANCEL)
    assert world.status["phase"] == expected
    condition = world.deferred()
    assert condition is not None and condition["status"] == "False" and condition["reason"] == "RepairEnded"
    assert any(c["type"] == "Cancelled" and c["status"] == "True" for c in world.status["conditions"])


def _deferred_snapshot() -> dict[str, Any]:
    world = cordoned(World(new_repair()))
    world.step(Step.DEFER)
    return world.obj


DEFERRED = _deferred_snapshot()


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(["train/a", "ml/b", "inference/c"]), max_size=3).map(tuple),
    st.integers(0, 60 * 24 * 14),
    st.booleans(),
)
def test_never_an_eviction_while_gpu_pods_run_and_a_restart_decides_the_same(
    pods: tuple[str, ...], minutes: int, resumed: bool
) -> None:
    """No window, no urgent finding: while any GPU pod is listed, nothing destructive, whenever it is asked."""
    facts = Facts(pool=PoolUsage(size=100), running_pods=pods, node_unschedulable=True, our_taint=True,
                  pods_left=len(pods), resume_requested=resumed)  # fmt: skip
    now = T0 + timedelta(minutes=minutes)
    decision = decide(RepairView.from_object(DEFERRED), facts, policy_for(), now, fallback=FALLBACK,
                      deferrable=DEFERRABLE)  # fmt: skip
    if pods:
        assert decision.step is Step.DEFER and decision.step not in DESTRUCTIVE_STEPS
    else:
        assert decision.step is Step.START_DRAIN
    fresh = RepairView.from_object(copy.deepcopy(DEFERRED))  # a restarted operator reads the same status
    assert decide(fresh, facts, policy_for(), now, fallback=FALLBACK, deferrable=DEFERRABLE) == decision
