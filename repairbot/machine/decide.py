"""The repair state machine: one GPURepair + the facts around it → the next step. Pure.

The kopf handler reads the GPURepair into a :class:`RepairView`, gathers
:class:`Facts` (node, pods, budget, breaker, the node's past), asks
:func:`decide`, writes ``Decision.patch`` to the status, executes the step, and
writes ``Decision.after`` once the step succeeded. Because the patch is written
*before* the step and every step is idempotent (request ids, cordons, taints), a
restarted operator that reads the same status and facts makes the same decision
and repeats nothing harmful: the agent ignores a request id it already answered,
and a power cycle whose request is on record is never issued twice.

Phases follow the CRD: Pending → Cordoned → Draining → Remediating →
Validating → Succeeded | Quarantined | Blocked | Cancelled. Cordoned is also
the "between rungs" phase: a failed rung returns there, so every rung passes
the same re-checks (breaker, reboot cap, finding still present) as the first.
A repair whose findings may wait for idle GPUs (a pending row remap) is held
in Cordoned before its first drain (:mod:`repairbot.machine.deferral`).
Terminal phases that touch the node are written in ``after``, never in
``patch``, so a crash mid-step leaves a repair that finishes the step, not an
orphaned taint.

This module holds the choice itself (:func:`decide` and one function per phase)
and is the public face: import every machine name from here. Its inputs live in
:mod:`repairbot.machine.repair_view`, its outputs in
:mod:`repairbot.machine.decision`, and the builders that write a step down as
a status patch in :mod:`repairbot.machine.transitions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from repairbot.catalog.xid_table import LADDER_FOR_ACTION
from repairbot.contract import VALIDATE, AgentAnswer, AgentResult, Request
from repairbot.machine import breaker_flow, deferral, human_requests, slurm_jobs
from repairbot.machine.blockers import (
    ADMISSION_BLOCKERS,
    DESTRUCTIVE_STEP_BLOCKERS,
    BlockContext,
    BlockReason,
    ConcurrencyBudget,
    LemonGpu,
    LemonNode,
    OptOutBlocker,
    Verdict,
    first_block,
)
from repairbot.machine.decision import DESTRUCTIVE_STEPS, POLL, Decision, Step, request_id
from repairbot.machine.deferral import Deferrable
from repairbot.machine.repair_view import Facts, PoolUsage, RepairView, optional_time
from repairbot.machine.transitions import Run
from repairbot.machine.unmanaged import OUTCOME_UNMANAGED, STEP_DRAIN, already_noted, unmanaged_message
from repairbot.model import Action, Finding, Phase
from repairbot.policy import (
    CONDITION_ESCALATED,
    ESCALATION_STEP,
    LadderFallback,
    Policy,
    Rung,
    escalated_actions,
    first_escalation,
    sightings,
)

__all__ = [
    "AGENT_ACTIONS",
    "DESTRUCTIVE_STEPS",
    "POLL",
    "AgentAnswer",
    "CatalogEntry",
    "Decision",
    "Facts",
    "PoolUsage",
    "RepairView",
    "Request",
    "Step",
    "XidLookup",
    "catalog_fallback",
    "decide",
    "driving_finding",
    "request_id",
]

AGENT_ACTIONS = frozenset({Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT})
"""Actions the node agent performs on ``status.request``; power-cycle goes through the BMC instead."""


class CatalogEntry(Protocol):
    @property
    def default_ladder(self) -> tuple[Action, ...]: ...
    @property
    def known(self) -> bool: ...


class XidLookup(Protocol):
    """The one thing the machine needs of :class:`repairbot.catalog.xid.XidCatalog`: ``lookup(code)``."""

    def lookup(self, code: int) -> CatalogEntry: ...


WAIT_SAFETY_NET = timedelta(seconds=30)
"""A waiting repair is woken by its watch events; this requeue is only the safety net."""
DRAIN_POLL = timedelta(seconds=1)
"""How soon to look again while evicted pods terminate (PDB-blocked ones retry at POLL, as kubectl does)."""


def catalog_fallback(catalog: XidLookup, sxids: XidLookup | None = None) -> LadderFallback:
    """The seam to the catalogs: ``xid-N`` → the Xid catalog's default ladder, ``sxid-N`` → the SXid
    catalog's (when one is given); unknown codes and other findings → None, so the policy's ``default``
    ladder applies."""

    def ladder(code: str) -> tuple[Action, ...] | None:
        found = re.fullmatch(r"(s?)xid-(\d+)", code)
        if found is None:
            return None
        source = sxids if found.group(1) else catalog
        if source is None:
            return None
        entry = source.lookup(int(found.group(2)))
        return entry.default_ladder if entry.known else None

    return ladder


# --------------------------------------------------------------------------- deciding


def decide(
    repair: RepairView,
    facts: Facts,
    policy: Policy,
    now: datetime,
    *,
    fallback: LadderFallback | None = None,
    deferrable: Deferrable | None = None,
) -> Decision:
    """The next step for ``repair``, and the storm breakers' state after it (``Decision.breakers``).

    ``fallback`` maps a finding code to the Xid catalog's ladder; ``deferrable``
    says which finding codes may wait for idle GPUs (:mod:`repairbot.machine.deferral`;
    None: none may). The breakers
    are part of the answer, not a side effect: the shell stores what this
    returns, so every breaker rule (canary slots, resume, per-domain trips) is
    a property of this pure function.
    """
    if repair.phase.is_terminal:
        return Decision(Step.NOTHING, f"repair is {repair.phase.value}", breakers=facts.breakers)
    acts = repair.phase is Phase.BLOCKED and acts_on_node(repair, policy, fallback) and _fits_budget(
        repair, facts, policy, now
    )
    breakers = breaker_flow.before(repair, facts, policy, now, acts_on_node=acts)
    facts = replace(facts, breakers=breakers)
    decision = deferral.closed_at_the_end(repair, _decide(repair, facts, policy, now, fallback, deferrable), now)
    consumed = facts.resume_requested and (repair.phase is Phase.BLOCKED or decision.step in RESUME_CONSUMERS)
    after = breaker_flow.after(repair, decision, breakers, facts, policy, now)
    return replace(decision, breakers=after, resume_consumed=consumed)


RESUME_CONSUMERS = frozenset({Step.ADMIT, Step.NEXT_RUNG, Step.CORDON, Step.QUEUE, Step.VALIDATE})
"""Steps a human's resume leads to; once taken, the annotation has done its work.
A Blocked repair consumes it whatever it decides: the breakers took the resume this reconcile."""


def _fits_budget(repair: RepairView, facts: Facts, policy: Policy, now: datetime) -> bool:
    """May this repair be out of service now? A canary must be able to go at once: one waiting for a
    budget slot, while cordoned non-canaries hold the slots, would hold the breaker half-open for ever."""
    return ConcurrencyBudget().check(BlockContext(repair, facts, policy, now)) is None


def _decide(
    repair: RepairView,
    facts: Facts,
    policy: Policy,
    now: datetime,
    fallback: LadderFallback | None,
    deferrable: Deferrable | None,
) -> Decision:
    code, ladder = repair_ladder(repair, policy, fallback)
    run = Run(repair, facts, policy, now, ladder, code)
    decision = _decide_run(run, facts, policy, fallback, deferrable)
    note = human_requests.resume_note(run)
    consumed = facts.resume_requested and (repair.phase is Phase.BLOCKED or decision.step in RESUME_CONSUMERS)
    if note is None or not consumed:
        return decision
    # The resume is taken this reconcile: who asked goes on record first in what it writes (decided again, pure).
    noted = replace(run, notes=(note,))
    return human_requests.with_resume_note(noted, _decide_run(noted, facts, policy, fallback, deferrable))


def _decide_run(
    run: Run, facts: Facts, policy: Policy, fallback: LadderFallback | None, deferrable: Deferrable | None
) -> Decision:
    repair = run.repair
    if not facts.node_exists or facts.node_deleting:
        word = "deleted" if not facts.node_exists else "being deleted"
        return run.finish(Step.CANCEL, Phase.CANCELLED, "NodeGone", f"node {repair.node} is {word}")
    opted_out = OptOutBlocker().check(run.ctx())
    if opted_out is not None:
        return run.finish(Step.CANCEL, Phase.CANCELLED, opted_out.code, opted_out.message)
    unfinished = _unfinished_finish(run)
    if unfinished is not None:
        return unfinished
    asked = human_requests.cancelled_by_human(run) or human_requests.quarantine_requested(run)
    if asked is not None:
        return asked
    escalation = _escalation_due(run)
    if escalation is not None:
        return escalation
    if repair.phase is Phase.PENDING:
        return _admit(run)
    if policy.dry_run or repair.dry_run:
        return Decision(Step.NOTHING, "dry-run: repair paused, nothing touched")
    if _human_took_over(repair, facts):
        return run.release("HandedOver", f"node {repair.node} was uncordoned by hand; RepairBot steps back", False)
    stronger = _stronger_than_hold(run, fallback) or _stronger_than_deferral(run, fallback, deferrable)
    if stronger is not None:
        return run.escalate(stronger)
    phase_logic: dict[Phase, Callable[[Run], Decision]] = {
        Phase.CORDONED: partial(_cordoned, deferrable=deferrable),
        Phase.DRAINING: _draining,
        Phase.REMEDIATING: _remediating,
        Phase.VALIDATING: _validating,
        Phase.BLOCKED: _blocked,
    }
    return phase_logic[repair.phase](run)


def repair_ladder(
    repair: RepairView, policy: Policy, fallback: LadderFallback | None
) -> tuple[str, tuple[Rung, ...]]:
    """The class a repair is for (its reason once written, else its driving finding) and the ladder it climbs."""
    code = repair.reason or driving_finding(repair.findings, policy, fallback) or "default"
    ladder = _ladder(repair, code, policy, fallback)
    escalated = escalated_ladder(repair, policy)
    if escalated and escalated[0].action.severity > ladder[0].action.severity:
        return code, escalated
    return code, ladder


def escalated_ladder(repair: RepairView, policy: Policy) -> tuple[Rung, ...]:
    """The ladder an escalation rule switched this repair to (its history says which), or () when none did."""
    entry = repair.last_entry(ESCALATION_STEP)
    if entry is None or not entry.get("action"):
        return ()
    action = Action(str(entry["action"]))
    return _rungs(escalated_actions(action), policy)


def _rungs(actions: tuple[Action, ...], policy: Policy) -> tuple[Rung, ...]:
    return tuple(Rung(a, None if a is Action.NOTIFY else policy.action_timeouts.get(a)) for a in actions)


def _escalation_due(run: Run) -> Decision | None:
    """An escalation rule whose count is reached and whose ladder starts stronger than this repair's rung.

    Looked at while nothing destructive is under way: before admission (a Xid 13 whose own ladder is
    "nothing" would otherwise be cancelled), and while the node is held for a human. The rule and its
    reason go into the history and an ``Escalated`` condition first; the next reconcile climbs the
    escalated ladder from its first rung, through every check a first rung passes.
    """
    policy, repair = run.policy, run.repair
    if not policy.escalations:
        return None
    rung = run.rung
    pending = repair.phase is Phase.PENDING
    held = repair.phase in (Phase.CORDONED, Phase.REMEDIATING) and rung is not None and rung.action is Action.NOTIFY
    if not (pending or held):
        return None
    found = first_escalation(policy.escalations, sightings((*repair.findings, *run.facts.node_findings)), run.now)
    current = rung.action if rung is not None else Action.NONE
    if found is None or found.rule.ladder[0].severity <= current.severity:
        return None
    message = found.message
    entry = run.entry(ESCALATION_STEP, "fired", message, found.rule.action)
    phase = Phase.PENDING if pending else Phase.CORDONED
    patch = run.base(phase, message, entry) | {"conditions": run.conditions(CONDITION_ESCALATED, True, "EscalationRule",
                                                                           message)}  # fmt: skip
    if not pending:
        patch |= {"attempt": 1, "action": None, "request": None}
    return Decision(Step.ESCALATE, message, patch, event="EscalationRule", requeue_after=timedelta(0))


def _ladder(repair: RepairView, code: str, policy: Policy, fallback: LadderFallback | None) -> tuple[Rung, ...]:
    """The repair's ladder: its reason's (or strongest finding's), with a human-requested first rung."""
    ladder = _catalog_capped(repair, code, policy, policy.ladder_for(code, fallback=fallback))
    wanted = repair.requested_action
    if wanted is None:
        return ladder
    first = Rung(wanted, None if wanted is Action.NOTIFY else policy.action_timeouts.get(wanted))
    return (first, *[rung for rung in ladder if rung.action.severity > wanted.severity])


def _catalog_capped(repair: RepairView, code: str, policy: Policy, ladder: tuple[Rung, ...]) -> tuple[Rung, ...]:
    """A catalog ladder follows what the findings' own lines ask for, where the code alone cannot say.

    The catalog's ladder is per code, but some codes are decoded per line: an
    NVLink5 Xid 144-150 is Fatal or Nonfatal by its text, an Xid 154 names the
    recovery action the driver now wants, and an SXid line carries its own
    Fatal or Non-fatal word. When the policy names no ladder for the code:

    - every finding of the code asks for notify (or less) → the policy's
      ``default`` ladder, instead of resetting a GPU for a warning;
    - the catalog's ladder does not act but every finding of the code asks for
      an action → the ladder that action starts (ending in quarantine), so a
      Fatal NVSwitch ECC error is not left at a notification.
    """
    default = policy.ladders["default"]
    if not ladder or ladder is default or policy.ladder_for(code) is not default:
        return ladder  # the policy's own ladder (named, or its default): the policy has the last word
    asked = [finding.action for finding in repair.findings if finding.code == code]
    if not asked:
        return ladder
    if ladder[0].action.is_destructive and max(action.severity for action in asked) <= Action.NOTIFY.severity:
        return default
    weakest = min(asked, key=lambda action: action.severity)
    if not ladder[0].action.is_destructive and weakest.is_destructive:
        return tuple(Rung(action, policy.action_timeouts.get(action)) for action in LADDER_FOR_ACTION[weakest])
    return ladder


def driving_finding(findings: tuple[Finding, ...], policy: Policy, fallback: LadderFallback | None) -> str:
    """The finding class that drives a repair: the one whose ladder starts strongest, then the oldest."""
    if not findings:
        return ""
    ranked = sorted(
        findings,
        key=lambda f: (-policy.ladder_for(f.code, fallback=fallback)[0].action.severity, f.first_seen, f.code),
    )
    return ranked[0].code


def _stronger_than_hold(run: Run, fallback: LadderFallback | None) -> str | None:
    """While a node is held for a human (a notify rung), a finding whose ladder acts: its class, else None.

    Without this a repair's class, fixed at its first write, would keep a node
    with a fresh Xid 79 cordoned and undrained behind an InfiniBand notice.
    """
    if run.repair.phase not in (Phase.CORDONED, Phase.REMEDIATING) or run.rung is None:
        return None
    if run.rung.action is not Action.NOTIFY:
        return None
    code = driving_finding(run.repair.findings, run.policy, fallback)
    if not code or code == run.code:
        return None
    first = run.policy.ladder_for(code, fallback=fallback)[0].action
    return code if first.is_destructive else None


def _stronger_than_deferral(run: Run, fallback: LadderFallback | None, deferrable: Deferrable | None) -> str | None:
    """While deferred, a merged finding that may not wait and starts a stronger ladder: its class, else None."""
    if not deferral.is_deferred(run.repair):
        return None
    code = driving_finding(run.repair.findings, run.policy, fallback)
    return deferral.stronger_finding(run, deferrable, code, run.policy.ladder_for(code, fallback=fallback)[0].action)


def acts_on_node(repair: RepairView, policy: Policy, fallback: LadderFallback | None) -> bool:
    """Does the rest of this repair's ladder hold an action on the node (not only notify)?

    A half-open breaker's canary must test whether automatic repairs work again;
    a repair that will only page a human proves nothing and, finishing only when
    the human is done, would hold every other repair in the fleet behind it.
    """
    _, ladder = repair_ladder(repair, policy, fallback)
    return any(rung.action.is_destructive for rung in ladder[max(repair.attempt, 1) - 1 :])


def _human_took_over(repair: RepairView, facts: Facts) -> bool:
    """We cordoned and tainted the node; now it is schedulable or our taint is gone: a human took it."""
    return repair.acknowledged_at is not None and (not facts.node_unschedulable or not facts.our_taint)


def _unfinished_finish(run: Run) -> Decision | None:
    """A finishing step whose ``after`` was never written (operator died mid-step): do it again."""
    last = run.repair.history[-1] if run.repair.history else {}
    if last.get("outcome") != "started":
        return None
    message = str(last.get("message") or "")
    if last.get("step") == Step.CORDON.value and run.repair.acknowledged_at is None:
        return run.finish_cordon(message)
    if last.get("step") == Step.RETURN_TO_SERVICE.value:
        return run.return_to_service(message)
    if last.get("step") == Step.QUARANTINE.value:
        return run.quarantine("Quarantined", message)
    if last.get("step") in ("release", "hand-over"):
        reason = next((c.get("reason") for c in run.repair.conditions if c.get("type") == "Cancelled"), "Released")
        return run.release(str(reason), message, last.get("step") == "release")
    return None


def _admit(run: Run) -> Decision:
    """Pending: may this repair take its node out of service?"""
    if run.ladder[0].action is Action.NONE:
        return run.finish(Step.CANCEL, Phase.CANCELLED, "NoAction", f"{run.code}: nothing to repair (no action)")
    if run.facts.finding_present is False:
        return run.finish(Step.CANCEL, Phase.CANCELLED, "FindingCleared", f"{run.code} cleared before admission")
    block = first_block(ADMISSION_BLOCKERS, run.ctx())
    if block is None:
        return run.cordon()
    if block.verdict is Verdict.DRY_RUN:
        return run.finish(Step.RECORD_DRY_RUN, Phase.CANCELLED, block.code, f"{block.message}; {run.plan()}")
    if block.verdict is Verdict.QUEUE:
        return run.queue(block)
    return run.block(block, cordon=ConcurrencyBudget().check(run.ctx()) is None)


def _cordoned(run: Run, *, deferrable: Deferrable | None = None) -> Decision:
    """Cordoned (or between rungs): finish the cordon, then the checks before the rung's drain.

    A repair that may wait for idle GPUs is held here, before its first drain
    (:func:`repairbot.machine.deferral.judge`): nothing is evicted while it waits.
    """
    if run.repair.acknowledged_at is None:
        return run.cordon()
    rung = run.rung
    if run.repair.request is None:  # first rung: a lemon skips the ladder
        lemon = LemonNode().check(run.ctx()) or LemonGpu().check(run.ctx())
        if lemon is not None:
            return run.quarantine(lemon.code, lemon.message)
    if rung is None or rung.action is Action.QUARANTINE:
        return run.quarantine("LadderExhausted", f"{run.code}: ladder ends in quarantine")
    if rung.action is Action.NOTIFY:
        return run.hold(rung)
    if run.facts.finding_present is False:
        return run.release("FindingCleared", f"{run.code} cleared before any action; node returned", True)
    block = first_block(DESTRUCTIVE_STEP_BLOCKERS, run.ctx(rung.action))
    if block is not None:
        return run.block(block)
    waited = deferral.judge(run, deferrable)
    if isinstance(waited, Decision):
        return waited
    settling = _settling(run)
    if settling is not None:
        return settling
    message = deferral.drain_message(run, waited)
    return run.transition(Step.START_DRAIN, Phase.DRAINING, "DrainStarted", message, **deferral.ended(run, waited))


def _settling(run: Run) -> Decision | None:
    """Before a repair's first drain: wait out the breaker's settle time, so a storm is seen first."""
    received = run.repair.received_at or run.repair.detected_at  # detectedAt: repairs written before receivedAt
    if run.repair.request is not None or received is None:
        return None
    left = run.policy.breaker.settle_time - (run.now - received)
    if left <= timedelta(0):
        return None
    return Decision(
        Step.NOTHING, f"cordoned; first action in {_minutes(left)} (storm breaker settle time)", requeue_after=left
    )


def _draining(run: Run) -> Decision:
    """One drain pass's outcome; the first pass to meet pods without a controller names them in the history."""
    if not run.facts.unmanaged_pods or already_noted(run.repair.history):
        return _drain_outcome(run)
    message = unmanaged_message(run.facts.unmanaged_pods)
    noted = replace(run, notes=(run.entry(STEP_DRAIN, OUTCOME_UNMANAGED, message, run.repair.action),))
    decision = _drain_outcome(noted)
    if decision.patch:
        return decision
    # Nothing else to write this pass: the entry goes alone, and the event says it where kubectl users look.
    return replace(decision, message=message, patch=noted.base(Phase.DRAINING, decision.message), event="UnmanagedPods")


def _drain_outcome(run: Run) -> Decision:
    rung = run.rung
    assert rung is not None, "a draining repair always has a rung"
    block = first_block(DESTRUCTIVE_STEP_BLOCKERS, run.ctx(rung.action))
    if block is not None:
        return run.block(block)
    if run.facts.pods_left == 0:
        return slurm_jobs.wait_for_jobs(run) or run.begin_rung(rung)
    started_entry = run.repair.last_entry(Step.START_DRAIN.value)
    started = optional_time(str(started_entry["at"])) if started_entry else None
    if started is not None and run.now - started >= run.policy.drain.timeout:
        pdbs = ", ".join(run.facts.blocking_pdbs)
        because = f"; eviction blocked by PDB {pdbs}" if pdbs else ""
        message = (
            f"node {run.repair.node}: drain timed out after {_minutes(run.now - started)}; "
            f"{run.facts.pods_left} pods left{because}; resume the repair once they can leave"
        )
        return run.block(BlockReason(Verdict.BLOCK, "DrainTimedOut", message), step=Step.DRAIN_TIMED_OUT)
    # Pods on their way out are gone within their grace period: look again soon. Pods a budget
    # refused wait for the budget, and retrying their eviction every few seconds is what kubectl does.
    again = POLL if run.facts.pods_blocked else DRAIN_POLL
    return Decision(Step.CONTINUE_DRAIN, f"{run.facts.pods_left} pods left", requeue_after=again)


def _remediating(run: Run) -> Decision:
    rung = run.rung
    if rung is None:
        return run.quarantine("LadderExhausted", f"{run.code}: ladder exhausted")
    if rung.action is Action.QUARANTINE:  # a human asked for it (``repairbot repair NODE --action quarantine``)
        return run.quarantine("Requested", f"{run.code}: quarantine requested for node {run.repair.node}")
    if rung.action is Action.NOTIFY:
        return _holding(run, rung)
    request = run.repair.request
    if request is None or request.id != request_id(run.repair.name, run.repair.attempt, rung.action.value):
        return run.begin_rung(rung)
    if rung.action is Action.POWER_CYCLE:
        back = run.facts.node_ready and request.boot_id and run.facts.boot_id not in ("", request.boot_id)
        if back:
            return run.validate(f"node {run.repair.node} is back after the power cycle")
        failure = _action_failure(run, Step.POWER_CYCLE)
        if failure is not None:
            return run.next_rung(f"{rung.action.value} failed: {failure}", recorded=True)
        return _wait_or_climb(run, request, f"{rung.action.value} timed out: node did not come back")
    return _answered(run, request, on_success=lambda: run.validate(f"{rung.action.value} succeeded"))


def _action_failure(run: Run, step: Step) -> str | None:
    """Why this rung's own action failed, as the shell recorded it (its entry ``failed``); None when it did not."""
    entry = run.repair.last_entry(step.value)
    if entry is None or entry.get("outcome") != "failed" or entry.get("attempt") != max(run.repair.attempt, 1):
        return None
    return str(entry.get("message") or "no reason given")


def _holding(run: Run, rung: Rung) -> Decision:
    """A notify rung: the node stays cordoned, undrained, until the finding clears or a human acts."""
    if run.facts.finding_present is False:
        return run.validate(f"{run.code} cleared while waiting for a human")
    entered = run.repair.last_entry(Step.HOLD.value)
    entered_at = (optional_time(str(entered["at"])) if entered else None) or run.now
    timed_out = rung.timeout is not None and run.now - entered_at >= rung.timeout
    last_rung = max(run.repair.attempt, 1) >= len(run.ladder)
    if run.facts.resume_requested and last_rung:
        # "Go on" with nothing left to climb means "I looked, it is fine": check the node and return it.
        return run.validate("a human resumed the hold")
    if run.facts.resume_requested or timed_out:
        why = "a human resumed the repair" if run.facts.resume_requested else "nobody came in time"
        return run.next_rung(f"notify: {why}", outcome="resumed")
    return Decision(Step.HOLD, run.repair.message)


def _validating(run: Run) -> Decision:
    request = run.repair.request
    if request is None or request.id != request_id(run.repair.name, run.repair.attempt, VALIDATE):
        return run.validate("validation requested again")
    return _answered(run, request, on_success=lambda: _after_agent_validation(run, request))


def _after_agent_validation(run: Run, request: Request) -> Decision:
    """The agent passed the node; the quiet period and load check (when configured) must agree."""
    rules = run.policy.validation
    checks: list[tuple[str, bool | None]] = []
    if rules.prometheus_url:
        asked = request.requested_at or run.now
        if run.now - asked < rules.quiet_period:
            return Decision(Step.WAIT_FOR_AGENT, "quiet period running", requeue_after=POLL)
        checks.append(("no new faults during the quiet period", run.facts.quiet_period_ok))
    for what, ok in checks:
        if ok is False:
            return run.next_rung(f"validation failed: {what} did not pass")
    if any(ok is None for _, ok in checks):
        waiting_for = next(what for what, ok in checks if ok is None)
        return _wait_or_climb(run, request, f"validation timed out waiting for {waiting_for}", grace=rules.quiet_period)
    return run.return_to_service("validated: node healthy")


def _answered(run: Run, request: Request, *, on_success: Any) -> Decision:
    answer = run.repair.agent
    if answer is not None and answer.request_id == request.id:
        if answer.result == AgentResult.SUCCEEDED:
            result: Decision = on_success()
            return result
        if answer.result in (AgentResult.FAILED, AgentResult.REFUSED):
            return run.next_rung(f"{request.action} {answer.result}: {answer.message}".rstrip(": "))
    return _wait_or_climb(run, request, f"{request.action} timed out: no answer from the agent")


def _wait_or_climb(run: Run, request: Request, timeout_message: str, *, grace: timedelta = timedelta(0)) -> Decision:
    if request.deadline is not None and run.now >= request.deadline + grace:
        return run.next_rung(timeout_message, outcome="timed-out")
    # The agent's answer (or the node coming back) wakes the repair through its watch event; this
    # requeue is only the safety net, and the deadline, so hundreds of waiting repairs stay cheap.
    wake = WAIT_SAFETY_NET
    if request.deadline is not None:
        wake = max(timedelta(seconds=1), min(wake, request.deadline + grace - run.now))
    return Decision(Step.WAIT_FOR_AGENT, f"waiting for {request.action} ({request.id})", requeue_after=wake)


def _blocked(run: Run) -> Decision:
    """Blocked: wait for the cause to clear (breaker, reboot cap) or a human to resume (drain timeout)."""
    cause = run.repair.blocked_by
    rung_action = run.rung.action if run.rung else None
    if cause in ("BreakerOpen", "BreakerHalfOpen"):
        still = first_block(DESTRUCTIVE_STEP_BLOCKERS[:2], run.ctx(rung_action))
    elif cause == "RebootCap":
        still = first_block(DESTRUCTIVE_STEP_BLOCKERS, run.ctx(rung_action))
    else:
        still = None if run.facts.resume_requested else BlockReason(Verdict.BLOCK, cause or "", run.repair.message)
    if still is None:
        budget = ConcurrencyBudget().check(run.ctx())
        if budget is not None:  # never cordoned: it queues behind the budget like any new repair
            return run.requeue_resumed(budget)
        return run.admit()
    if run.repair.acknowledged_at is None and ConcurrencyBudget().check(run.ctx()) is None:
        return run.block(still, cordon=True)
    return Decision(Step.NOTHING, still.message, requeue_after=timedelta(minutes=1))


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes}m" if minutes else f"{int(delta.total_seconds())}s"
