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
Terminal phases that touch the node are written in ``after``, never in
``patch``, so a crash mid-step leaves a repair that finishes the step, not an
orphaned taint.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from repairbot.model import Action, Finding, HistoryEntry, NodeState, Phase, format_time, parse_time
from repairbot.operator.blockers import (
    ADMISSION_BLOCKERS,
    DESTRUCTIVE_STEP_BLOCKERS,
    BlockContext,
    BlockReason,
    ConcurrencyBudget,
    LemonNode,
    OptOutBlocker,
    Verdict,
    first_block,
)
from repairbot.operator.breaker import Breaker, Fault
from repairbot.policy import LadderFallback, Policy, Rung

AGENT_ACTIONS = frozenset({Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT})
"""Actions the node agent performs on ``status.request``; power-cycle goes through the BMC instead."""

POLL = timedelta(seconds=5)
"""How soon a waiting step wants to be looked at again (drains, agent answers)."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Request:
    """``status.request``: what the operator asked for. ``boot_id`` is the node's boot id when asked."""

    id: str
    action: str
    requested_at: datetime | None = None
    deadline: datetime | None = None
    boot_id: str = ""


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """``status.agent``: the node agent's answer to the request with ``request_id``."""

    request_id: str
    result: str
    message: str = ""
    boot_id: str = ""


@dataclass(frozen=True, slots=True)
class RepairView:
    """A typed read of one GPURepair object; :meth:`from_object` is the only parser of its shape."""

    name: str
    node: str
    phase: Phase = Phase.PENDING
    findings: tuple[Finding, ...] = ()
    reason: str | None = None
    action: Action | None = None
    attempt: int = 0
    request: Request | None = None
    agent: AgentAnswer | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    conditions: tuple[Mapping[str, Any], ...] = ()
    node_was_cordoned: bool | None = None
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    dry_run: bool = False
    requested_action: Action | None = None
    incident: str | None = None
    message: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RepairView:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        request, answer = status.get("request") or {}, status.get("agent") or {}
        return cls(
            name=obj["metadata"]["name"],
            node=spec.get("nodeName", ""),
            phase=Phase(status.get("phase") or Phase.PENDING.value),
            findings=tuple(Finding.from_dict(item) for item in spec.get("findings") or ()),
            reason=status.get("reason"),
            action=Action(status["action"]) if status.get("action") else None,
            attempt=int(status.get("attempt") or 0),
            request=_request(request) if request.get("id") else None,
            agent=_answer(answer) if answer.get("requestId") else None,
            history=tuple(status.get("history") or ()),
            conditions=tuple(status.get("conditions") or ()),
            node_was_cordoned=status.get("nodeWasCordoned"),
            detected_at=_time(status.get("detectedAt")),
            acknowledged_at=_time(status.get("acknowledgedAt")),
            resolved_at=_time(status.get("resolvedAt")),
            dry_run=bool(spec.get("dryRun")),
            requested_action=Action(spec["requestedAction"]) if spec.get("requestedAction") else None,
            incident=status.get("incident"),
            message=status.get("message") or "",
        )

    @property
    def blocked_by(self) -> str | None:
        """The reason code of the active ``Blocked`` condition (why this repair waits)."""
        for condition in self.conditions:
            if condition.get("type") == "Blocked" and condition.get("status") == "True":
                return str(condition.get("reason") or "")
        return None

    def last_entry(self, step: str) -> Mapping[str, Any] | None:
        return next((entry for entry in reversed(self.history) if entry.get("step") == step), None)


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def _request(raw: Mapping[str, Any]) -> Request:
    return Request(
        id=raw["id"],
        action=raw.get("action", ""),
        requested_at=_time(raw.get("requestedAt")),
        deadline=_time(raw.get("deadline")),
        boot_id=raw.get("bootId") or "",
    )


def _answer(raw: Mapping[str, Any]) -> AgentAnswer:
    return AgentAnswer(raw["requestId"], raw.get("result") or "", raw.get("message") or "", raw.get("bootId") or "")


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """The node's budget pool: its size and how many *other* nodes of it are out of service now."""

    name: str = "fleet"
    size: int = 0
    out_of_service: int = 0


@dataclass(frozen=True, slots=True)
class Facts:
    """What the handler saw around the repair, gathered just before :func:`decide`.

    ``our_taint`` is the ``repairbot.io/unhealthy`` taint; with ``acknowledged_at``
    it tells a human uncordon (taint kept, node schedulable) from our own work.
    ``finding_present`` None means "cannot tell" and counts as present.
    ``recent_repairs`` are the node's earlier repairs that reached a rung (lemon rule);
    ``recent_reboots`` its reboots and power cycles (reboot cap); ``recent_faults``
    the fleet's new repairs (storm breaker).
    """

    node_exists: bool = True
    node_deleting: bool = False
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_unschedulable: bool = False
    our_taint: bool = False
    node_ready: bool = True
    boot_id: str = ""
    pods_left: int = 0
    blocking_pdbs: tuple[str, ...] = ()
    pool: PoolUsage = PoolUsage()
    breaker: Breaker = field(default_factory=Breaker)
    recent_faults: tuple[Fault, ...] = ()
    recent_repairs: tuple[datetime, ...] = ()
    recent_reboots: tuple[datetime, ...] = ()
    finding_present: bool | None = None
    quiet_period_ok: bool | None = None
    load_check_ok: bool | None = None
    resume_requested: bool = False


# --------------------------------------------------------------------------- output


class Step(enum.StrEnum):
    ADMIT = "admit"
    QUEUE = "queue"
    BLOCK = "block"
    CANCEL = "cancel"
    CORDON = "cordon"
    START_DRAIN = "start-drain"
    CONTINUE_DRAIN = "continue-drain"
    DRAIN_TIMED_OUT = "drain-timed-out"
    REQUEST_ACTION = "request-action"
    WAIT_FOR_AGENT = "wait-for-agent"
    POWER_CYCLE = "power-cycle"
    VALIDATE = "validate"
    RETURN_TO_SERVICE = "return-to-service"
    NEXT_RUNG = "next-rung"
    QUARANTINE = "quarantine"
    HOLD = "hold"
    RECORD_DRY_RUN = "record-dry-run"
    NOTHING = "nothing"


DESTRUCTIVE_STEPS = frozenset({Step.START_DRAIN, Step.CONTINUE_DRAIN, Step.REQUEST_ACTION, Step.POWER_CYCLE})
"""Steps that disturb workloads or the machine: never while the breaker is open or in dry-run."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step, the status to write before it (``patch``) and after it succeeded (``after``).

    ``event`` is the Kubernetes event reason and log word ("" for quiet waits);
    ``message`` the human sentence for history, events and Slack. Node marks:
    ``cordon`` (cordon + taint), ``node_state`` (label value), ``uncordon``,
    ``remove_marks`` (taint and state label off).
    """

    step: Step
    message: str = ""
    patch: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    event: str = ""
    action: Action | None = None
    request_id: str | None = None
    cordon: bool = False
    node_state: NodeState | None = None
    uncordon: bool = False
    remove_marks: bool = False
    requeue_after: timedelta | None = None

    @property
    def is_destructive(self) -> bool:
        return self.step in DESTRUCTIVE_STEPS

    @property
    def touches_node(self) -> bool:
        """Does executing this step change the Node object or the machine at all?"""
        marks = self.cordon or self.uncordon or self.remove_marks or self.node_state is not None
        return self.is_destructive or marks


class CatalogEntry(Protocol):
    @property
    def default_ladder(self) -> tuple[Action, ...]: ...
    @property
    def known(self) -> bool: ...


class XidLookup(Protocol):
    """The one thing the machine needs of :class:`repairbot.xid.XidCatalog`: ``lookup(code)``."""

    def lookup(self, code: int) -> CatalogEntry: ...


def catalog_fallback(catalog: XidLookup) -> LadderFallback:
    """The seam to the Xid catalog: ``xid-N`` → the catalog's default ladder; unknown codes and
    non-Xid findings → None, so the policy's ``default`` ladder applies."""

    def ladder(code: str) -> tuple[Action, ...] | None:
        found = re.fullmatch(r"xid-(\d+)", code)
        if found is None:
            return None
        entry = catalog.lookup(int(found.group(1)))
        return entry.default_ladder if entry.known else None

    return ladder


def request_id(repair: str, attempt: int, action: str) -> str:
    """Deterministic: a restarted operator writes the same id, so the agent never acts twice."""
    return f"{repair}-{attempt}-{action}"


# --------------------------------------------------------------------------- deciding


def decide(
    repair: RepairView, facts: Facts, policy: Policy, now: datetime, *, fallback: LadderFallback | None = None
) -> Decision:
    """The next step for ``repair``. ``fallback`` maps a finding code to the Xid catalog's ladder."""
    if repair.phase.is_terminal:
        return Decision(Step.NOTHING, f"repair is {repair.phase.value}")
    code = repair.reason or driving_finding(repair.findings, policy, fallback) or "default"
    run = _Run(repair, facts, policy, now, _ladder(repair, code, policy, fallback), code)
    if not facts.node_exists or facts.node_deleting:
        word = "deleted" if not facts.node_exists else "being deleted"
        return run.finish(Step.CANCEL, Phase.CANCELLED, "NodeGone", f"node {repair.node} is {word}")
    opted_out = OptOutBlocker().check(run.ctx())
    if opted_out is not None:
        return run.finish(Step.CANCEL, Phase.CANCELLED, opted_out.code, opted_out.message)
    unfinished = _unfinished_finish(run)
    if unfinished is not None:
        return unfinished
    if repair.phase is Phase.PENDING:
        return _admit(run)
    if policy.dry_run or repair.dry_run:
        return Decision(Step.NOTHING, "dry-run: repair paused, nothing touched")
    if _human_took_over(repair, facts):
        return run.release("HandedOver", f"node {repair.node} was uncordoned by hand; RepairBot steps back", False)
    phase_logic = {
        Phase.CORDONED: _cordoned,
        Phase.DRAINING: _draining,
        Phase.REMEDIATING: _remediating,
        Phase.VALIDATING: _validating,
        Phase.BLOCKED: _blocked,
    }
    return phase_logic[repair.phase](run)


def _ladder(repair: RepairView, code: str, policy: Policy, fallback: LadderFallback | None) -> tuple[Rung, ...]:
    """The repair's ladder: its reason's (or strongest finding's), with a human-requested first rung."""
    ladder = policy.ladder_for(code, fallback=fallback)
    wanted = repair.requested_action
    if wanted is None:
        return ladder
    first = Rung(wanted, None if wanted is Action.NOTIFY else policy.action_timeouts.get(wanted))
    return (first, *[rung for rung in ladder if rung.action.severity > wanted.severity])


def driving_finding(findings: tuple[Finding, ...], policy: Policy, fallback: LadderFallback | None) -> str:
    """The finding class that drives a repair: the one whose ladder starts strongest, then the oldest."""
    if not findings:
        return ""
    ranked = sorted(
        findings,
        key=lambda f: (-policy.ladder_for(f.code, fallback=fallback)[0].action.severity, f.first_seen, f.code),
    )
    return ranked[0].code


def _human_took_over(repair: RepairView, facts: Facts) -> bool:
    """We cordoned and tainted the node; now it is schedulable or our taint is gone: a human took it."""
    return repair.acknowledged_at is not None and (not facts.node_unschedulable or not facts.our_taint)


def _unfinished_finish(run: _Run) -> Decision | None:
    """A finishing step whose ``after`` was never written (operator died mid-step): do it again."""
    last = run.repair.history[-1] if run.repair.history else {}
    if last.get("outcome") != "started":
        return None
    message = str(last.get("message") or "")
    if last.get("step") == Step.RETURN_TO_SERVICE.value:
        return run.return_to_service(message)
    if last.get("step") == Step.QUARANTINE.value:
        return run.quarantine("Quarantined", message)
    if last.get("step") in ("release", "hand-over"):
        reason = next((c.get("reason") for c in run.repair.conditions if c.get("type") == "Cancelled"), "Released")
        return run.release(str(reason), message, last.get("step") == "release")
    return None


def _admit(run: _Run) -> Decision:
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


def _cordoned(run: _Run) -> Decision:
    """Cordoned (or between rungs): finish the cordon, then the checks before the rung's drain."""
    if run.repair.acknowledged_at is None:
        return run.cordon()
    rung = run.rung
    if run.repair.request is None:  # first rung: a lemon skips the ladder
        lemon = LemonNode().check(run.ctx())
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
    return run.transition(Step.START_DRAIN, Phase.DRAINING, "DrainStarted", f"draining node {run.repair.node}")


def _draining(run: _Run) -> Decision:
    rung = run.rung
    assert rung is not None, "a draining repair always has a rung"
    block = first_block(DESTRUCTIVE_STEP_BLOCKERS, run.ctx(rung.action))
    if block is not None:
        return run.block(block)
    if run.facts.pods_left == 0:
        return run.begin_rung(rung)
    started_entry = run.repair.last_entry(Step.START_DRAIN.value)
    started = _time(str(started_entry["at"])) if started_entry else None
    if started is not None and run.now - started >= run.policy.drain.timeout:
        pdbs = ", ".join(run.facts.blocking_pdbs)
        because = f"; eviction blocked by PDB {pdbs}" if pdbs else ""
        message = (
            f"node {run.repair.node}: drain timed out after {_minutes(run.now - started)}; "
            f"{run.facts.pods_left} pods left{because}; resume the repair once they can leave"
        )
        return run.block(BlockReason(Verdict.BLOCK, "DrainTimedOut", message), step=Step.DRAIN_TIMED_OUT)
    return Decision(Step.CONTINUE_DRAIN, f"{run.facts.pods_left} pods left", requeue_after=POLL)


def _remediating(run: _Run) -> Decision:
    rung = run.rung
    if rung is None:
        return run.quarantine("LadderExhausted", f"{run.code}: ladder exhausted")
    if rung.action is Action.NOTIFY:
        return _holding(run, rung)
    request = run.repair.request
    if request is None or request.id != request_id(run.repair.name, run.repair.attempt, rung.action.value):
        return run.begin_rung(rung)
    if rung.action is Action.POWER_CYCLE:
        back = run.facts.node_ready and request.boot_id and run.facts.boot_id not in ("", request.boot_id)
        if back:
            return run.validate(f"node {run.repair.node} is back after the power cycle")
        return _wait_or_climb(run, request, f"{rung.action.value} timed out: node did not come back")
    return _answered(run, request, on_success=lambda: run.validate(f"{rung.action.value} succeeded"))


def _holding(run: _Run, rung: Rung) -> Decision:
    """A notify rung: the node stays cordoned, undrained, until the finding clears or a human acts."""
    if run.facts.finding_present is False:
        return run.validate(f"{run.code} cleared while waiting for a human")
    entered = run.repair.last_entry(Step.HOLD.value)
    entered_at = (_time(str(entered["at"])) if entered else None) or run.now
    timed_out = rung.timeout is not None and run.now - entered_at >= rung.timeout
    if run.facts.resume_requested or timed_out:
        why = "a human resumed the repair" if run.facts.resume_requested else "nobody came in time"
        return run.next_rung(f"notify: {why}", outcome="resumed")
    return Decision(Step.HOLD, run.repair.message)


def _validating(run: _Run) -> Decision:
    request = run.repair.request
    if request is None or request.id != request_id(run.repair.name, run.repair.attempt, "validate"):
        return run.validate("validation requested again")
    return _answered(run, request, on_success=lambda: _after_agent_validation(run, request))


def _after_agent_validation(run: _Run, request: Request) -> Decision:
    """The agent passed the node; the quiet period and load check (when configured) must agree."""
    rules = run.policy.validation
    checks: list[tuple[str, bool | None]] = []
    if rules.prometheus_url:
        asked = request.requested_at or run.now
        if run.now - asked < rules.quiet_period:
            return Decision(Step.WAIT_FOR_AGENT, "quiet period running", requeue_after=POLL)
        checks.append(("no new faults during the quiet period", run.facts.quiet_period_ok))
    if rules.require_load_check:
        checks.append(("the load check", run.facts.load_check_ok))
    for what, ok in checks:
        if ok is False:
            return run.next_rung(f"validation failed: {what} did not pass")
    if any(ok is None for _, ok in checks):
        waiting_for = next(what for what, ok in checks if ok is None)
        return _wait_or_climb(run, request, f"validation timed out waiting for {waiting_for}", grace=rules.quiet_period)
    return run.return_to_service("validated: node healthy")


def _answered(run: _Run, request: Request, *, on_success: Any) -> Decision:
    answer = run.repair.agent
    if answer is not None and answer.request_id == request.id:
        if answer.result == "succeeded":
            result: Decision = on_success()
            return result
        if answer.result in ("failed", "refused"):
            return run.next_rung(f"{request.action} {answer.result}: {answer.message}".rstrip(": "))
    return _wait_or_climb(run, request, f"{request.action} timed out: no answer from the agent")


def _wait_or_climb(run: _Run, request: Request, timeout_message: str, *, grace: timedelta = timedelta(0)) -> Decision:
    if request.deadline is not None and run.now >= request.deadline + grace:
        return run.next_rung(timeout_message, outcome="timed-out")
    return Decision(Step.WAIT_FOR_AGENT, f"waiting for {request.action} ({request.id})", requeue_after=POLL)


def _blocked(run: _Run) -> Decision:
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
        return run.admit()
    if run.repair.acknowledged_at is None and ConcurrencyBudget().check(run.ctx()) is None:
        return run.block(still, cordon=True)
    return Decision(Step.NOTHING, still.message, requeue_after=timedelta(minutes=1))


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes}m" if minutes else f"{int(delta.total_seconds())}s"



# --------------------------------------------------------------------------- building decisions


@dataclass(frozen=True, slots=True)
class _Run:
    """One call of :func:`decide`: its inputs, and the builders that turn a step into patches."""

    repair: RepairView
    facts: Facts
    policy: Policy
    now: datetime
    ladder: tuple[Rung, ...]
    code: str

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

    def history(self, *entries: dict[str, Any]) -> list[dict[str, Any]]:
        return [*map(dict, self.repair.history), *entries]

    def base(self, phase: Phase, message: str, *entries: dict[str, Any]) -> dict[str, Any]:
        """The fields every transition writes; ``detectedAt`` and ``reason`` once, on the first write."""
        patch: dict[str, Any] = {"phase": phase.value, "message": message, "history": self.history(*entries)}
        if self.repair.detected_at is None:
            first = min((f.first_seen for f in self.repair.findings), default=self.now)
            patch["detectedAt"] = format_time(first)
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
        return Decision(step, message, patch, event=event, requeue_after=POLL)

    def finish(self, step: Step, phase: Phase, reason: str, message: str) -> Decision:
        """A terminal phase reached without touching the node."""
        patch = self.base(phase, message, self.entry(step.value, reason, message))
        patch["conditions"] = self.conditions(phase.value, True, reason, message)
        return Decision(step, message, patch, event=reason)

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

    def queue(self, block: BlockReason) -> Decision:
        if self.repair.phase is Phase.PENDING and self.repair.message == block.message:
            return Decision(Step.QUEUE, block.message, requeue_after=timedelta(seconds=30))
        patch = self.base(Phase.PENDING, block.message, self.entry("queue", block.code, block.message))
        return Decision(Step.QUEUE, block.message, patch, event=block.code, requeue_after=timedelta(seconds=30))

    def block(self, block: BlockReason, *, cordon: bool = False, step: Step = Step.BLOCK) -> Decision:
        """Blocked: cordon only (when the budget allows and it is not yet done), nothing destructive."""
        if block.verdict is Verdict.QUARANTINE:
            return self.quarantine(block.code, block.message)
        cordon = cordon and self.repair.acknowledged_at is None and not (self.policy.dry_run or self.repair.dry_run)
        entry = self.entry(step.value, block.code, block.message, self.rung.action if self.rung else None)
        patch = self.base(Phase.BLOCKED, block.message, entry)
        patch["conditions"] = self.conditions("Blocked", True, block.code, block.message)
        if block.code.startswith("Breaker"):
            breaker = self.facts.breaker.observe(self.facts.recent_faults, self.policy.breaker, now=self.now)
            patch["incident"] = breaker.incident
        if self.repair.action is None:
            patch |= {"action": self.ladder[0].action.value, "attempt": 1}
        if not cordon:
            return Decision(step, block.message, patch, event=block.code, requeue_after=timedelta(minutes=1))
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
        return Decision(Step.ADMIT, message, patch, event="Resumed", requeue_after=POLL)

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
        request: dict[str, Any] = {"id": ident, "action": rung.action.value, "requestedAt": format_time(self.now),
                                   "deadline": format_time(deadline)}  # fmt: skip
        gpu = self.driving_gpu()
        if rung.action is Action.GPU_RESET and gpu:
            request["gpu"] = gpu
        fields = {"action": rung.action.value, "attempt": attempt, "request": request}
        if rung.action is Action.POWER_CYCLE:
            request["bootId"] = self.facts.boot_id
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

    def driving_gpu(self) -> dict[str, Any]:
        finding = next((f for f in self.repair.findings if f.code == self.code), None)
        return finding.gpu.to_dict() if finding else {}

    def validate(self, why: str) -> Decision:
        attempt = max(self.repair.attempt, 1)
        ident = request_id(self.repair.name, attempt, "validate")
        deadline = self.now + self.policy.validation.timeout
        request = {"id": ident, "action": "validate", "requestedAt": format_time(self.now),
                   "deadline": format_time(deadline)}  # fmt: skip
        message = f"{why}; validating node {self.repair.node}"
        patch = self.base(Phase.VALIDATING, message, self.entry("validate", "started", message)) | {"request": request}
        return Decision(Step.VALIDATE, message, patch, event="Validating", request_id=ident, requeue_after=POLL)

    def next_rung(self, why: str, *, outcome: str = "failed") -> Decision:
        """A rung failed or timed out: the next one, from Cordoned (re-checked, re-drained); none left → quarantine."""
        failed = self.entry(self.rung.action.value if self.rung else "rung", outcome, why, self.repair.action)
        attempt = max(self.repair.attempt, 1) + 1
        if attempt > len(self.ladder) or self.ladder[attempt - 1].action is Action.QUARANTINE:
            return self.quarantine("LadderExhausted", f"{why}; ladder exhausted for {self.code}", failed)
        nxt = self.ladder[attempt - 1]
        message = f"{why}; next rung {nxt.action.value}"
        patch = self.base(Phase.CORDONED, message, failed) | {"attempt": attempt, "action": nxt.action.value}
        return Decision(Step.NEXT_RUNG, message, patch, event="NextRung", action=nxt.action, requeue_after=POLL)

    def quarantine(self, reason: str, message: str, *earlier: dict[str, Any]) -> Decision:
        """Terminal for the node: stays cordoned and tainted, labelled for hardware; evidence stays in status."""
        started = self.entry(Step.QUARANTINE.value, "started", message, Action.QUARANTINE)
        patch = self.base(Phase.REMEDIATING, message, *earlier, started) | {"action": Action.QUARANTINE.value}
        if self.repair.phase is Phase.PENDING or self.repair.acknowledged_at is None:
            patch["phase"] = self.repair.phase.value  # not cordoned yet: only the label changes now
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


def _done(started: dict[str, Any], now: datetime) -> dict[str, Any]:
    return started | {"outcome": "done", "at": format_time(now)}
