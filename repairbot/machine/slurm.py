"""Slurm's part of a repair, decided purely: what Slurm should show for this phase, and whether jobs hold a rung.

On a node that is also a Slurm node a Kubernetes cordon stops nothing: Slurm
keeps scheduling onto the faulty GPUs, and a reboot kills the Slurm jobs
there. So (DESIGN.md, "Node marks") the node is drained in Slurm with the
cordon and resumed with the uncordon, and a destructive step waits until the
node shows no running job. A Slurm drain RepairBot did not make is never
resumed by it.

Two pure answers live here, read by the operator's Slurm step and the machine:

- :func:`plan` — from the repair's phase, its Slurm record
  (``status.slurm``, :class:`SlurmRecord`) and what Slurm shows now
  (:class:`SlurmView`): drain, resume, re-reason for quarantine, or nothing.
  Slurm errors never block the Kubernetes side: the plan is retried on the
  next reconcile, so the Slurm side catches up when the controller returns.
- :func:`repairbot.machine.slurm_jobs.wait_for_jobs` — before the rung's action: wait while jobs run, then
  hold the repair for a human or requeue the jobs (the policy says which);
  never a cancel.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from repairbot.model import CONDITION_RELEASED, Phase

REASON_PREFIX = "repairbot:"
"""Every Slurm reason RepairBot writes starts so; a drain whose reason does not is someone else's."""
CONDITION = "SlurmError"
"""The GPURepair condition that says the Slurm side of the repair is failing (True), or caught up (False)."""
ERROR_RETRY = timedelta(seconds=30)
"""How soon a failed Slurm step is tried again: each try against a down controller costs its client ~9 s."""

_DOWN_STATES = ("DOWN", "FAIL", "FUTURE")


@dataclass(frozen=True, slots=True)
class SlurmView:
    """What Slurm shows of the repair's node now (the operator reads it each reconcile); ``error``: unreadable."""

    node: str
    state: str = ""
    reason: str = ""
    jobs: tuple[str, ...] = ()
    error: str = ""
    error_kind: str = ""

    @property
    def readable(self) -> bool:
        return not self.error

    @property
    def out_of_service(self) -> bool:
        """Drained, draining or down in Slurm: no new job would start there."""
        words = set(self.state.replace("*", "").split("+"))
        return "DRAIN" in words or bool(words & set(_DOWN_STATES))

    @property
    def ours(self) -> bool:
        return self.reason.startswith(REASON_PREFIX)


@dataclass(frozen=True, slots=True)
class SlurmRecord:
    """``status.slurm``: whose drain it is, and what RepairBot did (so a restarted operator repeats nothing)."""

    node: str = ""
    drained_by_repairbot: bool | None = None
    """None: not yet decided (no drain attempted); False: drained or down before RepairBot came."""
    resumed: bool = False
    quarantined: bool = False

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> SlurmRecord:
        raw = status.get("slurm") or {}
        return cls(
            node=str(raw.get("node") or ""),
            drained_by_repairbot=raw.get("drainedByRepairBot"),
            resumed=bool(raw.get("resumed")),
            quarantined=bool(raw.get("quarantined")),
        )


class Command(enum.StrEnum):
    NONE = "none"
    DRAIN = "drain"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class Plan:
    """The Slurm command to run (with its reason), the record to write and the history line to say it in."""

    command: Command = Command.NONE
    reason: str = ""
    record: Mapping[str, Any] = field(default_factory=dict)
    step: str = ""
    outcome: str = "done"
    message: str = ""


def drain_reason(code: str, repair: str, *, quarantined: bool = False) -> str:
    """``repairbot: xid-79 (gpurepair gpu-node-001-20261202…)``: who, why and where to look."""
    what = f"quarantined for {code}" if quarantined else code
    return f"{REASON_PREFIX} {what} (gpurepair {repair})"


def is_released(conditions: Iterable[Mapping[str, Any]]) -> bool:
    """Has a human released this quarantine (condition ``Released=True``)? Its node is back in service."""
    return any(c.get("type") == CONDITION_RELEASED and c.get("status") == "True" for c in conditions)


def is_pending(phase: Phase, record: SlurmRecord, acknowledged: bool, *, released: bool = False) -> bool:
    """Is Slurm still owed a step for this (terminal) repair: a resume or a quarantine reason not yet written?"""
    if not record.node:
        return False
    if phase in (Phase.SUCCEEDED, Phase.CANCELLED) or (phase is Phase.QUARANTINED and released):
        return bool(record.drained_by_repairbot) and not record.resumed
    if phase is Phase.QUARANTINED:
        return record.drained_by_repairbot is None or (bool(record.drained_by_repairbot) and not record.quarantined)
    return acknowledged and record.drained_by_repairbot is None


def plan(
    phase: Phase, *, acknowledged: bool, record: SlurmRecord, view: SlurmView, code: str, repair: str,
    released: bool = False,
) -> Plan:  # fmt: skip
    """What Slurm should see of a repair in ``phase`` (the phase after this reconcile's step).

    Out of service (cordoned, draining, repairing, a storm's cordon-only) →
    drained; Succeeded or Cancelled → resumed if RepairBot drained it;
    Quarantined → left drained with the quarantine named in its reason until
    a human releases it (``released``), then resumed as a finished repair is:
    the release returns the node to Kubernetes, and a node still drained in
    Slurm would take no job. The first drain records whether someone else had
    drained (or downed) the node before: such a node is never resumed, and its
    reason is never rewritten.
    """
    base = {"node": view.node}
    releasing = phase is Phase.QUARANTINED and released
    if phase in (Phase.SUCCEEDED, Phase.CANCELLED) or releasing:
        if not record.drained_by_repairbot or record.resumed:
            return Plan()
        message = f"resumed Slurm node {view.node}" + (": quarantine released" if releasing else "")
        return Plan(Command.RESUME, "", base | {"resumed": True}, "slurm-resume", "done", message)
    quarantined = phase is Phase.QUARANTINED
    if not (acknowledged or quarantined):
        return Plan()
    reason = drain_reason(code, repair, quarantined=quarantined)
    if record.drained_by_repairbot is None:
        if view.out_of_service and not view.ours:
            message = (
                f"Slurm node {view.node} was already {view.state} by someone else "
                f"({view.reason or 'no reason'}); RepairBot leaves its drain alone and will not resume it"
            )
            return Plan(Command.NONE, "", base | {"drainedByRepairBot": False}, "slurm-drain", "skipped", message)
        message = f"drained Slurm node {view.node}: {reason}"
        record_fields = base | {"drainedByRepairBot": True, "quarantined": quarantined}
        return Plan(Command.DRAIN, reason, record_fields, "slurm-drain", "done", message)
    if quarantined and record.drained_by_repairbot and not record.quarantined:
        message = f"Slurm node {view.node} stays drained: {reason}"
        return Plan(Command.DRAIN, reason, base | {"quarantined": True}, "slurm-drain", "quarantined", message)
    return Plan()
