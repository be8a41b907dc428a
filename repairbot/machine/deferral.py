"""Deferred repairs: a fault that may wait for the next convenient reset never evicts running work.

NVIDIA's guidance for a pending row remap (Xid 63, the NVML ``remap pending``
flag) or a pending resource retirement (Xid 156) is "reset the GPU at the next
convenient time": the running job is unaffected, the fix takes effect only at
the next reset. A repair whose every finding may wait (the catalog's
``defer_until_drain``, :mod:`repairbot.catalog.deferral`) is cordoned as any
other — no new work lands on the GPU — and then *held in Cordoned* before its
first destructive rung, with a ``Deferred`` condition and one ``defer`` history
entry (which Slack and Jira carry as a note), until:

* the node's GPUs are idle: no pod that the rung's drain would move is still
  on the node (``Facts.running_pods``; a GPU reset moves only GPU pods, and the
  operator cannot tell which GPU a pod holds, so the whole node's GPU pods
  count); the drain then evicts nothing that runs;
* a maintenance window of the policy (``deferral.maintenanceWindows``) is
  open: the drain goes ahead as any drain, PDBs honoured;
* a finding that may *not* wait joins the repair (an Xid 79 merged into it):
  it drains and repairs at once (a stronger ladder first, :func:`stronger_finding`).

The hold is decided from the status, the facts and the clock alone, so a
restarted operator decides the same; while it holds, nothing is evicted and
nothing is requested of the agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from repairbot.bounds import truncate
from repairbot.machine.decision import Decision, Step
from repairbot.machine.repair_view import RepairView
from repairbot.machine.transitions import Run
from repairbot.model import Action, Phase, format_time

Deferrable = Callable[[str], bool]
"""Finding code → may its repair wait for idle GPUs (see :func:`repairbot.catalog.deferral.deferrable_rule`)."""

DEFERRED = "Deferred"
"""The condition type (and event reason) of a repair that waits for idle GPUs."""
WAITING = "WaitingForIdleGpus"
DEFER_POLL = timedelta(seconds=15)
"""How often a deferred repair looks at its node's pods again: pods ending wake no GPURepair watch."""
NAMED_PODS = 5


@dataclass(frozen=True, slots=True)
class Proceed:
    """A deferral that ends (or never began): why, for the ``Deferred`` condition's ``False``."""

    reason: str
    message: str


def is_deferred(repair: RepairView) -> bool:
    """Does the repair carry an active ``Deferred`` condition?"""
    return any(c.get("type") == DEFERRED and c.get("status") == "True" for c in repair.conditions)


def may_wait(run: Run, deferrable: Deferrable | None) -> bool:
    """May this repair wait for idle GPUs now?

    Only before its first destructive rung (no action requested yet: once a
    rung ran, the node was drained already), only when a human chose no action
    for it, and only when every finding of the repair may wait.
    """
    rung = run.rung
    if deferrable is None or rung is None or not rung.action.is_destructive:
        return False
    if run.repair.request is not None or run.repair.requested_action is not None:
        return False
    findings = run.repair.findings
    return bool(findings) and deferrable(run.code) and all(deferrable(f.code) for f in findings)


def judge(run: Run, deferrable: Deferrable | None) -> Decision | Proceed | None:
    """Cordoned, checks passed, before the drain: hold (a Decision), go on (:class:`Proceed`) or None (no deferral)."""
    if not may_wait(run, deferrable):
        if not is_deferred(run.repair):
            return None
        urgent = [f.code for f in run.repair.findings if deferrable is None or not deferrable(f.code)]
        if urgent:
            return Proceed("UrgentFinding", f"{urgent[0]} cannot wait: draining node {run.repair.node} at once")
        return Proceed("NoLongerDeferred", f"{run.code} no longer waits: draining node {run.repair.node}")
    window = run.policy.deferral.in_window(run.now)
    if window is not None:
        span = f"{', '.join(day for day in window.to_dict()['days'])} {window.start:%H:%M}-{window.end:%H:%M}"
        return Proceed("MaintenanceWindow", f"maintenance window open ({span} {window.timezone}): "
                       f"draining node {run.repair.node} for {run.code}")  # fmt: skip
    pods = run.facts.running_pods
    if pods == ():
        return Proceed("GpusIdle", "GPUs idle (no GPU pods left): "
                       f"draining node {run.repair.node} for {run.code}")  # fmt: skip
    return _hold(run, pods)


def _hold(run: Run, pods: tuple[str, ...] | None) -> Decision:
    """Wait: written once (condition and history entry, so Slack and Jira tell it), then quiet re-checks."""
    rung = run.rung
    assert rung is not None, "only a repair with a rung is deferred"
    if pods is None:
        running = "its pods could not be listed"
    else:
        shown = ", ".join(pods[:NAMED_PODS]) + (f" and {len(pods) - NAMED_PODS} more" if len(pods) > NAMED_PODS else "")
        running = f"running GPU pods left to finish: {shown}"
    windows = run.policy.deferral.maintenance_windows
    when = "once they are done" + (" or in the next maintenance window" if windows else "")
    message = truncate(
        f"{run.code} can wait for a convenient reset (NVIDIA: no urgency); node {run.repair.node} stays "
        f"cordoned, nothing evicted ({running}); {rung.action.value} {when}"
    )
    if is_deferred(run.repair):
        return Decision(Step.DEFER, message, requeue_after=DEFER_POLL)
    patch = run.base(Phase.CORDONED, message, run.entry(Step.DEFER.value, "deferred", message, rung.action))
    patch["conditions"] = run.conditions(DEFERRED, True, WAITING, message)
    return Decision(Step.DEFER, message, patch, event=DEFERRED, requeue_after=DEFER_POLL)


def drain_message(run: Run, proceed: Proceed | None) -> str:
    """The ``start-drain`` entry's words: why a deferral ended, when one was open (Slack and Jira tell it)."""
    if proceed is None or not is_deferred(run.repair):
        return f"draining node {run.repair.node}"
    return proceed.message


def ended(run: Run, proceed: Proceed | None) -> dict[str, object]:
    """Status fields that close an active deferral as the drain starts; nothing when none was open."""
    if proceed is None or not is_deferred(run.repair):
        return {}
    return {"conditions": run.conditions(DEFERRED, False, proceed.reason, proceed.message)}


def closed_at_the_end(repair: RepairView, decision: Decision, now: datetime) -> Decision:
    """A repair that ends while deferred (finding cleared, node handed over or gone) says ``Deferred=False``.

    Left True, ``kubectl describe`` would show a Cancelled repair still waiting for idle GPUs.
    """
    phase = decision.after.get("phase") or decision.patch.get("phase")
    if not is_deferred(repair) or phase is None or not Phase(phase).is_terminal:
        return decision
    written = decision.after.get("conditions") or decision.patch.get("conditions") or repair.conditions
    message = f"the repair ended ({phase}) before its reset"
    closed = {"type": DEFERRED, "status": "False", "reason": "RepairEnded", "message": message,
              "lastTransitionTime": format_time(now)}  # fmt: skip
    conditions = [*(dict(c) for c in written if c.get("type") != DEFERRED), closed]
    if "phase" in decision.after:  # the terminal phase is written after the step: so is the condition
        return replace(decision, after={**decision.after, "conditions": conditions})
    return replace(decision, patch={**decision.patch, "conditions": conditions})


def stronger_finding(run: Run, deferrable: Deferrable | None, driving: str, first: Action) -> str | None:
    """While deferred, a merged finding that may not wait and climbs a stronger ladder: its class, else None.

    ``driving`` is the repair's driving finding now and ``first`` the first
    action of its ladder (the machine knows ladders). An Xid 79 merged into a
    pending-remap repair must reboot at once, not reset a GPU after the job is done.
    """
    if run.repair.phase is not Phase.CORDONED or not is_deferred(run.repair) or deferrable is None:
        return None
    if not driving or driving == run.code or deferrable(driving) or run.rung is None:
        return None
    return driving if first.severity > run.rung.action.severity else None
