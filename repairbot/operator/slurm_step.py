"""The Slurm side of each reconcile: read the node in Slurm, then drain, resume or requeue as the machine says.

Runs beside the Kubernetes side, never in its way. Each reconcile reads the
repair's Slurm node (:meth:`SlurmStep.read`, into ``Facts.slurm``) so the
machine can hold a destructive step while jobs run; after the machine's step is
written and done, :meth:`SlurmStep.apply` brings Slurm to what the phase calls
for (:func:`repairbot.machine.slurm.plan`) and writes what it did in
``status.slurm``, the history (where Slack and Jira read it) and a
``SlurmError`` condition when Slurm failed. Because the plan compares the
record with the phase on every reconcile, a drain or resume that failed (the
controller down, a refusal) is tried again on the next one and catches up
when the controller returns — terminal repairs included, which the reconciler
keeps visiting while :func:`repairbot.machine.slurm.is_pending` says so.

A controller that does not answer costs each client call about nine seconds
of its own retrying; after one such failure this step skips Slurm for
:data:`~repairbot.machine.slurm.ERROR_RETRY` and reports the same error, so a
Slurm outage does not slow every reconcile of the fleet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from repairbot.bounds import fold_history, truncate
from repairbot.machine import Decision, RepairView
from repairbot.machine.slurm import (
    CONDITION,
    ERROR_RETRY,
    Command,
    SlurmRecord,
    SlurmView,
    is_pending,
    is_released,
    plan,
)
from repairbot.model import HistoryEntry, Phase, format_time
from repairbot.policy import SlurmPolicy
from repairbot.slurm import SlurmClient, SlurmError, SlurmErrorKind

log = logging.getLogger(__name__)

STEP_ERROR = "slurm"


@dataclass
class SlurmStep:
    """Slurm for the operator: ``policy`` names the clients, ``client`` runs them."""

    policy: SlurmPolicy
    client: SlurmClient | None = None
    monotonic: Any = time.monotonic
    _quiet_until: float = 0.0
    _last_error: SlurmError | None = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = SlurmClient(self.policy.scontrol, self.policy.squeue, self.policy.slurm_conf)

    def slurm_node(self, labels: Mapping[str, str]) -> str | None:
        """The node's name in Slurm (its ``repairbot.io/slurm-node`` label), or None: not a Slurm node."""
        if not self.policy.enabled:
            return None
        return labels.get(self.policy.node_label) or None

    def read(self, labels: Mapping[str, str]) -> SlurmView | None:
        """What Slurm shows of the node now; None for a node that is no Slurm node."""
        name = self.slurm_node(labels)
        if name is None:
            return None
        assert self.client is not None
        if self.monotonic() < self._quiet_until and self._last_error is not None:
            return _unreadable(name, self._last_error)
        try:
            node = self.client.node(name)
        except SlurmError as error:
            self._note(error)
            return _unreadable(name, error)
        return SlurmView(name, node.state, node.reason, node.jobs)

    def apply(self, view: RepairView, decision: Decision | None, slurm: SlurmView | None,
              status: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:  # fmt: skip
        """Bring Slurm to the phase after ``decision``; the status patch that records it (None: nothing to say).

        ``status`` is the repair's status as written by this reconcile so far
        (its history and conditions are extended, never replaced by older ones).
        """
        if slurm is None:
            return None
        assert self.client is not None
        after = {**((decision.patch if decision else None) or {}), **((decision.after if decision else None) or {})}
        phase = Phase(after.get("phase") or view.phase.value)
        acknowledged = (
            view.acknowledged_at is not None or "acknowledgedAt" in after or bool(decision and decision.cordon)
        )
        record = SlurmRecord.from_status(status)
        code = view.reason or str(after.get("reason") or "gpu-fault")
        entries: list[dict[str, Any]] = []
        error: SlurmError | None = None
        snapshot: dict[str, Any] = {"node": slurm.node}
        if slurm.readable:
            snapshot |= {"state": slurm.state, "reason": slurm.reason, "jobs": list(slurm.jobs)}
            released = is_released(status.get("conditions") or ())
            step = plan(phase, acknowledged=acknowledged, record=record, view=slurm, code=code, repair=view.name,
                        released=released)  # fmt: skip
            try:
                self._run(step.command, slurm.node, step.reason)
                if decision is not None and decision.slurm_requeue:
                    self.client.requeue(decision.slurm_requeue)
            except SlurmError as failed:
                self._note(failed)
                error = failed
            else:
                if step.message:
                    entries.append(HistoryEntry(step.step, step.outcome, step.message, now).to_dict())
                    snapshot |= dict(step.record)
                    if step.command is not Command.NONE:
                        snapshot |= self._reread(slurm.node)
        else:
            error = SlurmError(SlurmErrorKind(slurm.error_kind or SlurmErrorKind.FAILED.value), slurm.error)
        return self._patch(status, snapshot, entries, error, now)

    def pending(self, obj: Mapping[str, Any]) -> bool:
        """Does this (terminal) repair still owe Slurm a step (a resume the controller was down for, a release)?"""
        return self.policy.enabled and slurm_step_pending(obj)

    # --- internals

    def _run(self, command: Command, node: str, reason: str) -> None:
        assert self.client is not None
        if command is Command.DRAIN:
            self.client.drain(node, reason)
        elif command is Command.RESUME:
            self.client.resume(node)

    def _reread(self, node: str) -> dict[str, Any]:
        """State and reason after our command, for ``kubectl get -o yaml`` (the next reconcile rereads anyway)."""
        assert self.client is not None
        try:
            shown = self.client.node(node)
        except SlurmError:
            return {}
        return {"state": shown.state, "reason": shown.reason, "jobs": list(shown.jobs)}

    def _note(self, error: SlurmError) -> None:
        log.warning("slurm call failed kind=%s error=%s", error.kind.value, error)
        if error.retryable:
            self._quiet_until = self.monotonic() + ERROR_RETRY.total_seconds()
            self._last_error = error

    def _patch(self, status: Mapping[str, Any], snapshot: dict[str, Any], entries: list[dict[str, Any]],
               error: SlurmError | None, now: datetime) -> dict[str, Any] | None:  # fmt: skip
        history = [dict(entry) for entry in status.get("history") or ()]
        conditions = [dict(c) for c in status.get("conditions") or ()]
        current = next((c for c in conditions if c.get("type") == CONDITION), None)
        if error is not None:
            message = truncate(f"Slurm node {snapshot['node']}: {error}; retried on the next reconcile")
            already = current is not None and current.get("status") == "True" and current.get("message") == message
            if not already:
                entries.append(HistoryEntry(STEP_ERROR, "failed", message, now).to_dict())
                conditions = _set(conditions, "True", error.kind.value, message, now)
            snapshot["lastError"] = message
        elif current is not None and current.get("status") == "True":
            message = truncate(f"Slurm answers again; last error: {current.get('message') or ''}")
            conditions = _set(conditions, "False", "Recovered", message, now)
            entries.append(HistoryEntry(STEP_ERROR, "recovered", message, now).to_dict())
            snapshot["lastError"] = ""
        old = dict(status.get("slurm") or {})
        merged = old | snapshot
        if not entries and merged == old and conditions == list(status.get("conditions") or ()):
            return None
        patch: dict[str, Any] = {"slurm": merged, "conditions": conditions}
        if entries:
            deliveries = {str(k): int((v or {}).get("sent") or 0) for k, v in (status.get("deliveries") or {}).items()}
            fold = fold_history(history, entries, deliveries)
            patch["history"] = fold.history
            if fold.cursors is not None:
                patch["deliveries"] = {target: {"sent": sent} for target, sent in fold.cursors.items()}
        return patch


def _unreadable(node: str, error: SlurmError) -> SlurmView:
    return SlurmView(node, error=str(error), error_kind=error.kind.value)


def _set(
    conditions: list[dict[str, Any]], state: str, reason: str, message: str, now: datetime
) -> list[dict[str, Any]]:
    kept = [c for c in conditions if c.get("type") != CONDITION]
    return [*kept, {"type": CONDITION, "status": state, "reason": reason, "message": message,
                    "lastTransitionTime": format_time(now)}]  # fmt: skip


def slurm_step_pending(obj: Mapping[str, Any]) -> bool:
    """Does a GPURepair (a watch event's body) still owe Slurm a step? Only repairs with a Slurm record can."""
    status = obj.get("status") or {}
    if not status.get("slurm"):
        return False
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    released = is_released(status.get("conditions") or ())
    return is_pending(phase, SlurmRecord.from_status(status), bool(status.get("acknowledgedAt")), released=released)
