"""A human's word on a repair, from the CLI or a Slack button: who resumed it, and "stop" (cancel).

Both arrive as annotations the shell reads into :class:`~repairbot.machine.repair_view.Facts`
(``resumed_by``, ``cancel_requested_by``). The machine writes who asked into
the history in the same write as the step it leads to, so the history, the
Slack thread and the Jira ticket (which mirror the history) say "resumed by
<@U…> from Slack" once, whoever clicked twice.

A cancel ends the repair Cancelled and leaves the node cordoned for the
human who asked: RepairBot's taint and state label come off (it no longer
acts on the node), the cordon stays, and nothing is uncordoned.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from repairbot.machine.decision import Decision, Step
from repairbot.machine.transitions import Run
from repairbot.model import Action, Phase, Source

CANCELLED_BY_HUMAN = "CancelledByHuman"
QUARANTINED_BY_HUMAN = "QuarantinedByHuman"
STEP_RESUME = "resume"
OUTCOME_REQUESTED = "requested"


def resume_note(run: Run) -> dict[str, Any] | None:
    """The history entry "resumed by WHO" for a resume that names its human; None otherwise."""
    if not run.facts.resume_requested or not run.facts.resumed_by:
        return None
    return run.entry(STEP_RESUME, OUTCOME_REQUESTED, f"resumed by {run.facts.resumed_by}", run.repair.action)


def with_resume_note(noted: Run, decision: Decision) -> Decision:
    """``decision`` (made on ``noted``, whose notes hold the resume's entry) with that entry on record.

    Any patch ``noted`` built holds it already. A storm member that stays
    Blocked behind the canary decides nothing, yet the resume was taken (its
    annotation is cleared): the entry goes alone.
    """
    if decision.patch:
        return decision
    return replace(decision, patch=noted.base(noted.repair.phase, noted.repair.message or decision.message))


def cancelled_by_human(run: Run) -> Decision | None:
    """A human said stop: Cancelled, the node left cordoned (never uncordoned); None when nobody asked."""
    who = run.facts.cancel_requested_by
    if not who or run.repair.phase.is_terminal:
        return None
    message = f"cancelled by {who}; node {run.repair.node} left cordoned for a human"
    if run.repair.acknowledged_at is None and run.repair.phase is Phase.PENDING:
        return run.finish(Step.CANCEL, Phase.CANCELLED, CANCELLED_BY_HUMAN, f"cancelled by {who}")
    return run.release(CANCELLED_BY_HUMAN, message, False)


def quarantine_requested(run: Run) -> Decision | None:
    """A human's quarantine merged into a repair already out of service: hand the node to hardware now.

    A new repair asking for quarantine climbs its ladder's first rung (quarantine)
    once admitted; one already running would otherwise go on with its ladder.
    A Pending repair waits for admission like any other (the budget counts it).
    """
    if run.repair.phase is Phase.PENDING or run.repair.phase.is_terminal:
        return None
    asked = next((f for f in run.repair.findings if f.source is Source.MANUAL and f.action is Action.QUARANTINE), None)
    if asked is None:
        return None
    who = asked.evidence.get("requestedBy") or "a human"
    return run.quarantine(QUARANTINED_BY_HUMAN, f"quarantined by {who}; node {run.repair.node} goes to hardware")
