"""Hold, renew and expire each repair's Alertmanager silence, and say on the GPURepair how that went.

The plan is :func:`~repairbot.operator.silence_plan.plan_silence`'s (pure);
this keeper carries it out on its own thread, a pass every second (a plan from the
watch cache; Alertmanager is called only when a move is due), so an
Alertmanager outage never slows a repair: a failed call (after the client's
short retries) leaves the plan where it was, writes a ``Silenced`` condition
naming the error (``kubectl describe`` shows it), counts
``repairbot_notification_errors{target="alertmanager"}``, and the next pass
tries again. Nothing is swallowed.

The silence's id goes on ``status.silence`` right after Alertmanager answers,
so a restarted operator renews and expires the same silence rather than
leaking one. A crash between Alertmanager's answer and that write is covered
too: before creating, the keeper looks for a live silence of ours whose
comment names this repair and adopts it. A silence whose ``createdBy`` is not
``repairbot`` is a human's: never renewed, never expired, whatever a status
says. Only this keeper writes ``status.silence``; its conditions write is
fenced on the version it read, like the reconciler's, so neither loses the other's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot import runbooks
from repairbot.bounds import truncate
from repairbot.kube.client import as_object, describe_error
from repairbot.kube.repairs import read_repair
from repairbot.model import GROUP, PLURAL, VERSION, SilenceRecord, format_time
from repairbot.notify import NotifyError
from repairbot.notify.alertmanager import AlertmanagerSilences, Silence
from repairbot.notify.backoff import LaneBackoff
from repairbot.operator.background import BackgroundLoop
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.silence_plan import SilenceMove, SilencePlan, plan_silence, repair_marker
from repairbot.policy import AlertmanagerPolicy

log = logging.getLogger(__name__)

CONDITION_SILENCED = "Silenced"
"""True while the repair holds a silence; False once expired; reason ``AlertmanagerError`` while calls fail."""
REASON_ERROR = "AlertmanagerError"
CONFLICT_RETRIES = 3


@dataclass
class SilenceKeeper:
    api: client.ApiClient
    repairs: Callable[[], list[Mapping[str, Any]]]
    silences: AlertmanagerSilences
    policy: AlertmanagerPolicy
    runbook_base_url: str | None = None
    interval: float = 1.0
    metrics: OperatorMetrics | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    monotonic: Callable[[], float] = time.monotonic
    backoff: LaneBackoff = field(default_factory=lambda: LaneBackoff(base=1.0, cap=60.0))
    _lane: BackgroundLoop | None = None

    def start(self) -> None:
        self._lane = BackgroundLoop("alertmanager-silences", self.keep_all, lambda: self.interval,
                                    failed="silence pass failed; retrying", logger=log)  # fmt: skip
        self._lane.start()

    def stop(self) -> None:
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
        self.silences.close()

    def keep_all(self) -> int:
        """One pass: every repair whose silence needs a move (from the cache) gets it, decided again on a fresh read.

        Returns how many moves went through. A failed one is recorded on its repair, and the keeper backs off
        (exponential, capped at a minute) before Alertmanager is asked again: an outage is not hammered.
        """
        if not self.backoff.ready(self.monotonic()):
            return 0
        moved = 0
        for cached in self.repairs():
            plan = self._plan(cached)
            if plan.move in (SilenceMove.NONE, SilenceMove.KEEP) and not _erring(cached):
                continue
            name = str(cached["metadata"]["name"])
            try:
                moved += self.keep(name)
            except ApiException as error:  # the API server's: the next pass tries again
                log.warning("silence not recorded repair=%s error=%s", name, describe_error(error))
            except NotifyError as error:  # recorded on the repair already
                delay = self.backoff.failed(self.monotonic(), error.retry_after)
                log.warning("alertmanager silences paused for %.1fs error=%s", delay, error)
                return moved
        self.backoff.succeeded()
        return moved

    def keep(self, name: str) -> int:
        """Carry out repair ``name``'s silence plan now; 1 when a move went through, else 0.

        An Alertmanager failure is written on the repair (``Silenced``, reason ``AlertmanagerError``) and raised.
        """
        obj = read_repair(client.CustomObjectsApi(self.api), name)
        if obj is None:
            return 0
        plan = self._plan(obj)
        node = str((obj.get("spec") or {}).get("nodeName", ""))
        try:
            record = self._carry_out(name, plan)
        except NotifyError as error:
            log.warning("alertmanager silence %s failed repair=%s node=%s error=%s", plan.move.value, name, node, error)
            if self.metrics is not None:
                self.metrics.count_notification_error("alertmanager", error)
            live = plan.held is not None and plan.held.expired_at is None
            self._condition(obj, live, REASON_ERROR, f"Alertmanager silence {plan.move.value} failed, retrying: "
                            f"{error}")  # fmt: skip
            raise
        if record is None:
            if _erring(obj) and plan.move is SilenceMove.KEEP:  # the error was a passing one
                self._condition(obj, True, "Held", f"Alertmanager silence {plan.held.id if plan.held else ''} "
                                f"holds node {node}'s repair alerts")  # fmt: skip
            elif _erring(obj):  # nothing to do after all (e.g. the repair ended before a silence was made)
                self._condition(obj, False, "NotNeeded", "no silence is needed for this repair any more")
            return 0
        obj = self._patch(name, {"silence": record.to_dict()})
        if record.expired_at is not None:
            log.info("alertmanager silence expired repair=%s node=%s silence=%s", name, node, record.id)
            self._condition(obj, False, "Expired", f"Alertmanager silence {record.id} for node {node} expired: "
                            "the repair is over")  # fmt: skip
        else:
            log.info("alertmanager silence held repair=%s node=%s silence=%s until=%s", name, node, record.id,
                     format_time(record.ends_at))  # fmt: skip
            self._condition(obj, True, "Held", f"Alertmanager silence {record.id} holds node {node}'s repair "
                            f"alerts until {format_time(record.ends_at)} (renewed while the repair runs)")  # fmt: skip
        return 1

    # --- Alertmanager

    def _carry_out(self, name: str, plan: SilencePlan) -> SilenceRecord | None:
        """The move's Alertmanager calls; the record to write (None: nothing changed)."""
        now = self.clock()
        if plan.move is SilenceMove.EXPIRE:
            assert plan.held is not None
            self._expire_ours(name, plan.held.id)
            return SilenceRecord(plan.held.id, min(plan.held.ends_at, now), expired_at=now)
        if plan.move not in (SilenceMove.CREATE, SilenceMove.RENEW):
            return None
        assert plan.ends_at is not None
        current = self._ours(name, plan.held.id) if plan.held is not None else None
        if current is None:
            current = self._adoptable(name, plan)
        if current is not None:
            renewed = self.silences.renew(current, plan.ends_at)
            if renewed is not None:
                return SilenceRecord(renewed, plan.ends_at)
        created = self.silences.create(plan.matchers, now, plan.ends_at, plan.comment)
        return SilenceRecord(created, plan.ends_at)

    def _ours(self, name: str, silence_id: str) -> Silence | None:
        """The recorded silence when it is RepairBot's and still live; a human's or an expired one is left alone."""
        silence = self.silences.get(silence_id)
        if silence is None or silence.expired:
            return None
        if not silence.ours:
            log.warning("silence %s recorded on repair=%s was created by %r, not RepairBot: left untouched",
                        silence_id, name, silence.created_by)  # fmt: skip
            return None
        return silence

    def _adoptable(self, name: str, plan: SilencePlan) -> Silence | None:
        """A live silence of ours naming this repair, made just before a crash kept its id off the status."""
        marker = repair_marker(name)
        found = [s for s in self.silences.find(plan.matchers) if s.ours and not s.expired and marker in s.comment]
        return max(found, key=lambda s: s.ends_at, default=None)

    def _expire_ours(self, name: str, silence_id: str) -> None:
        if self._ours(name, silence_id) is not None:
            self.silences.expire(silence_id)

    # --- the GPURepair

    def _plan(self, obj: Mapping[str, Any]) -> SilencePlan:
        reason = (obj.get("status") or {}).get("reason")
        runbook = runbooks.runbook_url(self.runbook_base_url, reason) if reason else None
        return plan_silence(obj, self.policy, self.clock(), runbook_url=runbook)

    def _condition(self, obj: Mapping[str, Any], held: bool, reason: str, message: str) -> None:
        """Write the ``Silenced`` condition onto the version read (fenced); a conflict reads again."""
        name = str(obj["metadata"]["name"])
        current: Mapping[str, Any] | None = obj
        for _ in range(CONFLICT_RETRIES):
            if current is None:
                return
            status = current.get("status") or {}
            conditions = [dict(c) for c in status.get("conditions") or ()]
            old = next((c for c in conditions if c.get("type") == CONDITION_SILENCED), None)
            wanted = {"type": CONDITION_SILENCED, "status": "True" if held else "False", "reason": reason,
                      "message": truncate(message)}  # fmt: skip
            if old is not None and all(old.get(k) == v for k, v in wanted.items()):
                return
            changed = old is None or old.get("status") != wanted["status"]
            wanted["lastTransitionTime"] = format_time(self.clock()) if changed else str(old.get("lastTransitionTime")
                                                                                          if old else "")  # fmt: skip
            kept = [c for c in conditions if c.get("type") != CONDITION_SILENCED]
            version = str((current.get("metadata") or {}).get("resourceVersion") or "") or None
            try:
                self._patch(name, {"conditions": [*kept, wanted]}, resource_version=version)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
                current = read_repair(client.CustomObjectsApi(self.api), name)

    def _patch(self, name: str, status: Mapping[str, Any], *, resource_version: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        custom = client.CustomObjectsApi(self.api)
        return as_object(custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body))


def _erring(obj: Mapping[str, Any]) -> bool:
    """Does the repair show a silence error a later pass should clear (or retry)?"""
    return any(c.get("type") == CONDITION_SILENCED and c.get("reason") == REASON_ERROR
               for c in (obj.get("status") or {}).get("conditions") or ())  # fmt: skip
