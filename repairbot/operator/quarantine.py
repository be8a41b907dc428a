"""A quarantine is sticky: it records what the node reports, and ends only when a human releases it.

A Quarantined GPURepair is terminal for the state machine (the reconciler
never steps it again), but it stays the node's *record* until a human
releases it: intake merges every new finding into it instead of opening a
repair that would drain, reboot and uncordon a node handed to hardware.
This module is the operator's side of that record, outside the machine:

* **findings while quarantined** — intake marks each item it merged with its
  count (``evidence.whileQuarantined``); :func:`finding_entries` turns every
  count not yet on record into one ``finding-while-quarantined`` history line,
  which the dispatcher posts to the repair's Slack thread and Jira ticket like
  any other step (as :mod:`repairbot.operator.resolutions` does for resolved
  alerts). Nothing else happens: no cordon change, no action.
* **release** — ``repairbot release NODE`` (annotation
  ``repairbot.io/released-by`` on the GPURepair) or a human removing the node's
  ``repairbot.io/state=quarantined`` label. RepairBot's taint and state label
  come off, the node is uncordoned only if RepairBot cordoned it
  (``nodeWasCordoned`` false; unknown counts as "not ours"), the history says
  who released it, and the condition ``Released=True`` ends the hold (the
  retention collector keeps Quarantined repairs until then; on a Slurm node the
  reconciler's Slurm step then resumes the Slurm drain RepairBot made, never a
  human's — :func:`repairbot.machine.slurm.plan`). Release does not
  validate the node: a human who wants proof runs ``repairbot repair NODE``
  next, which opens a fresh repair.

The order makes a crash safe: "release started" is written before the node
is touched, ``Released=True`` after; a restarted operator repeats only the
idempotent mark removal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from repairbot.contract import is_active
from repairbot.kube.client import retried
from repairbot.kube.intake import is_held_quarantine
from repairbot.kube.marks import read_node_marks, remove_marks
from repairbot.kube.repairs import read_repair, repairs_of_node
from repairbot.logs import step_fields
from repairbot.model import (
    ANNOTATION_RELEASED_BY,
    CONDITION_RELEASED,
    EVIDENCE_WHILE_QUARANTINED,
    GROUP,
    PLURAL,
    VERSION,
    Finding,
    HistoryEntry,
    NodeState,
    format_time,
)

log = logging.getLogger(__name__)

STEP_FINDING_WHILE_QUARANTINED = "finding-while-quarantined"
STEP_RELEASE = "release-quarantine"
OUTCOME_NOTED = "noted"
BY_LABEL = "the repairbot.io/state=quarantined label removed by hand"


def finding_token(finding: Finding) -> str:
    """What one ``finding-while-quarantined`` entry records: the finding and its count (written once)."""
    count = finding.evidence.get(EVIDENCE_WHILE_QUARANTINED, "")
    return f"{finding.code}|{finding.gpu.identity()}|{count}"


def finding_entries(
    node: str, findings: Iterable[Finding], history: Iterable[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """History lines for findings merged into the quarantine that the history does not mention yet (pure)."""
    recorded = {str(e.get("finding", "")) for e in history if e.get("step") == STEP_FINDING_WHILE_QUARANTINED}
    entries = []
    for finding in findings:
        if EVIDENCE_WHILE_QUARANTINED not in finding.evidence:
            continue
        token = finding_token(finding)
        if token in recorded:
            continue
        where = f" on GPU {finding.gpu.identity()}" if finding.gpu.identity() else ""
        message = (
            f"{finding.code}{where} while node {node} is quarantined (seen {finding.count} times): {finding.message}. "
            f"Recorded only: the node stays out of service until a human runs `repairbot release {node}`"
        )
        entry = HistoryEntry(STEP_FINDING_WHILE_QUARANTINED, OUTCOME_NOTED, message, now).to_dict()
        entry["finding"] = token
        entries.append(entry)
        recorded.add(token)
    return entries


def release_reason(repair: Mapping[str, Any], node_state: NodeState | None, node_exists: bool) -> str | None:
    """Who or what releases this held quarantine now, or None to keep holding (pure).

    The CLI's annotation names a person; a state label that is no longer
    ``quarantined`` on an existing node is a human's release by hand. A node
    that is gone is released by nobody: there is nothing to return.
    """
    if not node_exists:
        return None
    by = ((repair.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RELEASED_BY)
    if by:
        return str(by)
    if node_state is not NodeState.QUARANTINED:
        return BY_LABEL
    return None


class QuarantineKeeper:
    """The operator's hold on quarantined nodes: record new findings, carry out releases.

    One worker thread does all of it in order, so two watch events for the
    same repair never write the same history line twice.
    """

    def __init__(self, api: client.ApiClient, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quarantine")
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def poke(self, name: str) -> None:
        """Look at quarantine ``name`` soon (watch events are hints; repeats while queued collapse)."""
        with self._lock:
            if name in self._pending:
                return
            self._pending.add(name)
        self._worker.submit(self._run, name)

    def stop(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _run(self, name: str) -> None:
        with self._lock:
            self._pending.discard(name)
        try:
            self.keep(name)
        except Exception as error:  # the next watch event retries; the hold itself never lapses
            log.warning("quarantine upkeep failed repair=%s error=%s", name, error)

    def keep(self, name: str) -> str | None:
        """One look at quarantine ``name``: record new findings, release it if a human asked. What it did."""
        obj = read_repair(self._custom, name)
        if obj is None or not is_held_quarantine(obj):
            return None
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        status = obj.get("status") or {}
        history = [dict(e) for e in status.get("history") or []]
        findings = [Finding.from_dict(item) for item in (obj.get("spec") or {}).get("findings") or []]
        entries = finding_entries(node, findings, history, self._clock())
        if entries:
            history = [*history, *entries]
            self._patch_status(name, {"history": history})
            log.info("quarantine recorded findings repair=%s node=%s entries=%d", name, node, len(entries),
                     extra=step_fields(node=node, repair=name, phase="Quarantined", entries=len(entries)))
        marks = read_node_marks(self._api, node)
        by = release_reason(obj, marks.state if marks is not None else None, marks is not None)
        if by is None:
            return "recorded" if entries else None
        self._release(obj, node, history, by)
        return "released"

    def _release(self, obj: Mapping[str, Any], node: str, history: list[dict[str, Any]], by: str) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        superseded = self._other_active(node, name)
        ours = status.get("nodeWasCordoned") is False
        uncordon = ours and not superseded
        if superseded:
            message = f"quarantine released by {by}; node {node} left as it is (repair {superseded} now holds it)"
        elif uncordon:
            message = f"quarantine released by {by}; node {node} back in service (taint and label removed, uncordoned)"
        else:
            message = (
                f"quarantine released by {by}; taint and label removed from node {node}, left cordoned "
                "(it was cordoned before RepairBot came, or that is not on record)"
            )
        now = self._clock()
        started = HistoryEntry(STEP_RELEASE, "started", message, now).to_dict()
        if not (history and history[-1].get("step") == STEP_RELEASE and history[-1].get("outcome") == "started"):
            history = [*history, started]
            self._patch_status(name, {"history": history})
        if not superseded:
            remove_marks(self._api, node, uncordon=uncordon)
        done = started | {"outcome": "done", "at": format_time(now)}
        conditions = [dict(c) for c in status.get("conditions") or () if c.get("type") != CONDITION_RELEASED]
        conditions.append({"type": CONDITION_RELEASED, "status": "True", "reason": "ReleasedByHuman",
                           "message": message, "lastTransitionTime": format_time(now)})  # fmt: skip
        self._patch_status(name, {"history": [*history, done], "conditions": conditions, "message": message})
        log.info("quarantine released repair=%s node=%s by=%s uncordoned=%s", name, node, by, uncordon,
                 extra=step_fields(node=node, repair=name, phase="Quarantined", by=by, uncordoned=uncordon))

    def _other_active(self, node: str, name: str) -> str | None:
        """An active repair of the node besides this quarantine (only from before quarantines stuck)."""
        others = [r["metadata"]["name"] for r in repairs_of_node(self._custom, node) if is_active(r)]
        return next((other for other in sorted(others) if other != name), None)

    def _patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        body = {"status": dict(status)}
        retried(lambda: self._custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body))
