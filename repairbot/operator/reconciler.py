"""One reconcile of one GPURepair: read, gather facts, decide, record, act, record again.

This is the only place that turns a :class:`~repairbot.machine.decide.Decision`
into I/O, in a fixed order that makes a crash at any point safe:

1. write ``decision.patch`` to the status (the step is on record *before* it runs);
2. change the node (cordon before taint and label; marks off last);
3. run the step's own action (a remediation the operator runs through the BMC, from the
   remediation registry; drains run while gathering facts);
4. write ``decision.after`` (the step is done);
5. post Kubernetes events and count metrics.

A restarted operator reads the same status, makes the same decision and
repeats only idempotent work. Admission (Pending and Blocked repairs) runs
under one lock so two repairs cannot both take the budget's last slot.

Status writes are *fenced*: each carries the ``resourceVersion`` of the
object the decision was made from (the second write, the one the first
returned). Anyone else's write in between — a new leader's step, an intake
merge, the agent's answer — makes ours a 409, and the reconcile starts over
from a fresh read instead of landing a stale decision. A deposed leader's
write therefore fails; a conflict after the step ran is the same as a crash
at that point, which the order above already makes safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.bounds import truncate
from repairbot.catalog.deferral import deferrable_rule
from repairbot.catalog.sxid import default_sxid_catalog
from repairbot.kube.client import as_object, is_retryable, retried
from repairbot.kube.events import EventRecorder
from repairbot.kube.intake import node_record
from repairbot.kube.marks import NodeClaimed, cordon_and_taint, remove_marks, set_state_label, tag_waiting
from repairbot.kube.rate_limit import prepaid
from repairbot.kube.repairs import read_repair
from repairbot.logs import step_fields
from repairbot.machine import Decision, RepairView, Step, catalog_fallback, decide
from repairbot.machine.breaker_flow import ended_phase
from repairbot.machine.slurm import ERROR_RETRY, SlurmView
from repairbot.machine.transitions import AT_ONCE, step_failed
from repairbot.model import (
    ANNOTATION_RESUME,
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    NodeState,
    Phase,
    format_time,
    parse_time,
)
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.facts import FactGatherer
from repairbot.operator.fleet_cache import FleetCache
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.resolutions import resolution_entries
from repairbot.operator.slurm_step import SlurmStep
from repairbot.operator.twins import fold_twin
from repairbot.policy import Policy
from repairbot.remediations.action import BmcContext
from repairbot.remediations.redfish import BmcConnector
from repairbot.remediations.registry import REGISTRY

log = logging.getLogger(__name__)

WARNING_EVENTS = frozenset(
    {"Blocked", "BreakerOpen", "BreakerHalfOpen", "DrainTimedOut", "NextRung", "Quarantined", "LemonNode",
     "LemonGpu", "RebootCap", "LadderExhausted", "HandedOver", "WaitingForHuman", "UnmanagedPods",
     "SlurmJobsRunning", "SlurmJobsRequeued"}
)  # fmt: skip


ADMISSION_STEPS = frozenset({Step.CORDON, Step.BLOCK, Step.QUEUE})
"""Steps whose Event goes on the Node only (see :meth:`Reconciler._record`)."""

RECONCILE_ERROR = "ReconcileError"
"""The condition that says a reconcile keeps failing, and why (True), or that it went through again (False)."""

STALE_RETRIES = 5
"""Fresh reads one reconcile tries after conflicts before it yields to the scheduler (a busy repair, not a bug)."""

ADMISSION_WRITES = 2
"""What an admission sends while it holds its decision: the node patch (cordon, taint, label, claim) and the
status write. Its Event comes after and waits its turn like any request."""


class StaleRepair(Exception):
    """Our status write was fenced off (409): the repair changed since we read it; decide again."""


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    decision: Decision
    requeue_after: timedelta | None


@dataclass
class Reconciler:
    api: client.ApiClient
    policy: Policy
    breakers: BreakerStore
    events: EventRecorder
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    bmc: BmcConnector | None = None
    gatherer: FactGatherer | None = None
    fleet_cache: FleetCache | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    slurm: SlurmStep | None = None
    """The Slurm side (policy ``slurm.enabled``): None when this cluster has no Slurm."""
    _admission: threading.Lock = field(default_factory=threading.Lock)
    _breaker_turn: threading.Lock = field(default_factory=threading.Lock)
    _own_writes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gatherer is None:
            self.gatherer = FactGatherer(self.api, self.policy)
        catalog = self.policy.xid.catalog()  # the packaged catalog with the policy's overrides
        self._fallback = catalog_fallback(catalog, default_sxid_catalog())
        self._deferrable = deferrable_rule(catalog)  # a pending row remap waits for idle GPUs
        if self.gatherer.deferrable is None:
            self.gatherer.deferrable = self._deferrable  # idle GPUs are asked about only where they matter
        self._custom = client.CustomObjectsApi(self.api)

    def reconcile(self, name: str) -> ReconcileResult | None:
        """Take the next step of repair ``name``; None when it is finished or gone."""
        started = time.perf_counter()
        overtaken: set[str] = set()  # versions a decision was overtaken on: never decided from again
        for _ in range(STALE_RETRIES):
            obj = self._read(name, overtaken=overtaken)
            if obj is None:
                self._own_writes.pop(name, None)  # deleted: nothing of ours to recognise any more
                return None
            view = RepairView.from_object(obj)
            if view.phase.is_terminal:
                if self.slurm is not None and self.slurm.pending(obj):
                    return self._slurm_catch_up(obj, view)  # a resume Slurm was down for: tried until it lands
                self._own_writes.pop(name, None)
                return None
            try:
                if view.phase in (Phase.PENDING, Phase.BLOCKED):
                    with self._admission, prepaid(self.api, ADMISSION_WRITES):
                        # The lock and the client's rate limit may have held this thread a while: decide on
                        # the repair as the cache holds it now, with the node patch and status write already
                        # paid, so they follow the decision within round trips and intake's next findings
                        # rarely land between (they would make the fenced status write a 409).
                        if self.fleet_cache is not None:  # (without a cache, obj was just read from the API)
                            now_cached = self._read(name, overtaken=overtaken)
                            if now_cached is None:
                                self._own_writes.pop(name, None)
                                return None
                            obj, view = now_cached, RepairView.from_object(now_cached)
                            if view.phase not in (Phase.PENDING, Phase.BLOCKED):
                                continue  # moved on meanwhile: decided again, outside the lock
                        # The node's repairs as the watch cache has them: free. A cache lagging a create
                        # cannot let both twins in: the cordon's node patch carries this repair's claim,
                        # fenced by the node's resourceVersion (see _mark_node), and the loser folds there.
                        if view.phase is Phase.PENDING and self._fold(obj) is not None:
                            return None  # a second record of a node that has one: its findings went there
                        result, view, now = self._step(obj, view)
                    # The Event and the metrics are told after the lock: admissions are serial (the budget
                    # and the breaker count them), so only the writes the next admission must see are inside.
                else:
                    result, view, now = self._step(obj, view)
                self._record(obj, view, result.decision, now)
            except StaleRepair:
                log.info("repair changed under a decision; deciding again repair=%s", name)
                overtaken.add(_version(obj))
                continue
            except NodeClaimed as claimed:
                if self._fold(obj, holder=claimed.holder) is not None:
                    return None
                log.info("node claimed by repair=%s; deciding again repair=%s", claimed.holder, name)
                overtaken.add(_version(obj))
                continue
            if ended_phase(result.decision) is not None:
                self._own_writes.pop(name, None)  # its last write's echo may wake a worker once more: harmless
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            return result
        # Every fresh read was overtaken: let the scheduler come back rather than spin here.
        return ReconcileResult(Decision(Step.NOTHING, "repair busy; deciding again"), timedelta(seconds=1))

    def _read(self, name: str, *, overtaken: set[str] | frozenset[str] = frozenset()) -> dict[str, Any] | None:
        """The repair from the watch cache (no request), or from the API server when the cache does not hold it.

        A cached copy may be behind; every write decided from it is fenced by its resourceVersion, so a
        stale copy costs a 409, never a stale decision landed. After a 409 (``overtaken`` holds the versions
        decided on in vain) the cache is asked first again: the write that overtook us (intake merging the
        agent's next findings, mostly) has usually reached it through the watch by then, which spares the GET.
        Only when the cache still holds an overtaken version is the API server asked.
        """
        if self.fleet_cache is not None:
            cached = self.fleet_cache.repair(name)
            if cached is not None and _version(cached) not in overtaken:
                return cached
        obj = read_repair(self._custom, name)
        if obj is not None and self.fleet_cache is not None:
            self.fleet_cache.repair_seen(obj)
        return obj

    def _fold(self, obj: Mapping[str, Any], holder: str | None = None) -> str | None:
        """Fold Pending ``obj`` into its node's record; the record's name, or None when it is the record.

        Without ``holder`` the node's repairs come from the watch cache (or one list without a cache);
        with it (the node's claim named another repair) that repair is read from the API server.
        """
        if self.fleet_cache is None:
            return fold_twin(self.api, obj)
        if holder is None:
            node = str((obj.get("spec") or {}).get("nodeName") or "")
            repairs = [r for r in self.fleet_cache.view().repairs if (r.get("spec") or {}).get("nodeName") == node]
            return fold_twin(self.api, obj, repairs=repairs)
        record = read_repair(self._custom, holder)
        return fold_twin(self.api, obj, repairs=[dict(obj), record] if record is not None else [dict(obj)])

    def _step(self, obj: Mapping[str, Any], view: RepairView) -> tuple[ReconcileResult, RepairView, datetime]:
        """Decide and write repair ``obj``'s next step; the result, the view it was decided on, and when.

        The caller records it (Event, log line, metrics) with :meth:`_record`, outside the admission lock.
        """
        now = self.clock()
        assert self.gatherer is not None
        version = _version(obj)
        view, version = self._note_resolved_alerts(view, version)
        facts = self.gatherer.gather(obj, view, self.breakers.get(), now)
        if self.slurm is not None:
            facts = replace(facts, slurm=self.slurm.read(facts.node_labels))
        with self._breaker_turn:  # decide and store as one step: two reconciles never lose a breaker change
            facts = replace(facts, breakers=self.breakers.get())
            decision = decide(view, facts, self.policy, now, fallback=self._fallback, deferrable=self._deferrable)
            if decision.breakers is not None:
                self.breakers.put(decision.breakers)
        self.metrics.breaker_open.set(1 if self.breakers.get().any_open else 0)
        failure: str | None = None
        if _one_write(decision) and not (facts.node_unschedulable and not facts.our_taint):
            # A cordon is idempotent and its node patch fenced: mark the node, then write the step and its
            # outcome at once. A crash between the two repeats the cordon (a no-op) and writes it then.
            # A node someone else had cordoned takes two writes, so that is on record before our taint is.
            self._mark_node(view, decision, obj)
            version = self._patch_status(view.name, {**decision.patch, **decision.after}, version=version)
        else:
            if decision.patch:
                version = self._patch_status(view.name, decision.patch, version=version)
            self._mark_node(view, decision, obj)
            failure = self._act(view, decision)
            after = decision.after if failure is None else step_failed(decision.after, failure, self.clock())
            if after:
                version = self._patch_status(view.name, after, version=version)
        if decision.resume_consumed:
            self._clear_resume(view.name)
        self._clear_recovered_error(view, decision, version)
        requeue = AT_ONCE if failure is not None else decision.requeue_after
        if facts.slurm is not None:
            requeue = self._slurm_side(view, decision, facts.slurm, version, requeue)
        return ReconcileResult(decision, requeue), view, now

    def _slurm_side(self, view: RepairView, decision: Decision | None, slurm: SlurmView, version: str,
                    requeue: timedelta | None) -> timedelta | None:  # fmt: skip
        """After the Kubernetes step: Slurm brought to the phase, its record written; a failure is retried soon.

        Never raises for Slurm's sake: a Slurm error is recorded on the repair
        (``SlurmError``) and the Kubernetes side goes on.
        """
        assert self.slurm is not None
        obj = read_repair(self._custom, view.name)
        if obj is None:
            return requeue
        status = obj.get("status") or {}
        patch = self.slurm.apply(view, decision, slurm, status, self.clock())
        if patch:
            try:
                self._patch_status(view.name, patch, version=_version(obj))
            except StaleRepair:
                return AT_ONCE  # someone wrote meanwhile: the next reconcile plans again from a fresh read
        unreadable = not slurm.readable or bool(patch and (patch.get("slurm") or {}).get("lastError"))
        if unreadable:
            return min(requeue or ERROR_RETRY, ERROR_RETRY)
        return requeue

    def _slurm_catch_up(self, obj: Mapping[str, Any], view: RepairView) -> ReconcileResult | None:
        """A finished repair whose Slurm step has not landed (the controller was down): try it again."""
        assert self.slurm is not None
        labels = self._node_labels(view.node)
        slurm = self.slurm.read(labels) if labels is not None else None
        if slurm is None:
            return None  # the node is gone or no longer a Slurm node: nothing left to resume
        requeue = self._slurm_side(view, None, slurm, _version(obj), None)
        fresh = read_repair(self._custom, view.name)
        if fresh is None or not self.slurm.pending(fresh):
            return None
        return ReconcileResult(Decision(Step.NOTHING, "Slurm step pending"), requeue or ERROR_RETRY)

    def _node_labels(self, node: str) -> dict[str, str] | None:
        try:
            read = client.CoreV1Api(self.api).read_node(node)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict((read.metadata.labels if read.metadata else None) or {})

    def _note_resolved_alerts(self, view: RepairView, version: str) -> tuple[RepairView, str]:
        """Write "alert resolved" lines the webhook's marks call for, before deciding on the same history."""
        if view.phase.is_terminal:
            return view, version
        entries = resolution_entries(view.findings, view.history, attempt=view.attempt or None)
        if not entries:
            return view, version
        history = (*view.history, *entries)
        version = self._patch_status(view.name, {"history": [dict(entry) for entry in history]}, version=version)
        return replace(view, history=history), version

    def record_error(self, name: str, message: str) -> None:
        """A reconcile keeps failing: say so on the GPURepair, where the SRE looks."""
        obj = read_repair(self._custom, name)
        if obj is None:
            return
        conditions = [c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") != RECONCILE_ERROR]
        now = format_time(self.clock())
        conditions.append(
            {"type": RECONCILE_ERROR, "status": "True", "reason": "ApiError", "message": message[:1000],
             "lastTransitionTime": now}
        )  # fmt: skip
        body = {"conditions": conditions, "message": f"retrying after error: {message}"[:1000]}
        try:
            self._patch_status(name, body, version=_version(obj))
        except StaleRepair:
            return  # the repair moved on since the error; the next failure records itself
        self.events.record(self._ref(RepairView.from_object(obj), obj), "Warning", "ReconcileError", message)

    # --- the ordered side effects

    def _patch_status(self, name: str, status: Mapping[str, Any], *, version: str) -> str:
        """Merge ``status`` in, only onto ``version`` of the repair; returns the version written.

        A 409 is never retried: the write was decided on an object that no
        longer exists (:class:`StaleRepair`). Other transient errors are.
        """
        body: dict[str, Any] = {"metadata": {"resourceVersion": version}, "status": dict(status)}
        try:
            written = as_object(
                retried(
                    lambda: self._custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body),
                    retry=_retryable_unless_conflict,
                )
            )
        except ApiException as error:
            if error.status == 409:
                raise StaleRepair(name) from error
            raise
        written_version = _version(written)
        if self.fleet_cache is not None:
            self.fleet_cache.repair_seen(written)  # the next reconcile reads what we wrote, not an older echo
        self._own_writes.pop(name, None)  # re-inserted last: the dict's order is the order of our writes
        self._own_writes[name] = written_version
        while len(self._own_writes) > OWN_WRITES_MAX:  # a repair deleted mid-flight never reconciles again
            del self._own_writes[next(iter(self._own_writes))]
        return written_version

    def wrote_last(self, name: str, resource_version: str) -> bool:
        """Is this version of the repair the one our own last status write produced?

        Its watch event brings nothing new — the worker already decided with
        it in hand and requeued itself — so the handler need not wake it.
        """
        return bool(resource_version) and self._own_writes.get(name) == resource_version

    def _mark_node(self, view: RepairView, decision: Decision, obj: Mapping[str, Any]) -> None:
        reason = view.reason or str(decision.patch.get("reason") or "gpu-fault")
        if decision.cordon:
            cache = self.fleet_cache
            cordon_and_taint(
                self.api, view.node, reason=reason, state=decision.node_state,
                current=cache.node(view.node) if cache is not None else None,
                claim=view.name, may_take=lambda holder: not self._holds(holder, view.node),
                written=cache.node_seen if cache is not None else lambda node_obj: None,
            )  # fmt: skip
            if cache is not None:
                cache.note_unschedulable(view.node, True)
        elif decision.node_state is NodeState.FAULTY:  # a waiting repair: tagged once, from the cached node
            cache = self.fleet_cache
            tag_waiting(
                self.api, view.node, current=cache.node(view.node) if cache is not None else None,
                written=cache.node_seen if cache is not None else lambda node_obj: None,
            )  # fmt: skip
        elif decision.node_state is not None:
            set_state_label(self.api, view.node, decision.node_state)
        if decision.uncordon or decision.remove_marks:
            remove_marks(self.api, view.node, uncordon=decision.uncordon)
            if decision.uncordon and self.fleet_cache is not None:
                self.fleet_cache.note_unschedulable(view.node, False)

    def _holds(self, holder: str, node: str) -> bool:
        """Is repair ``holder`` (named by the node's claim) still the node's record? Read from the API server:
        this runs only when two repairs meet at one node, and the cache may be the very thing that lags."""
        record = read_repair(self._custom, holder)
        if record is None or (record.get("spec") or {}).get("nodeName") != node:
            return False
        return node_record([record]) is not None

    def _act(self, view: RepairView, decision: Decision) -> str | None:
        """Run the step's own action (a remediation the operator runs through the BMC); why it failed, or None.

        Which actions those are, the remediation registry says; a rung the
        agent runs was requested in the status patch and needs nothing here.
        The request is on record before the action runs and is never issued
        twice, so a failure is written at once as the step's outcome
        (:func:`step_failed`): the machine climbs the ladder in its words,
        rather than waiting out the rung and calling it "did not come back".
        """
        if decision.step is not Step.POWER_CYCLE:
            return None
        remediation = REGISTRY.bmc(decision.action)
        if remediation is None:
            message = f"node {view.node}: no remediation runs {decision.action} through the BMC"
        elif self.bmc is None:
            message = (
                f"node {view.node}: {remediation.action} rung reached but this operator has no BMC access configured"
            )
        else:
            outcome = remediation.run(BmcContext(view.node, self.bmc))
            if outcome.ok:
                return None
            message = outcome.message
        log.warning("bmc action failed node=%s repair=%s action=%s message=%s", view.node, view.name,
                    decision.action, message,
                    extra=step_fields(node=view.node, repair=view.name, phase=view.phase.value,
                                      action=str(decision.action), error=message))  # fmt: skip
        self.events.record(self._ref(view), "Warning", "PowerCycleFailed", message)
        return message

    def _clear_recovered_error(self, view: RepairView, decision: Decision, version: str) -> None:
        """A reconcile went through after errors were recorded: the ReconcileError condition turns False.

        Left True, ``kubectl describe`` would go on showing a refusal (say, RBAC's 403 on evictions)
        long after the RBAC was fixed and the repair moved on.
        """
        written = decision.after.get("conditions") or decision.patch.get("conditions")
        conditions = [dict(c) for c in (written if written is not None else view.conditions)]
        stale = next((c for c in conditions if c.get("type") == RECONCILE_ERROR and c.get("status") == "True"), None)
        if stale is None:
            return
        stale |= {"status": "False", "reason": "Recovered", "lastTransitionTime": format_time(self.clock()),
                  "message": truncate(f"recovered; last error: {stale.get('message') or ''}")}  # fmt: skip
        try:
            self._patch_status(view.name, {"conditions": conditions}, version=version)
        except StaleRepair:
            return  # someone wrote meanwhile: the next reconcile clears it

    def _clear_resume(self, name: str) -> None:
        body = {"metadata": {"annotations": {ANNOTATION_RESUME: None}}}
        self._custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, body)

    def _record(self, obj: Mapping[str, Any], view: RepairView, decision: Decision, now: datetime) -> None:
        self.metrics.steps.labels(decision.step.value, decision.event or "").inc()
        if decision.event:
            kind = "Warning" if decision.event in WARNING_EVENTS or decision.step is Step.BLOCK else "Normal"
            # Admission (cordon, cordon-only, queue) is what a storm does to every node at once: one Event,
            # on the Node, where ``kubectl describe node`` shows why it is out of service; ``kubectl describe
            # gpurepair`` shows the same words in the repair's status (message, history, conditions).
            # Every later step is rare and posts on both.
            if decision.step not in ADMISSION_STEPS:
                self.events.record(self._ref(view, obj), kind, decision.event, decision.message)
            self.events.record(self._node_ref(view.node), kind, decision.event, f"{view.name}: {decision.message}")
            phase = (decision.after or {}).get("phase") or decision.patch.get("phase") or view.phase.value
            action = (decision.after or {}).get("action") or decision.action or view.action
            log.info(
                "repair step repair=%s node=%s step=%s event=%s message=%s",
                view.name, view.node, decision.step.value, decision.event, decision.message,
                extra=step_fields(node=view.node, repair=view.name, phase=str(phase),
                                  action=str(action) if action else None, step=decision.step.value,
                                  event=decision.event),
            )  # fmt: skip
        after = decision.after or {}
        new_phase = after.get("phase") or decision.patch.get("phase")
        if new_phase and new_phase != view.phase.value:
            entered = _phase_entered(view)
            if entered is not None:
                self.metrics.phase_seconds.labels(view.phase.value).observe((now - entered).total_seconds())
        received = _received(view, decision)
        if "acknowledgedAt" in after and received is not None:
            self.metrics.mtta.observe(max((now - received).total_seconds(), 0.0))
        terminal = after.get("phase") or (decision.patch.get("phase") if decision.step is Step.CANCEL else None)
        if terminal in {p.value for p in Phase if p.is_terminal}:
            reason = view.reason or str(decision.patch.get("reason") or "unknown")
            self.metrics.repairs.labels(reason, str(terminal)).inc()
            if terminal == Phase.SUCCEEDED.value and received is not None:
                self.metrics.mttr.observe(max((now - received).total_seconds(), 0.0))

    # --- reads and references

    @staticmethod
    def _ref(view: RepairView, obj: Mapping[str, Any] | None = None) -> dict[str, str]:
        uid = (obj or {}).get("metadata", {}).get("uid", "")
        return {"apiVersion": API_VERSION, "kind": KIND, "name": view.name, "uid": uid}

    @staticmethod
    def _node_ref(node: str) -> dict[str, str]:
        return {"apiVersion": "v1", "kind": "Node", "name": node}


OWN_WRITES_MAX = 4096
"""Repairs whose last own write is remembered; far above the active repairs of any fleet."""


def _one_write(decision: Decision) -> bool:
    """A cordon (admission's, or a storm's cordon-only) is written as one status write after the node patch."""
    return decision.cordon and not decision.is_destructive and bool(decision.after) and not (
        decision.uncordon or decision.remove_marks
    )


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _retryable_unless_conflict(error: BaseException) -> bool:
    return is_retryable(error) and not (isinstance(error, ApiException) and error.status == 409)


def _phase_entered(view: RepairView) -> datetime | None:
    """When the repair entered its current phase: its last history entry (or its receipt)."""
    if view.history:
        return parse_time(str(view.history[-1].get("at")))
    return view.received_at


def _received(view: RepairView, decision: Decision) -> datetime | None:
    """Where MTTA and MTTR start: the operator's receive time, not the source's first sight.

    A source's clock can be minutes off (an agent 60 s ahead gives a negative
    MTTA; an alert redelivered 11 minutes late an inflated one), and the
    metric measures what RepairBot controls: how long it took from learning
    of a fault to acting on it. The sources' own times stay on the repair as
    evidence (``detectedAt``, each finding's ``firstSeen``).
    """
    if view.received_at is not None:
        return view.received_at
    written = (decision.patch or {}).get("receivedAt")
    return parse_time(str(written)) if written else view.detected_at
