"""Building decisions: how one step of a repair becomes a status patch, history entries and node marks.

:func:`repairbot.machine.decide.decide` chooses *which* step comes next;
:class:`Run` knows *how* each step is written down — the fields every
transition writes, the ``patch``/``after`` split that makes a crash mid-step
safe, deterministic request ids, conditions and history. Apart from the machine
so the choice reads on its own, and so the shape of ``status`` is kept in one
place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from repairbot.bounds import fold_history, truncate
from repairbot.contract import VALIDATE, Request
from repairbot.machine.blockers import DESTRUCTIVE_STEP_BLOCKERS, BlockContext, BlockReason, Verdict, first_block
from repairbot.machine.breaker import failure_domain
from repairbot.machine.decision import POLL, Decision, Step, request_id
from repairbot.machine.repair_view import Facts, RepairView
from repairbot.model import LABEL_DISABLED, LABEL_STATE, Action, GpuRef, HistoryEntry, NodeState, Phase, format_time
from repairbot.policy import Policy, Rung

AT_ONCE = timedelta(0)
QUEUE_RECHECK = timedelta(seconds=30)
"""How soon a repair queued behind the budget decides again (a slot may have freed without an event)."""
"""After a phase change that waits on nobody (drain started, rung climbed, resumed): look again now.
The watch event of our own write is not waited for — the scheduler ignores such echoes."""


@dataclass(frozen=True, slots=True)
class Run:
    """One call of :func:`decide`: its inputs, and the builders that turn a step into patches."""

    repair: RepairView
    facts: Facts
    policy: Policy
    now: datetime
    ladder: tuple[Rung, ...]
    code: str
    notes: tuple[dict[str, Any], ...] = ()
    """History entries this reconcile learnt on the way (the drain's unmanaged pods): first in whatever it writes."""

    @property
    def rung(self) -> Rung | None:
        """The current rung (``attempt`` counts from 1); None once the ladder is exhausted."""
        index = max(self.repair.attempt, 1) - 1
        return self.ladder[index] if index < len(self.ladder) else None

    def ctx(self, rung: Action | None = None) -> BlockContext:
        return BlockContext(self.repair, self.facts, self.policy, self.now, rung)

    def plan(self) -> str:
        rungs = " → ".join(r.action.value for r in self.ladder)
        return f"would cordon node {self.repair.node}, drain it and climb {rungs} for {self.code}"

    def entry(self, step: str, outcome: str, message: str, action: Action | None = None) -> dict[str, Any]:
        attempt = self.repair.attempt or None
        return HistoryEntry(step, outcome, message, self.now, action, attempt).to_dict()

    def base(self, phase: Phase, message: str, *entries: dict[str, Any]) -> dict[str, Any]:
        """The fields every transition writes; ``detectedAt``, ``receivedAt`` and ``reason`` once, on the first write.

        ``detectedAt`` is the sources' first sight (their clocks: evidence only);
        ``receivedAt`` is this operator's clock at its first write, the one time
        a late redelivery or a skewed agent cannot move, so the safety windows
        count from it. The history is bounded (:func:`repairbot.bounds.fold_history`):
        past its cap the oldest delivered steps fold into one summary entry, and
        the notifiers' cursors move back by as many entries in this same write.
        """
        fold = fold_history(self.repair.history, (*self.notes, *entries), self.repair.deliveries)
        patch: dict[str, Any] = {"phase": phase.value, "message": truncate(message), "history": fold.history}
        if fold.cursors is not None:
            patch["deliveries"] = {target: {"sent": sent} for target, sent in fold.cursors.items()}
        if self.repair.detected_at is None:
            first = min((f.first_seen for f in self.repair.findings), default=self.now)
            patch["detectedAt"] = format_time(first)
        if self.repair.received_at is None:
            patch["receivedAt"] = format_time(self.now)
        if self.repair.reason is None:
            patch["reason"] = self.code
        return patch

    def conditions(self, kind: str, status: bool, reason: str, message: str) -> list[dict[str, Any]]:
        kept = [dict(c) for c in self.repair.conditions if c.get("type") != kind]
        state = "True" if status else "False"
        return [*kept, {"type": kind, "status": state, "reason": reason, "message": message,
                        "lastTransitionTime": format_time(self.now)}]  # fmt: skip

    def transition(self, step: Step, phase: Phase, event: str, message: str, **changes: Any) -> Decision:
        patch = self.base(phase, message, self.entry(step.value, "done", message, self.repair.action)) | changes
        return Decision(step, message, patch, event=event, requeue_after=AT_ONCE)

    def finish(self, step: Step, phase: Phase, reason: str, message: str) -> Decision:
        """A terminal phase reached without taking the node out of service.

        A Pending repair that queued behind the budget had its node tagged ``faulty`` by the operator
        (:meth:`waiting`); cancelled so (finding cleared, a human's cancel) the tag comes off with it, or
        the label, left behind with no repair, would open a manual repair. (A Blocked one ends through
        :meth:`release`, which takes every mark off.)
        """
        patch = self.base(phase, message, self.entry(step.value, reason, message))
        patch["conditions"] = self.conditions(phase.value, True, reason, message)
        if self._tagged_waiting(step):  # the tag off first, the end after it: a crash between repeats the cancel
            return Decision(step, message, {}, patch, event=reason, remove_marks=True)
        return Decision(step, message, patch, event=reason)

    def _tagged_waiting(self, step: Step) -> bool:
        """Is the node's ``faulty`` label this waiting repair's own tag, to be taken off as it is cancelled?"""
        waited = any(entry.get("step") == Step.QUEUE.value for entry in self.repair.history)
        return (
            step is Step.CANCEL and waited and self.repair.acknowledged_at is None and self.waiting is not None
            and self.facts.node_exists and not self.facts.node_deleting
            and self.facts.node_labels.get(LABEL_STATE) == NodeState.FAULTY.value
            and self.facts.node_labels.get(LABEL_DISABLED, "").lower() != "true"
        )  # fmt: skip

    @property
    def waiting(self) -> NodeState | None:
        """The node label of a Pending repair left waiting without touching its node (the budget queue, an
        open breaker with the budget full): ``faulty``, "tagged, waiting", for the humans and dashboards.
        None in dry-run, which touches no node. The shell writes it only when the node does not already
        carry one of RepairBot's states, so a repair deciding again every 30 s writes it once."""
        return None if self.policy.dry_run or self.repair.dry_run else NodeState.FAULTY

    def cordon(self) -> Decision:
        """Cordon + taint + ``state=repairing``. Whether someone else had cordoned it is recorded once."""
        first = self.ladder[0]
        was_cordoned = self.repair.node_was_cordoned
        if was_cordoned is None:
            was_cordoned = self.facts.node_unschedulable and not self.facts.our_taint
        message = f"cordoned node {self.repair.node} for {self.code}; first rung {first.action.value}"
        started = self.entry("cordon", "started", message)
        patch = self.base(Phase.CORDONED, message, started) | {
            "nodeWasCordoned": was_cordoned, "action": first.action.value, "attempt": max(self.repair.attempt, 1),
        }  # fmt: skip
        after = {"acknowledgedAt": format_time(self.now), "history": [*patch["history"], _done(started, self.now)]}
        return Decision(Step.CORDON, message, patch, after, "Cordoned", cordon=True, node_state=NodeState.REPAIRING)

    def finish_cordon(self, message: str) -> Decision:
        """A cordon on record as started but never done (the operator died mid-step): finish that one.

        The node is marked again (cordon, taint and label are idempotent) and
        the started entry gets its ``done``; no second cordon is recorded, so a
        restart resumes the step instead of repeating it.
        """
        started = dict(self.repair.history[-1])
        after = {"acknowledgedAt": format_time(self.now),
                 "history": [*map(dict, self.repair.history), _done(started, self.now)]}  # fmt: skip
        return Decision(Step.CORDON, message, {}, after, "Cordoned", cordon=True, node_state=NodeState.REPAIRING)

    def queue(self, block: BlockReason) -> Decision:
        """Pending, behind the budget: the node is tagged ``faulty`` (once) and nothing else touched."""
        if self.repair.phase is Phase.PENDING and self.repair.message == block.message:
            return Decision(Step.QUEUE, block.message, requeue_after=QUEUE_RECHECK, node_state=self.waiting)
        patch = self.base(Phase.PENDING, block.message, self.entry("queue", block.code, block.message))
        return Decision(Step.QUEUE, block.message, patch, event=block.code, requeue_after=QUEUE_RECHECK,
                        node_state=self.waiting)  # fmt: skip

    def block(self, block: BlockReason, *, cordon: bool = False, step: Step = Step.BLOCK) -> Decision:
        """Blocked: cordon only (when the budget allows and it is not yet done), nothing destructive."""
        if block.verdict is Verdict.QUARANTINE:
            return self.quarantine(block.code, block.message)
        cordon = cordon and self.repair.acknowledged_at is None and not (self.policy.dry_run or self.repair.dry_run)
        entry = self.entry(step.value, block.code, block.message, self.rung.action if self.rung else None)
        patch = self.base(Phase.BLOCKED, block.message, entry)
        patch["conditions"] = self.conditions("Blocked", True, block.code, block.message)
        if block.code.startswith("Breaker"):
            domain = failure_domain(self.facts.node_labels, self.policy.breaker.failure_domain_label)
            holding = self.facts.breakers.blocking(self.repair.name, domain)
            patch["incident"] = holding.incident if holding else self.facts.breakers.incident_of(domain)
        if self.repair.action is None:
            patch |= {"action": self.ladder[0].action.value, "attempt": 1}
        if not cordon:  # a new repair blocked with the budget full waits untouched: its node is tagged faulty
            state = self.waiting if self.repair.phase is Phase.PENDING else None
            return Decision(step, block.message, patch, event=block.code, requeue_after=timedelta(minutes=1),
                            node_state=state)  # fmt: skip
        if self.repair.node_was_cordoned is None:
            patch["nodeWasCordoned"] = self.facts.node_unschedulable and not self.facts.our_taint
        started = self.entry("cordon", "started", f"cordon only: {block.message}")
        patch["history"].append(started)
        after = {"acknowledgedAt": format_time(self.now), "history": [*patch["history"], _done(started, self.now)]}
        return Decision(step, block.message, patch, after, block.code, cordon=True, node_state=NodeState.REPAIRING)

    def admit(self) -> Decision:
        """A blocked repair may go on: back to Cordoned (re-drain, same rung), or cordon first."""
        if self.repair.acknowledged_at is None:
            return self.cordon()
        message = f"resumed: {self.code} repair continues at rung {self.repair.attempt}"
        patch = self.base(Phase.CORDONED, message, self.entry("admit", "resumed", message))
        patch["conditions"] = self.conditions("Blocked", False, "Resumed", message)
        return Decision(Step.ADMIT, message, patch, event="Resumed", requeue_after=AT_ONCE)

    def requeue_resumed(self, budget: BlockReason) -> Decision:
        """A Blocked repair that never cordoned may go on, but the budget is full: back to Pending, queued.

        Resuming (a human, ``resume --all``, a closed breaker) frees a repair
        from the breaker, never from the budget: it waits for a slot like any
        new repair, so a resume can never put more nodes out of service than
        ``maxUnavailable``.
        """
        message = f"resumed; {budget.message}"
        patch = self.base(Phase.PENDING, budget.message, self.entry("queue", budget.code, message))
        patch["conditions"] = self.conditions("Blocked", False, "Resumed", message)
        return Decision(Step.QUEUE, message, patch, event=budget.code, requeue_after=QUEUE_RECHECK,
                        node_state=self.waiting)  # fmt: skip

    def hold(self, rung: Rung) -> Decision:
        message = f"{self.code}: node {self.repair.node} kept cordoned (not drained) for a human"
        patch = self.base(Phase.REMEDIATING, message, self.entry(Step.HOLD.value, "started", message, rung.action))
        return Decision(Step.HOLD, message, patch | {"action": rung.action.value}, event="WaitingForHuman")

    def begin_rung(self, rung: Rung) -> Decision:
        """Ask for the rung's action. The request in the patch *is* the action: written once, done once."""
        block = first_block(DESTRUCTIVE_STEP_BLOCKERS, self.ctx(rung.action))
        if block is not None:
            return self.block(block)
        attempt = max(self.repair.attempt, 1)
        ident = request_id(self.repair.name, attempt, rung.action.value)
        deadline = self.now + (rung.timeout or timedelta(0))
        power_cycle = rung.action is Action.POWER_CYCLE
        request = Request(
            id=ident,
            action=rung.action.value,
            requested_at=self.now,
            deadline=deadline,
            boot_id=self.facts.boot_id if power_cycle else "",
            gpu=self.driving_gpu() if rung.action is Action.GPU_RESET else GpuRef(),
        )
        fields = {"action": rung.action.value, "attempt": attempt, "request": request.to_status()}
        if power_cycle:
            message = f"power-cycling node {self.repair.node} through its BMC (rung {attempt})"
            started = self.entry(Step.POWER_CYCLE.value, "started", message, rung.action)
            patch = self.base(Phase.REMEDIATING, message, started) | fields
            after = {"history": [*patch["history"], _done(started, self.now)]}
            return Decision(Step.POWER_CYCLE, message, patch, after, "PowerCycle", rung.action, ident,
                            requeue_after=POLL)  # fmt: skip
        message = f"asked the agent on {self.repair.node} for {rung.action.value} (rung {attempt})"
        patch = self.base(Phase.REMEDIATING, message, self.entry("request", "started", message, rung.action)) | fields
        return Decision(Step.REQUEST_ACTION, message, patch, event="ActionRequested", action=rung.action,
                        request_id=ident, requeue_after=POLL)  # fmt: skip

    def driving_gpu(self) -> GpuRef:
        """The GPU of the finding that chose this ladder (an empty ref: the whole node)."""
        finding = next((f for f in self.repair.findings if f.code == self.code), None)
        return finding.gpu if finding else GpuRef()

    def validate(self, why: str) -> Decision:
        attempt = max(self.repair.attempt, 1)
        ident = request_id(self.repair.name, attempt, VALIDATE)
        deadline = self.now + self.policy.validation.timeout
        rules = self.policy.validation
        level = max(rules.dcgm_diag_level, 2) if rules.require_load_check else rules.dcgm_diag_level
        if self.repair.last_entry(Step.START_DRAIN.value) is None:
            level = 0  # never drained (a notify hold): dcgmi diag would run on GPUs that jobs still use
        request = Request(id=ident, action=VALIDATE, requested_at=self.now, deadline=deadline,
                          dcgm_diag_level=level, require_load_check=rules.require_load_check).to_status()  # fmt: skip
        message = f"{why}; validating node {self.repair.node}"
        started = self.entry(Step.VALIDATE.value, "started", message)
        patch = self.base(Phase.VALIDATING, message, started) | {"request": request}
        return Decision(Step.VALIDATE, message, patch, event="Validating", request_id=ident, requeue_after=POLL)

    def next_rung(self, why: str, *, outcome: str = "failed", recorded: bool = False) -> Decision:
        """A rung failed or timed out: the next one, from Cordoned (re-checked, re-drained); none left → quarantine.

        ``recorded``: the rung's failure is in the history already (the shell wrote it when the step's own
        action failed, see :func:`step_failed`), so it is not written twice.
        """
        failed = () if recorded else (
            self.entry(self.rung.action.value if self.rung else "rung", outcome, why, self.repair.action),
        )  # fmt: skip
        attempt = max(self.repair.attempt, 1) + 1
        if attempt > len(self.ladder) or self.ladder[attempt - 1].action is Action.QUARANTINE:
            return self.quarantine("LadderExhausted", f"{why}; ladder exhausted for {self.code}", *failed)
        nxt = self.ladder[attempt - 1]
        message = f"{why}; next rung {nxt.action.value}"
        patch = self.base(Phase.CORDONED, message, *failed) | {"attempt": attempt, "action": nxt.action.value}
        return Decision(Step.NEXT_RUNG, message, patch, event="NextRung", action=nxt.action, requeue_after=AT_ONCE)

    def escalate(self, code: str) -> Decision:
        """A stronger finding arrived while the node was held for a human: climb that finding's ladder instead.

        The repair keeps its name, thread and ticket; ``reason`` becomes the new
        class and the ladder starts at its first rung from Cordoned (so it is
        re-checked against the budget and the breaker, then drained).
        """
        message = f"{code} found while node {self.repair.node} was held for {self.code}; climbing {code}'s ladder"
        entry = self.entry(Step.ESCALATE.value, "done", message, self.repair.action)
        patch = self.base(Phase.CORDONED, message, entry) | {"reason": code, "attempt": 1, "action": None,
                                                              "request": None}  # fmt: skip
        return Decision(Step.ESCALATE, message, patch, event="Escalated", requeue_after=AT_ONCE)

    def quarantine(self, reason: str, message: str, *earlier: dict[str, Any]) -> Decision:
        """Terminal for the node: stays cordoned and tainted, labelled for hardware; evidence stays in status."""
        started = self.entry(Step.QUARANTINE.value, "started", message, Action.QUARANTINE)
        patch = self.base(Phase.REMEDIATING, message, *earlier, started) | {"action": Action.QUARANTINE.value}
        if self.repair.phase is Phase.PENDING or self.repair.acknowledged_at is None:
            patch["phase"] = self.repair.phase.value  # not cordoned yet: only the label changes now
            if self.repair.node_was_cordoned is None:  # a release must know whose cordon this is
                patch["nodeWasCordoned"] = self.facts.node_unschedulable and not self.facts.our_taint
        after = {"phase": Phase.QUARANTINED.value, "message": message,
                 "history": [*patch["history"], _done(started, self.now)],
                 "conditions": self.conditions(Phase.QUARANTINED.value, True, reason, message)}  # fmt: skip
        return Decision(Step.QUARANTINE, message, patch, after, "Quarantined", Action.QUARANTINE,
                        cordon=self.repair.acknowledged_at is None, node_state=NodeState.QUARANTINED)  # fmt: skip

    def return_to_service(self, message: str) -> Decision:
        """Taint and label off; uncordon only if RepairBot cordoned it (``nodeWasCordoned`` false)."""
        started = self.entry(Step.RETURN_TO_SERVICE.value, "started", message)
        patch = self.base(self.repair.phase, message, started)
        uncordon = not self.repair.node_was_cordoned
        done = message if uncordon else f"{message}; left cordoned (it was cordoned before RepairBot came)"
        after = {"phase": Phase.SUCCEEDED.value, "message": done, "resolvedAt": format_time(self.now),
                 "history": [*patch["history"], _done(started, self.now)]}  # fmt: skip
        return Decision(Step.RETURN_TO_SERVICE, done, patch, after, "Repaired", uncordon=uncordon, remove_marks=True)

    def release(self, reason: str, message: str, uncordon_if_ours: bool) -> Decision:
        """Cancelled after the node was marked: our taint and label off; uncordon only when asked and ours."""
        step = "release" if uncordon_if_ours else "hand-over"
        started = self.entry(step, "started", message)
        patch = self.base(self.repair.phase, message, started)
        patch["conditions"] = self.conditions(Phase.CANCELLED.value, True, reason, message)
        after = {"phase": Phase.CANCELLED.value, "history": [*patch["history"], _done(started, self.now)]}
        uncordon = uncordon_if_ours and not self.repair.node_was_cordoned
        return Decision(Step.CANCEL, message, patch, after, reason, uncordon=uncordon, remove_marks=True)


def step_failed(after: Mapping[str, Any], why: str, now: datetime) -> dict[str, Any]:
    """``after`` for a step whose own action failed (a BMC that refused the power cycle): its last entry,
    the step's ``done``, becomes ``failed`` with the reason, so the cause is on record at once and the
    machine, reading it on the next reconcile, climbs the ladder in those words instead of waiting for the
    rung's timeout and calling it one."""
    history = [dict(entry) for entry in after.get("history") or ()]
    if history:
        history[-1] |= {"outcome": "failed", "message": truncate(why), "at": format_time(now)}
    return {**after, "history": history}


def _done(started: dict[str, Any], now: datetime) -> dict[str, Any]:
    return started | {"outcome": "done", "at": format_time(now)}
