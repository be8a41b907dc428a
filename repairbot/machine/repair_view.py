"""The state machine's inputs: a typed read of one GPURepair (:class:`RepairView`) and the :class:`Facts` around it.

Apart from :mod:`repairbot.machine.decide` because the handler builds these
(from the GPURepair object and what it sees of the node, its pods, the budget and
the breaker) and the safety blockers read them, while neither needs the decision
logic. :meth:`RepairView.from_object` is the operator's parser of the GPURepair's shape; the
request and the agent's answer in it are the contract's (:mod:`repairbot.contract`),
shared with the agent.
Import through :mod:`repairbot.machine.decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from repairbot.contract import AgentAnswer, Exchange, Request
from repairbot.machine.breaker import Breakers, Fault
from repairbot.machine.slurm import SlurmView
from repairbot.model import Action, Finding, GpuRef, Phase, parse_time


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
    received_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    dry_run: bool = False
    requested_action: Action | None = None
    incident: str | None = None
    message: str = ""
    deliveries: Mapping[str, int] = field(default_factory=dict)
    """How many history entries each notifier has delivered (``status.deliveries.<target>.sent``)."""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RepairView:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        exchange = Exchange.from_repair(obj)
        return cls(
            name=obj["metadata"]["name"],
            node=spec.get("nodeName", ""),
            phase=Phase(status.get("phase") or Phase.PENDING.value),
            findings=tuple(Finding.from_dict(item) for item in spec.get("findings") or ()),
            reason=status.get("reason"),
            action=Action(status["action"]) if status.get("action") else None,
            attempt=int(status.get("attempt") or 0),
            request=_strict_times(exchange.request),
            agent=exchange.answer,
            history=tuple(status.get("history") or ()),
            conditions=tuple(status.get("conditions") or ()),
            node_was_cordoned=status.get("nodeWasCordoned"),
            detected_at=optional_time(status.get("detectedAt")),
            received_at=optional_time(status.get("receivedAt")),
            acknowledged_at=optional_time(status.get("acknowledgedAt")),
            resolved_at=optional_time(status.get("resolvedAt")),
            dry_run=bool(spec.get("dryRun")),
            requested_action=Action(spec["requestedAction"]) if spec.get("requestedAction") else None,
            incident=status.get("incident"),
            message=status.get("message") or "",
            deliveries={
                str(target): int(cursor.get("sent") or 0)
                for target, cursor in (status.get("deliveries") or {}).items()
                if isinstance(cursor, Mapping)
            },
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


def optional_time(text: str | None) -> datetime | None:
    """A status timestamp; None when the field is missing or empty."""
    return parse_time(text) if text else None


def _strict_times(request: Request | None) -> Request | None:
    """The operator refuses a request whose times it cannot read (its deadline decides when to climb)."""
    unreadable = [name for name in ("requestedAt", "deadline") if request is not None and name in request.malformed]
    if unreadable:
        raise ValueError(f"status.request.{unreadable[0]} is not an RFC 3339 time")
    return request


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """The node's budget pool: its size and how many *other* nodes of it are out of service now."""

    name: str = "fleet"
    size: int = 0
    out_of_service: int = 0


@dataclass(frozen=True, slots=True)
class GpuRepair:
    """One of the node's earlier repairs, as the per-GPU lemon rule sees it: when, and which GPUs it named."""

    at: datetime
    gpus: tuple[GpuRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Facts:
    """What the handler saw around the repair, gathered just before :func:`decide`.

    ``our_taint`` is the ``repairbot.io/unhealthy`` taint; with ``acknowledged_at``
    it tells a human uncordon (taint kept, node schedulable) from our own work.
    ``finding_present`` None means "cannot tell" and counts as present.
    ``recent_repairs`` are the node's earlier repairs that reached a rung (lemon rule), and
    ``recent_gpu_repairs`` the same repairs with the GPUs their findings named (per-GPU lemon rule);
    ``recent_reboots`` its reboots and power cycles (reboot cap); ``recent_faults``
    the fleet's new repairs (storm breaker), each with its failure domain; ``breakers``
    the stored storm breakers (fleet-wide and per domain); ``active_repairs`` the
    names of every repair still running (None: not known), so the breaker can
    free the canary slot of one that ended or was deleted. ``unmanaged_pods``
    are the draining node's pods that must leave and have no controller.
    ``running_pods`` are the pods the next rung's drain would move, listed while
    the repair is Cordoned (a deferred repair waits until there are none);
    None: not listed, which a deferred repair reads as "still running".
    ``node_findings`` are the findings of the node's other repairs within the
    policy's longest escalation window, so a rule counts repeats that each
    opened (and closed) a repair of their own.
    """

    node_exists: bool = True
    node_deleting: bool = False
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_unschedulable: bool = False
    our_taint: bool = False
    node_ready: bool = True
    boot_id: str = ""
    pods_left: int = 0
    pods_blocked: int = 0
    blocking_pdbs: tuple[str, ...] = ()
    unmanaged_pods: tuple[str, ...] = ()
    pool: PoolUsage = PoolUsage()
    breakers: Breakers = field(default_factory=Breakers)
    active_repairs: frozenset[str] | None = None
    recent_faults: tuple[Fault, ...] = ()
    recent_repairs: tuple[datetime, ...] = ()
    recent_reboots: tuple[datetime, ...] = ()
    finding_present: bool | None = None
    quiet_period_ok: bool | None = None
    resume_requested: bool = False
    recent_gpu_repairs: tuple[GpuRepair, ...] = ()
    running_pods: tuple[str, ...] | None = None
    node_findings: tuple[Finding, ...] = ()
    slurm: SlurmView | None = None
    """The node's Slurm side (a node labelled ``repairbot.io/slurm-node`` with Slurm enabled); None: no Slurm node."""
    resumed_by: str | None = None
    """Who asked for the resume (``repairbot.io/resumed-by``): written into the history when it is taken."""
    cancel_requested_by: str | None = None
    """Who asked to stop the repair (``repairbot.io/cancel-requested-by``): it ends Cancelled, the node cordoned."""
