"""The node-local executor: performs the action the operator requested, once.

The operator writes ``status.request`` (id, action, GPU) on the node's
GPURepair; the agent on that node answers under ``status.agent``. The request
id makes it idempotent: the agent records ``running`` with the id *before*
acting, so a restarted agent never repeats a reset or a reboot — it concludes
the request instead (a reboot succeeded when the boot id changed; any other
action interrupted by a restart is reported failed, and the operator decides).
Which actions settle on a new boot, and what each one does, the remediation
registry says (:mod:`repairbot.remediations.registry`); no action is named here.
A reboot whose boot id has not changed yet may still be on its way down — a
DaemonSet rollout can replace the agent between ``systemctl reboot`` and the
power-off — so a new agent waits :data:`REBOOT_GRACE` from the recorded start
before it calls the reboot failed. A validation only looks, so one a restart
interrupted is run again.

:func:`decide` is the pure heart (repair + boot id → step) and is tested
without I/O; :class:`ActionExecutor` wires it to the API and the host.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from repairbot.agent.host import AgentHost
from repairbot.contract import (
    VALIDATE,
    AgentAnswer,
    AgentResult,
    Exchange,
    Request,
    answer_status,
    is_active,
)
from repairbot.kube.client import as_object, retried
from repairbot.logs import step_fields
from repairbot.model import GROUP, LABEL_NODE, PLURAL, VERSION, GpuRef
from repairbot.remediations.action import ActionOutcome, NodeContext
from repairbot.remediations.registry import REGISTRY

log = logging.getLogger(__name__)

# How long a machine may take from ``systemctl reboot`` to power-off (systemd's default stop timeout is 90 s).
REBOOT_GRACE = timedelta(minutes=2)


class StepKind(enum.Enum):
    IDLE = "idle"
    START = "start"
    WAIT = "wait"
    CONCLUDE = "conclude"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    request_id: str = ""
    action: str = ""
    gpu: GpuRef = field(default_factory=GpuRef)
    result: str = ""
    message: str = ""
    diag_level: int = 0
    load_check: bool = False


def decide(
    repair: dict[str, Any], boot_id: str, issued_here: frozenset[str] = frozenset(), now: datetime | None = None
) -> Step:
    """What the executor should do about one GPURepair (pure).

    ``issued_here`` holds request ids this agent process started: an action
    still ``running`` that this process did not start was interrupted by an
    agent restart. ``now`` (this host's clock, the one that wrote ``startedAt``)
    tells a reboot still going down from one that never happened.
    """
    exchange = Exchange.from_repair(repair)
    request = exchange.request
    if request is None or not request.for_agent or not is_active(repair):
        return Step(StepKind.IDLE)
    request_id, action, gpu = request.id, request.action, request.gpu
    answer = exchange.current_answer
    if answer is None:  # none yet, or a stale one about an earlier request: this request is new
        return _start(request)
    if answer.result is not AgentResult.RUNNING:
        return Step(StepKind.IDLE)
    if REGISTRY.settles_on_new_boot(action):
        before = answer.boot_id
        if before and before != boot_id:
            message = f"rebooted: boot id {before} → {boot_id}"
            return Step(StepKind.CONCLUDE, request_id, action, gpu, AgentResult.SUCCEEDED, message)
        if request_id in issued_here or _going_down(answer, now):
            return Step(StepKind.WAIT, request_id, action, gpu)
        message = f"agent restarted but boot id is still {boot_id}"
        return Step(StepKind.CONCLUDE, request_id, action, gpu, AgentResult.FAILED, message)
    if request_id in issued_here:
        return Step(StepKind.WAIT, request_id, action, gpu)
    if action == VALIDATE:
        # Only looks, changes nothing: a validation a restart interrupted is simply run again, so a
        # rollout during a long DCGM diagnostic does not climb the ladder.
        return _start(request)
    message = f"agent restarted during {action}; outcome unknown"
    return Step(StepKind.CONCLUDE, request_id, action, gpu, AgentResult.FAILED, message)


def _start(request: Request) -> Step:
    return Step(
        StepKind.START,
        request.id,
        request.action,
        request.gpu,
        diag_level=request.dcgm_diag_level,
        load_check=request.require_load_check,
    )


def _going_down(answer: AgentAnswer, now: datetime | None) -> bool:
    """A reboot an earlier agent started less than :data:`REBOOT_GRACE` ago may still be shutting the node down."""
    if now is None or answer.started_at is None:
        return False
    return now - answer.started_at < REBOOT_GRACE


Validator = Callable[[int, bool], ActionOutcome]
"""Re-checks the node: the DCGM diagnostic level asked for (0: none), and whether a load check is required."""


@dataclass
class ActionExecutor:
    """Watches this node's GPURepairs and answers action requests."""

    node: str
    api: client.ApiClient
    host: AgentHost
    validate: Validator
    on_repaired: Callable[[], None] = lambda: None
    # The watch ends (and the node's repairs are listed again) this often even when nothing changed: a
    # safety net, not the way requests arrive, so it can be long — each agent costs the API server two
    # requests per resync, and a fleet has thousands of agents.
    resync_seconds: float = 60.0
    _issued: set[str] = field(default_factory=set)
    _listed_version: str | None = None
    # The node's active repairs as last listed (the agent's signal evidence is written to them, see signals.py).
    _active: list[dict[str, Any]] = field(default_factory=list)
    # Every repair of the node as last listed (None: not listed yet): the agent's intake reads from it.
    _listed: list[dict[str, Any]] | None = None
    # Set when the executor may act: after the agent took back its predecessor's findings (see connect_agent).
    gate: threading.Event | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"executor-{self.node}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread:
            self._thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self.join(timeout)

    def reconcile(self) -> int:
        """Act on every request for this node once; returns how many steps were taken."""
        custom = client.CustomObjectsApi(self.api)
        listing = as_object(
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"{LABEL_NODE}={self.node}")
        )
        self._listed_version = (listing.get("metadata") or {}).get("resourceVersion") or None
        self._listed = list(listing.get("items", []))
        self._active = [r for r in self._listed if is_active(r) and not r["metadata"].get("deletionTimestamp")]
        taken = 0
        for repair in listing.get("items", []):
            step = decide(repair, self.host.boot_id(), frozenset(self._issued), datetime.now(UTC))
            if step.kind in (StepKind.START, StepKind.CONCLUDE):
                self._perform(repair["metadata"]["name"], step)
                taken += 1
        return taken

    def listed_repairs(self) -> list[dict[str, Any]] | None:
        """Copies of every repair of the node as of the last listing (no request); None before the first."""
        listed = self._listed
        return deepcopy(listed) if listed is not None else None

    def active_repairs(self) -> list[dict[str, Any]]:
        """The node's active GPURepairs as of the last listing (no request of its own)."""
        return self._active

    def _perform(self, name: str, step: Step) -> None:
        if step.kind is StepKind.CONCLUDE:
            log.info(
                "executor concluded node=%s repair=%s request=%s result=%s",
                self.node,
                name,
                step.request_id,
                step.result,
                extra=step_fields(node=self.node, repair=name, action=str(step.action) if step.action else None,
                                  request=step.request_id, result=str(step.result)),
            )
            self._answer(name, step.request_id, AgentResult(step.result), step.message, finished=True)
            if step.result == AgentResult.SUCCEEDED:
                self.on_repaired()
            return
        boot_id = self.host.boot_id()
        self._issued.add(step.request_id)
        # Record "running" before acting: this write is what makes the action happen at most once.
        self._answer(name, step.request_id, AgentResult.RUNNING, f"{step.action} started", boot_id=boot_id)
        log.info(
            "executor started node=%s repair=%s request=%s action=%s", self.node, name, step.request_id, step.action,
            extra=step_fields(node=self.node, repair=name, action=str(step.action), request=step.request_id),
        )
        outcome = self._run(step)
        if outcome.ok and REGISTRY.settles_on_new_boot(step.action):
            return  # success is judged by the boot id once the node is back
        result = (
            AgentResult.SUCCEEDED if outcome.ok else (AgentResult.REFUSED if outcome.refused else AgentResult.FAILED)
        )
        self._answer(name, step.request_id, result, outcome.message, finished=True, details=outcome.details)
        if outcome.ok and step.action != VALIDATE:
            self.on_repaired()

    def _run(self, step: Step) -> ActionOutcome:
        """The registry's remediation for the request's action, or the validation; never raises."""
        try:
            remediation = REGISTRY.node_local(step.action)
            if remediation is not None:
                return remediation.run(NodeContext(self.host, step.gpu))
            if step.action == VALIDATE:
                return self.validate(step.diag_level, step.load_check)
            return ActionOutcome(False, f"{step.action}: no remediation the agent runs", refused=True)
        except Exception as error:  # reported to the operator, never swallowed
            log.exception("executor action failed node=%s action=%s", self.node, step.action,
                          extra=step_fields(node=self.node, action=str(step.action), request=step.request_id))
            return ActionOutcome(False, f"{step.action} raised {type(error).__name__}: {error}")

    def _answer(
        self,
        name: str,
        request_id: str,
        result: AgentResult,
        message: str,
        *,
        finished: bool = False,
        boot_id: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        answer = answer_status(
            request_id, result, message, datetime.now(UTC), finished=finished, boot_id=boot_id, details=details
        )
        custom, patch = client.CustomObjectsApi(self.api), {"status": {"agent": answer}}
        retried(lambda: custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, patch))

    def _loop(self) -> None:
        while self.gate is not None and not self.gate.is_set():
            if self._stop.wait(0.05):
                return
        while not self._stop.is_set():
            try:
                self.reconcile()
                self._wait_for_change()
            except Exception as error:
                log.warning("executor loop error node=%s error=%s; retrying", self.node, error)
                self._stop.wait(1.0)

    def _wait_for_change(self) -> None:
        """Block until a GPURepair of this node changes, or ``resync_seconds`` pass."""
        custom = client.CustomObjectsApi(self.api)
        watcher = watch.Watch()
        try:
            for _event in watcher.stream(
                custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
                label_selector=f"{LABEL_NODE}={self.node}",
                timeout_seconds=max(1, int(self.resync_seconds)),
                # From the list just read: a request written in between is an event, not a gap.
                resource_version=self._listed_version,
            ):
                if self._stop.is_set() or self.reconcile():
                    break
        except ApiException as error:
            if error.status != 410:
                raise
        finally:
            watcher.stop()
