"""Admission blockers: each answers one question — may this repair take its next step?

Like kured's ``RebootBlocker``, every safety rule is one small object with one
method, ``check(ctx) -> BlockReason | None``, pure over the repair, the facts the
handler gathered and the policy. The state machine composes them; adding a rule
is one class and one line in :data:`ADMISSION_BLOCKERS` or at the step it guards.

A :class:`BlockReason` carries a :class:`Verdict` (what the repair should do
instead), a CamelCase ``code`` (the condition and event reason) and a message
written for the human reading ``kubectl describe`` or the Slack thread.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from repairbot.machine.breaker import BreakerState, failure_domain
from repairbot.model import LABEL_DISABLED, Action, Finding, GpuRef
from repairbot.policy import Policy, format_duration

if TYPE_CHECKING:
    from repairbot.machine.repair_view import Facts, RepairView

REBOOT_ACTIONS = frozenset({Action.REBOOT, Action.POWER_CYCLE})
"""Actions that restart the whole node and count against the per-node reboot cap."""


class Verdict(enum.StrEnum):
    """What a blocked repair does instead of its step."""

    CANCEL = "cancel"
    DRY_RUN = "dry-run"
    QUEUE = "queue"
    BLOCK = "block"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class BlockReason:
    verdict: Verdict
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BlockContext:
    """Everything a blocker may look at. ``rung`` is the action about to run, when one is."""

    repair: RepairView
    facts: Facts
    policy: Policy
    now: datetime
    rung: Action | None = None


class Blocker(Protocol):
    def check(self, ctx: BlockContext) -> BlockReason | None: ...


def first_block(blockers: Sequence[Blocker], ctx: BlockContext) -> BlockReason | None:
    """The first blocker that objects, in order; None when all agree."""
    for blocker in blockers:
        reason = blocker.check(ctx)
        if reason is not None:
            return reason
    return None


class OptOutBlocker:
    """``repairbot.io/disabled=true`` on the node: RepairBot never touches it, not even to undo its own marks."""

    def check(self, ctx: BlockContext) -> BlockReason | None:
        if ctx.facts.node_labels.get(LABEL_DISABLED, "").lower() != "true":
            return None
        return BlockReason(
            Verdict.CANCEL, "OptedOut", f"node {ctx.repair.node} is labelled {LABEL_DISABLED}=true; left alone"
        )


class DryRunBlocker:
    """Operator-wide or per-repair dry run: record the plan, touch nothing."""

    def check(self, ctx: BlockContext) -> BlockReason | None:
        if not (ctx.policy.dry_run or ctx.repair.dry_run):
            return None
        scope = "policy" if ctx.policy.dry_run else "repair"
        return BlockReason(Verdict.DRY_RUN, "DryRun", f"dry-run ({scope}): nothing was touched")


class ConcurrencyBudget:
    """At most N nodes (or N% of the node's pool) out of service at once; cordons count, not only drains.

    A node that is already out of service (cordoned by us, or by someone else
    before we came) takes no new slot, so admitting it never breaks the budget.
    """

    def check(self, ctx: BlockContext) -> BlockReason | None:
        if ctx.repair.acknowledged_at is not None or ctx.facts.node_unschedulable:
            return None
        return budget_exhausted(ctx.facts.pool.out_of_service, ctx.facts.pool.size, ctx.facts.pool.name, ctx.policy)


def budget_exhausted(out_of_service: int, pool_size: int, pool: str, policy: Policy) -> BlockReason | None:
    """The budget arithmetic alone: None while one more node may go out of service."""
    limit = policy.budget.max_unavailable
    cap = limit.cap(pool_size)
    if out_of_service < cap:
        return None
    return BlockReason(
        Verdict.QUEUE,
        "BudgetExhausted",
        f"queued: {out_of_service} of {pool_size} nodes in pool {pool} are out of service "
        f"(budget {limit.to_yaml()} = {cap})",
    )


class StormBreaker:
    """No destructive step while a breaker that governs the repair is open, or half-open and it is no canary.

    A repair is governed by the fleet-wide breaker and its own failure
    domain's: a storm on one leaf blocks that leaf only. The machine has
    already counted the latest faults into ``facts.breakers`` and picked the
    canaries (:mod:`repairbot.machine.breaker_flow`) before any blocker runs.
    """

    def check(self, ctx: BlockContext) -> BlockReason | None:
        domain = failure_domain(ctx.facts.node_labels, ctx.policy.breaker.failure_domain_label)
        breaker = ctx.facts.breakers.blocking(ctx.repair.name, domain)
        if breaker is None:
            return None
        if breaker.state is BreakerState.HALF_OPEN and ctx.rung is not None and not ctx.rung.is_destructive:
            return None  # a notify rung touches nothing: once a human resumed, it may hold for its human
        if breaker.state is BreakerState.HALF_OPEN:  # after a resume the canaries go first
            waiting = f"breaker half-open ({breaker.incident}): waiting for the canary repairs"
            return BlockReason(Verdict.BLOCK, "BreakerHalfOpen", waiting)
        return BlockReason(
            Verdict.BLOCK,
            "BreakerOpen",
            f"breaker open ({breaker.incident}): {breaker.message}; cordon only until a human resumes",
        )


class LemonNode:
    """A node repaired ``maxRepairs`` times within the window is quarantined, not repaired again."""

    def check(self, ctx: BlockContext) -> BlockReason | None:
        lemon = ctx.policy.lemon
        recent = [t for t in ctx.facts.recent_repairs if ctx.now - lemon.window <= t <= ctx.now]
        if len(recent) < lemon.max_repairs:
            return None
        return BlockReason(
            Verdict.QUARANTINE,
            "LemonNode",
            f"node {ctx.repair.node} was repaired {len(recent)} times within {format_duration(lemon.window)} "
            f"(limit {lemon.max_repairs}): quarantined for hardware",
        )


class LemonGpu:
    """A GPU in ``maxRepairsPerGpu`` earlier repairs within the window is quarantined for RMA, however fine its node.

    The node rule counts the node's repairs; one bad board among eight healthy ones shows here first.
    The GPU is followed by its board serial, else its UUID, else its PCI address
    (:meth:`~repairbot.model.GpuRef.is_same_board`), so a board swapped in after an RMA starts with a
    clean record. The message names every identifier the earlier findings knew: hardware needs the serial.
    """

    def check(self, ctx: BlockContext) -> BlockReason | None:
        lemon = ctx.policy.lemon
        earlier = [r for r in ctx.facts.recent_gpu_repairs if ctx.now - lemon.window <= r.at <= ctx.now]
        for gpu in boards_named(ctx.repair.findings):
            seen = [next((ref for ref in r.gpus if gpu.is_same_board(ref)), None) for r in earlier]
            matched = [ref for ref in seen if ref is not None]
            if len(matched) < lemon.max_repairs_per_gpu:
                continue
            for ref in matched:
                gpu = gpu.completed_by(ref)
            return BlockReason(
                Verdict.QUARANTINE,
                "LemonGpu",
                f"{gpu.describe()} of node {ctx.repair.node} was in {len(matched) + 1} repairs within "
                f"{format_duration(lemon.window)} (limit {lemon.max_repairs_per_gpu} per GPU): "
                f"quarantined for RMA of the board{f' with serial {gpu.serial}' if gpu.serial else ''}",
            )
        return None


def boards_named(findings: Sequence[Finding]) -> list[GpuRef]:
    """The distinct GPUs the findings name by serial, UUID or PCI address, in finding order, each as fully as known."""
    boards: list[GpuRef] = []
    for finding in findings:
        gpu = finding.gpu
        if not (gpu.serial or gpu.uuid or gpu.pci):
            continue  # a node-level finding, or a GPU named only by its unstable index
        same = next((i for i, known in enumerate(boards) if known.is_same_board(gpu)), None)
        if same is None:
            boards.append(gpu)
        else:
            boards[same] = boards[same].completed_by(gpu)
    return boards


class RebootCap:
    """At most ``rebootsPerDay`` reboots or power cycles per node in any 24 hours: no reboot loops."""

    def check(self, ctx: BlockContext) -> BlockReason | None:
        if ctx.rung not in REBOOT_ACTIONS:
            return None
        today = [t for t in ctx.facts.recent_reboots if ctx.now - timedelta(days=1) <= t <= ctx.now]
        cap = ctx.policy.reboots_per_day
        if len(today) < cap:
            return None
        return BlockReason(
            Verdict.BLOCK,
            "RebootCap",
            f"node {ctx.repair.node} was rebooted {len(today)} times in 24h (cap {cap}); "
            f"{ctx.rung.value if ctx.rung else 'reboot'} waits",
        )


ADMISSION_BLOCKERS: tuple[Blocker, ...] = (OptOutBlocker(), DryRunBlocker(), StormBreaker(), ConcurrencyBudget())
"""Checked in order before a repair first touches its node. The breaker precedes the budget so a
storm shows as Blocked on every repair; the machine still asks the budget before a blocked repair cordons."""

DESTRUCTIVE_STEP_BLOCKERS: tuple[Blocker, ...] = (DryRunBlocker(), StormBreaker(), RebootCap())
"""Checked again before every drain and action: a storm or a dry-run switch may arrive mid-repair."""
