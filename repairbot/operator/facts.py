"""Gather the :class:`~repairbot.machine.decide.Facts` a decision needs, from the API server.

One reconcile reads the repair, its node, the node's pool and the fleet's
GPURepairs (for the budget, the storm breaker, the lemon rule and the reboot
cap), and — while the repair drains — runs one non-blocking drain pass,
whose progress is itself a fact. Everything else in the operator is pure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object, raw_call
from repairbot.kube.drain import TRANSPORT_ERRORS, DrainFailed, DrainProgress, drain_step, pods_to_move
from repairbot.kube.marks import node_marks
from repairbot.machine import Facts, GpuRepair, PoolUsage, RepairView
from repairbot.machine.breaker import Breakers, Fault
from repairbot.model import (
    ANNOTATION_CANCEL_REQUESTED_BY,
    ANNOTATION_RESUME,
    ANNOTATION_RESUMED_BY,
    GROUP,
    LABEL_DISABLED,
    PLURAL,
    VERSION,
    Action,
    Finding,
    GpuRef,
    Phase,
    SignalKind,
    Source,
    parse_time,
)
from repairbot.policy import Policy, longest_window
from repairbot.remediations.validation import QuietPeriodCheck

log = logging.getLogger(__name__)

GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"
REBOOT_ACTIONS = (Action.REBOOT.value, Action.POWER_CYCLE.value)


@dataclass(frozen=True, slots=True)
class FleetView:
    """One listing of the GPU nodes and GPURepairs, shared by every fact that needs the fleet."""

    nodes: Mapping[str, Mapping[str, Any]]
    repairs: tuple[Mapping[str, Any], ...]


def read_fleet(api: client.ApiClient) -> FleetView:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    nodes = raw_call(core.list_node, label_selector=GPU_NODE_SELECTOR).get("items") or []
    repairs = as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)).get("items") or []
    return FleetView({n["metadata"]["name"]: n for n in nodes}, tuple(repairs))


def pool_usage(node: Mapping[str, Any], fleet: FleetView, policy: Policy) -> PoolUsage:
    """The node's pool (by ``budget.poolLabel``, else all GPU nodes) and how many *others* are out of service."""
    label = policy.budget.pool_label
    labels = node.get("metadata", {}).get("labels") or {}
    pool = labels.get(label) if label else None
    members = [
        n for n in fleet.nodes.values()
        if not label or (n["metadata"].get("labels") or {}).get(label) == pool
    ]  # fmt: skip
    name = node["metadata"]["name"]
    out = sum(1 for n in members if n["metadata"]["name"] != name and (n.get("spec") or {}).get("unschedulable"))
    return PoolUsage(name=pool or "gpu-nodes", size=max(len(members), 1), out_of_service=out)


NOT_A_FAULT = frozenset({"OptedOut", "NoAction", "DryRun"})
"""Why a repair ended without being one: the node opted out, the finding needs nothing, or nothing was touched."""


def counts_as_fault(repair: Mapping[str, Any], node: Mapping[str, Any], policy: Policy) -> bool:
    """Does this repair count toward the storm breaker?

    A dry run (policy or repair), a repair of a node that opted out and one the
    catalog says needs no action are no faults RepairBot acts on: counting them
    would let a rehearsal, or nodes RepairBot must leave alone, block the
    fleet's real repairs.
    """
    if policy.dry_run or (repair.get("spec") or {}).get("dryRun"):
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    if str(labels.get(LABEL_DISABLED, "")).lower() == "true":
        return False
    for condition in (repair.get("status") or {}).get("conditions") or ():
        if condition.get("type") == Phase.CANCELLED.value and condition.get("reason") in NOT_A_FAULT:
            return False
    return True


def fleet_faults(fleet: FleetView, policy: Policy, now: datetime) -> tuple[Fault, ...]:
    """Every repair opened within the breaker's widest window that counts as a fault, with its failure domain."""
    horizon = now - max(policy.breaker.window, policy.breaker.domain_window)
    faults = []
    for repair in fleet.repairs:
        at = _opened_at(repair)
        if at is None or at < horizon:
            continue
        name = repair.get("spec", {}).get("nodeName", "")
        node = fleet.nodes.get(name, {})
        if not counts_as_fault(repair, node, policy):
            continue
        labels = (node.get("metadata") or {}).get("labels") or {}
        faults.append(Fault(name, at, labels.get(policy.breaker.failure_domain_label)))
    return tuple(faults)


def active_repairs(fleet: FleetView) -> frozenset[str]:
    """The names of every repair still running (the breaker frees the canary slots of the others)."""
    return frozenset(
        repair["metadata"]["name"]
        for repair in fleet.repairs
        if not Phase((repair.get("status") or {}).get("phase") or Phase.PENDING.value).is_terminal
    )


def earlier_repairs(fleet: FleetView, view: RepairView, policy: Policy, now: datetime) -> tuple[datetime, ...]:
    """This node's other repairs that reached a rung within the lemon window."""
    times = []
    for repair in _of_node(fleet.repairs, view.node):
        if repair["metadata"]["name"] == view.name or int((repair.get("status") or {}).get("attempt") or 0) < 1:
            continue
        at = _opened_at(repair)
        if at is not None and now - at <= policy.lemon.window:
            times.append(at)
    return tuple(sorted(times))


def earlier_gpu_repairs(fleet: FleetView, view: RepairView, policy: Policy, now: datetime) -> tuple[GpuRepair, ...]:
    """The same repairs as :func:`earlier_repairs`, each with the GPUs its findings named (per-GPU lemon rule).

    A GPU's history is read from the node's past GPURepairs rather than kept apart: they already hold
    every finding with its GPU's serial, UUID and address, for as long as retention keeps the lemon window.
    """
    found = []
    for repair in _of_node(fleet.repairs, view.node):
        if repair["metadata"]["name"] == view.name or int((repair.get("status") or {}).get("attempt") or 0) < 1:
            continue
        at = _opened_at(repair)
        if at is None or now - at > policy.lemon.window:
            continue
        gpus = tuple(GpuRef.from_dict(f.get("gpu")) for f in (repair.get("spec") or {}).get("findings") or ())
        found.append(GpuRepair(at, tuple(g for g in gpus if g.serial or g.uuid or g.pci)))
    return tuple(sorted(found, key=lambda r: r.at))


def reboots(fleet: FleetView, node: str, now: datetime) -> tuple[datetime, ...]:
    """When this node was rebooted or power-cycled by RepairBot in the last day (every repair of it)."""
    times = []
    for repair in _of_node(fleet.repairs, node):
        for entry in (repair.get("status") or {}).get("history") or ():
            if entry.get("action") in REBOOT_ACTIONS and entry.get("step") in ("request", "power-cycle"):
                at = parse_time(entry["at"])
                if entry.get("outcome") in ("started", "done") and now - at <= timedelta(days=1):
                    times.append(at)
    return tuple(sorted(set(times)))


def node_findings(fleet: FleetView, view: RepairView, policy: Policy, now: datetime) -> tuple[Finding, ...]:
    """The findings of this node's other repairs opened within the longest escalation window (rules count them).

    An application Xid's repair ends at once (nothing to do), so its repeats live in repairs of their own;
    the escalation rules see them all here. Their occurrences' own times decide what is inside a window.
    """
    horizon = longest_window(policy.escalations)
    if not horizon:
        return ()
    found: list[Finding] = []
    for repair in _of_node(fleet.repairs, view.node):
        at = _opened_at(repair)
        if repair["metadata"]["name"] == view.name or at is None or now - at > horizon:
            continue
        found.extend(Finding.from_dict(item) for item in (repair.get("spec") or {}).get("findings") or ())
    return tuple(found)


def finding_present(obj: Mapping[str, Any], view: RepairView) -> bool | None:
    """False when every finding of the repair has cleared on positive evidence; None ("cannot tell") otherwise.

    Positive evidence is a complete, clean poll of the very signal that raised a finding, after the finding
    was last seen: the agent publishes, per polled signal, since when its every poll has been clean
    (``status.agent.signals``, see ``agent/signals.py``), on this very object, so judging costs no request.
    Both times are the agent's own clock, so no skew between agent and operator can clear a finding.
    An event finding (an Xid from NVML or the kernel log) has no such poll and an alert's or a human's
    finding is not the agent's to clear: those end only by a passed validation or a human. The node's
    ``GPUHealthy`` condition is never read here: a restarted agent may not know yet what the last one knew.
    """
    if not view.findings:
        return None
    clean = (((obj.get("status") or {}).get("agent") or {}).get("signals")) or {}
    for finding in view.findings:
        if finding.source is not Source.AGENT or finding.signal_kind is not SignalKind.POLLED:
            return None
        since = clean.get(finding.signal)
        if not since or parse_time(str(since)) <= (finding.last_seen or finding.first_seen):
            return None
    return False


def _opened_at(repair: Mapping[str, Any]) -> datetime | None:
    """When RepairBot received the repair: never a source's clock (an 11-minute-late alert, an agent 60 s ahead).

    The operator's first write (``receivedAt``), else the API server's
    ``creationTimestamp`` for a repair no reconcile has written yet.
    """
    text = (repair.get("status") or {}).get("receivedAt") or repair.get("metadata", {}).get("creationTimestamp")
    return parse_time(text) if text else None


def _of_node(repairs: Iterable[Mapping[str, Any]], node: str) -> list[Mapping[str, Any]]:
    return [r for r in repairs if r.get("spec", {}).get("nodeName") == node]


@dataclass
class FactGatherer:
    """``fleet`` gives the fleet-wide listing; the operator passes its watch-fed cache, tests may not."""

    api: client.ApiClient
    policy: Policy
    quiet_period: QuietPeriodCheck | None = None
    fleet: Callable[[], FleetView] | None = None
    cached_node: Callable[[str], Mapping[str, Any] | None] | None = None
    """The node as the operator's watch cache holds it (no request); None there means "ask the API server"."""
    deferrable: Callable[[str], bool] | None = None
    """Which finding classes may wait for idle GPUs (the policy's catalog); the running pods are listed only for
    a repair whose findings all may, the only one that reads them (:func:`repairbot.machine.deferral.may_wait`).
    None: list them for every Cordoned repair."""

    def read_node(self, name: str) -> Mapping[str, Any] | None:
        if self.cached_node is not None:
            cached = self.cached_node(name)
            if cached is not None:
                return cached
        try:
            return raw_call(client.CoreV1Api(self.api).read_node, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def gather(self, obj: Mapping[str, Any], view: RepairView, breakers: Breakers, now: datetime) -> Facts:
        node = self.read_node(view.node)
        if node is None:
            return Facts(node_exists=False, breakers=breakers)
        marks = node_marks(node)
        fleet = self.fleet() if self.fleet is not None else read_fleet(self.api)
        drained = self._drain(view, now) if view.phase is Phase.DRAINING else None
        annotations = obj.get("metadata", {}).get("annotations") or {}
        return Facts(
            node_exists=True,
            node_deleting=marks.deleting,
            node_labels=marks.labels,
            node_unschedulable=marks.unschedulable,
            our_taint=marks.our_taint,
            node_ready=marks.ready,
            boot_id=marks.boot_id,
            pods_left=drained.pods_left if drained else 0,
            pods_blocked=len(drained.blocked) + len(drained.waiting) if drained else 0,
            blocking_pdbs=tuple(sorted(set(drained.blocked.values()))) if drained else (),
            unmanaged_pods=tuple(drained.unmanaged) if drained else (),
            pool=pool_usage(node, fleet, self.policy),
            breakers=breakers,
            active_repairs=active_repairs(fleet),
            recent_faults=fleet_faults(fleet, self.policy, now),
            recent_repairs=earlier_repairs(fleet, view, self.policy, now),
            recent_gpu_repairs=earlier_gpu_repairs(fleet, view, self.policy, now),
            recent_reboots=reboots(fleet, view.node, now),
            finding_present=finding_present(obj, view),
            quiet_period_ok=self._quiet(view, now),
            resume_requested=annotations.get(ANNOTATION_RESUME, "").lower() == "true",
            resumed_by=annotations.get(ANNOTATION_RESUMED_BY) or None,
            cancel_requested_by=annotations.get(ANNOTATION_CANCEL_REQUESTED_BY) or None,
            running_pods=self._running(view) if view.phase is Phase.CORDONED and self._may_defer(view) else None,
            node_findings=node_findings(fleet, view, self.policy, now),
        )

    def _drain(self, view: RepairView, now: datetime) -> DrainProgress:
        """One drain pass; raises :class:`DrainFailed` when the API server refused or failed part of it."""
        entry = view.last_entry("start-drain")
        started = parse_time(str(entry["at"])) if entry else now
        only_gpu = None
        if view.action is Action.GPU_RESET:
            finding = next((f for f in view.findings if f.code == view.reason), None)
            only_gpu = finding.gpu if finding else GpuRef()
        progress = drain_step(self.api, view.node, self.policy.drain, now=now, started_at=started, only_gpu=only_gpu)
        failed = DrainFailed.of(view.node, progress)
        if failed is not None:
            raise failed
        return progress

    def _may_defer(self, view: RepairView) -> bool:
        """Could this repair's findings wait for idle GPUs at all? (Else its running pods are never read.)"""
        if self.deferrable is None:
            return True
        return bool(view.findings) and all(self.deferrable(f.code) for f in view.findings)

    def _running(self, view: RepairView) -> tuple[str, ...] | None:
        """The pods the rung's drain would move (a deferred repair waits for none); None when they cannot be listed.

        Not raised: only a deferred repair reads this, and it reads None as "still running", which evicts nothing.
        """
        only_gpu = GpuRef() if view.action is Action.GPU_RESET else None
        try:
            return pods_to_move(self.api, view.node, only_gpu)
        except (ApiException, *TRANSPORT_ERRORS) as error:
            log.warning("event=running_pods_unknown node=%s error=%r", view.node, error)
            return None

    def _quiet(self, view: RepairView, now: datetime) -> bool | None:
        if view.phase is not Phase.VALIDATING or self.quiet_period is None:
            return None
        return self.quiet_period.check(view.node, self.policy.validation.quiet_period)
