"""Each admission blocker on its own, and the breaker's window arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot.machine import Facts, GpuRepair, PoolUsage, RepairView, Step, decide
from repairbot.machine.blockers import (
    BlockContext,
    ConcurrencyBudget,
    DryRunBlocker,
    LemonGpu,
    LemonNode,
    OptOutBlocker,
    RebootCap,
    StormBreaker,
    Verdict,
    budget_exhausted,
)
from repairbot.machine.breaker import Breaker, Breakers, BreakerState, Fault, find_trip
from repairbot.model import LABEL_DISABLED, LABEL_FAILURE_DOMAIN, Action, Finding, GpuRef
from repairbot.policy import BreakerPolicy, Policy, parse_policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
POLICY = Policy()


def view(name: str = "n1-20261122030000", **changes: Any) -> RepairView:
    return replace(RepairView(name=name, node=name.split("-2026")[0]), **changes)


def ctx(facts: Facts, *, policy: Policy = POLICY, rung: Action | None = None, **repair: Any) -> BlockContext:
    return BlockContext(view(**repair), facts, policy, T0, rung)


def test_opt_out_and_dry_run() -> None:
    assert OptOutBlocker().check(ctx(Facts())) is None
    opted = OptOutBlocker().check(ctx(Facts(node_labels={LABEL_DISABLED: "true"})))
    assert opted is not None and opted.verdict is Verdict.CANCEL
    assert DryRunBlocker().check(ctx(Facts())) is None
    assert DryRunBlocker().check(ctx(Facts(), dry_run=True)) is not None
    assert DryRunBlocker().check(ctx(Facts(), policy=parse_policy({"dryRun": True}))) is not None


@pytest.mark.parametrize(
    ("limit", "size", "out", "queued"),
    [(2, 100, 1, False), (2, 100, 2, True), ("5%", 100, 4, False), ("5%", 100, 5, True), ("10%", 8, 1, True),
     ("0%", 100, 0, True)],
)  # fmt: skip
def test_budget_absolute_and_percent(limit: int | str, size: int, out: int, queued: bool) -> None:
    policy = parse_policy({"budget": {"maxUnavailable": limit}})
    reason = ConcurrencyBudget().check(ctx(Facts(pool=PoolUsage("a100", size, out)), policy=policy))
    assert (reason is not None) is queued
    if reason is not None:
        assert reason.verdict is Verdict.QUEUE and "pool a100" in reason.message


def test_budget_is_per_pool_and_a_node_already_out_takes_no_new_slot() -> None:
    policy = parse_policy({"budget": {"maxUnavailable": 1, "poolLabel": "pool"}})
    full = Facts(pool=PoolUsage("h100", 10, 1))
    assert ConcurrencyBudget().check(ctx(full, policy=policy)) is not None
    assert ConcurrencyBudget().check(ctx(replace(full, pool=PoolUsage("a100", 10, 0)), policy=policy)) is None
    assert ConcurrencyBudget().check(ctx(replace(full, node_unschedulable=True), policy=policy)) is None
    assert ConcurrencyBudget().check(ctx(full, policy=policy, acknowledged_at=T0)) is None


@given(
    limit=st.one_of(st.integers(0, 50), st.integers(0, 100).map(lambda p: f"{p}%")),
    size=st.integers(0, 500),
    arrivals=st.integers(0, 600),
)
def test_budget_never_admits_more_than_the_cap(limit: int | str, size: int, arrivals: int) -> None:
    policy = parse_policy({"budget": {"maxUnavailable": limit}})
    out = 0
    for _ in range(arrivals):
        if budget_exhausted(out, size, "p", policy) is None:
            out += 1
    assert out <= policy.budget.max_unavailable.cap(size)


def leaf_storm(count: int = 6, domain: str = "leaf-3") -> tuple[Fault, ...]:
    return tuple(Fault(f"n{i}", T0 - timedelta(seconds=9 * i), domain) for i in range(count))


def test_six_faults_in_one_leaf_within_a_minute_open_the_breaker_and_block_all() -> None:
    faults = leaf_storm()
    trip = find_trip(faults, POLICY.breaker, now=T0)
    assert trip is not None and trip.domain == "leaf-3" and len(trip.nodes) == 6
    facts = Facts(recent_faults=faults, pool=PoolUsage(size=1000), node_labels={LABEL_FAILURE_DOMAIN: "leaf-3"})
    decisions = [decide(view(f"n{i}-20261122030000", findings=()), facts, POLICY, T0) for i in range(6)]
    assert {d.step for d in decisions} == {Step.BLOCK}
    assert all(d.patch["phase"] == "Blocked" and d.patch["incident"] == decisions[0].patch["incident"]
               for d in decisions)  # fmt: skip
    assert all(d.action is None for d in decisions)  # no reboot asked of anyone


@pytest.mark.parametrize(
    ("faults", "tripped"),
    [
        ((Fault("a", T0, "leaf-1"),), False),
        ((Fault("a", T0, "leaf-1"), Fault("b", T0, "leaf-2")), False),
        ((Fault("a", T0, "leaf-1"), Fault("b", T0 - timedelta(minutes=4), "leaf-1")), True),
        ((Fault("a", T0, "leaf-1"), Fault("b", T0 - timedelta(minutes=6), "leaf-1")), False),
        ((Fault("a", T0, "leaf-1"), Fault("a", T0, "leaf-1")), False),  # one node twice is one bad node
        (tuple(Fault(f"n{i}", T0 - timedelta(minutes=i)) for i in range(10)), False),
        (tuple(Fault(f"n{i}", T0 - timedelta(seconds=50 * i)) for i in range(11)), True),
        (tuple(Fault(f"n{i}", T0 - timedelta(minutes=i)) for i in range(11)), False),  # 11th: exactly 10m old
    ],
)
def test_breaker_window_counting(faults: tuple[Fault, ...], tripped: bool) -> None:
    assert (find_trip(faults, POLICY.breaker, now=T0) is not None) is tripped


def test_half_open_breaker_lets_canaries_through_then_closes() -> None:
    policy = BreakerPolicy(half_open_canaries=1)
    opened = Breaker().observe(leaf_storm(), policy, now=T0)
    assert opened.state is BreakerState.OPEN and not opened.allows("x")
    assert opened.observe((), policy, now=T0 + timedelta(hours=1)) is opened  # only a human closes it
    half = opened.resume(now=T0 + timedelta(minutes=30))
    assert half.observe(leaf_storm(), policy, now=T0 + timedelta(minutes=31)).state is BreakerState.HALF_OPEN
    half = half.admit("canary", policy).admit("second", policy)
    assert half.allows("canary") and not half.allows("second")
    blocked = StormBreaker().check(ctx(Facts(breakers=Breakers(fleet=half)), name="second-20261122030000"))
    assert blocked is not None and blocked.code == "BreakerHalfOpen"
    closed = half.canary_finished("canary", succeeded=True, policy=policy, now=T0)
    assert closed.state is BreakerState.CLOSED and closed.allows("anyone")
    reopened = half.canary_finished("canary", succeeded=False, policy=policy, now=T0)
    assert reopened.state is BreakerState.OPEN


def test_two_canaries_both_must_pass() -> None:
    policy = BreakerPolicy(half_open_canaries=2)
    half = Breaker(BreakerState.OPEN, "storm-1").resume(now=T0).admit("a", policy).admit("b", policy)
    half = half.canary_finished("a", succeeded=True, policy=policy, now=T0).admit("c", policy)
    assert half.state is BreakerState.HALF_OPEN and not half.allows("c")
    assert half.canary_finished("b", succeeded=True, policy=policy, now=T0).state is BreakerState.CLOSED


def test_lemon_node() -> None:
    week = [T0 - timedelta(days=d) for d in (1, 3, 6)]
    lemon = LemonNode().check(ctx(Facts(recent_repairs=tuple(week))))
    assert lemon is not None and lemon.verdict is Verdict.QUARANTINE
    old = (*week[:2], T0 - timedelta(days=8))
    assert LemonNode().check(ctx(Facts(recent_repairs=old))) is None


def test_reboot_cap_counts_reboots_and_power_cycles_in_24h() -> None:
    two = Facts(recent_reboots=(T0 - timedelta(hours=1), T0 - timedelta(hours=20)))
    assert RebootCap().check(ctx(two, rung=Action.REBOOT)) is not None
    assert RebootCap().check(ctx(two, rung=Action.POWER_CYCLE)) is not None
    assert RebootCap().check(ctx(two, rung=Action.GPU_RESET)) is None
    one_today = Facts(recent_reboots=(T0 - timedelta(hours=1), T0 - timedelta(hours=25)))
    assert RebootCap().check(ctx(one_today, rung=Action.REBOOT)) is None


BOARD = GpuRef(index=3, uuid="GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10", pci="0000:2b:00.0", serial="1650123012345")


def xid_on(gpu: GpuRef, code: str = "xid-79") -> Finding:
    return Finding(code, f"{code} on {gpu.pci}", Action.REBOOT, gpu=gpu, first_seen=T0)


def earlier(*repairs: tuple[float, GpuRef]) -> Facts:
    """Facts holding the node's earlier repairs: (days ago, the GPU its finding named)."""
    return Facts(
        recent_repairs=tuple(sorted(T0 - timedelta(days=d) for d, _ in repairs)),
        recent_gpu_repairs=tuple(GpuRepair(T0 - timedelta(days=d), (gpu,)) for d, gpu in repairs),
    )


def test_a_gpu_repaired_twice_this_week_is_quarantined_on_its_third_repair_naming_its_serial() -> None:
    lemon = LemonGpu().check(ctx(earlier((1, BOARD), (3, BOARD)), findings=(xid_on(BOARD),)))
    assert lemon is not None and lemon.verdict is Verdict.QUARANTINE and lemon.code == "LemonGpu"
    for name in ("serial 1650123012345", BOARD.uuid, BOARD.pci, "GPU 3"):
        assert name in lemon.message, lemon.message
    assert "3 repairs within 7d" in lemon.message
    assert LemonNode().check(ctx(earlier((1, BOARD), (3, BOARD)), findings=(xid_on(BOARD),))) is None  # node fine


def test_a_gpu_whose_node_mates_failed_before_is_not_a_lemon() -> None:
    mates = (replace(BOARD, index=1, uuid="GPU-1", pci="0000:1b:00.0", serial="1650000000001"),
             replace(BOARD, index=2, uuid="GPU-2", pci="0000:2a:00.0", serial="1650000000002"))  # fmt: skip
    assert LemonGpu().check(ctx(earlier((1, mates[0]), (2, mates[1]), (3, BOARD)), findings=(xid_on(BOARD),))) is None


def test_a_board_swapped_in_after_an_rma_starts_with_a_clean_record_at_the_same_address() -> None:
    new_board = replace(BOARD, uuid="GPU-0f0f0f0f-0000-4000-8000-000000000000", serial="1650999999999")
    assert LemonGpu().check(ctx(earlier((1, BOARD), (3, BOARD)), findings=(xid_on(new_board),))) is None


def test_repairs_outside_the_lemon_window_do_not_make_a_gpu_a_lemon() -> None:
    assert LemonGpu().check(ctx(earlier((1, BOARD), (8, BOARD)), findings=(xid_on(BOARD),))) is None


@pytest.mark.parametrize(
    ("before", "now"),
    [
        (replace(BOARD, serial=None), replace(BOARD, serial=None)),  # no serial known: the UUID follows the board
        (GpuRef(pci=BOARD.pci), GpuRef(pci=BOARD.pci)),  # a kernel-log finding without its preface: the address
        (GpuRef(index=3, pci=BOARD.pci), BOARD),  # an earlier finding that knew less still names the same GPU
    ],
    ids=["by-uuid", "by-pci", "serial-learnt-later"],
)
def test_a_repeat_offender_is_followed_by_what_its_findings_name(before: GpuRef, now: GpuRef) -> None:
    lemon = LemonGpu().check(ctx(earlier((1, before), (2, before)), findings=(xid_on(now),)))
    assert lemon is not None and (now.pci or "") in lemon.message


def test_a_node_level_finding_makes_no_gpu_a_lemon() -> None:
    assert LemonGpu().check(ctx(earlier((1, GpuRef()), (2, GpuRef())), findings=(xid_on(GpuRef()),))) is None


def test_the_per_gpu_limit_comes_from_the_policy() -> None:
    stricter = parse_policy({"lemon": {"maxRepairsPerGpu": 1}})
    assert LemonGpu().check(ctx(earlier((1, BOARD)), findings=(xid_on(BOARD),), policy=stricter)) is not None
    assert LemonGpu().check(ctx(earlier((1, BOARD)), findings=(xid_on(BOARD),))) is None
