"""What a restarted agent takes back: its node's findings and where the kernel log was read up to.

An agent pod is replaced at every DaemonSet rollout, and its memory goes with
it. What it knew is not lost, because it told intake: the node's active
GPURepair (or, while the node stays quarantined, its quarantine) holds every
finding it reported, each naming its signal, and every kernel-log finding
keeps the (boot id, sequence number) of its record. One read of the node and
one listing of its GPURepairs at start-up — the same selector the executor
watches — are enough to come back knowing what the last agent knew.

A small state file on the host (``--state-dir``, a hostPath) keeps the
kernel-log cursor too, because GPURepairs are garbage-collected after a
retention while the boot's log still holds their Xids: either source alone
would do most of the time; together a line reported once is not reported
again, whatever was deleted since.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from repairbot.contract import is_active
from repairbot.kube.client import raw_call
from repairbot.kube.repairs import repairs_of_node
from repairbot.model import (
    EVIDENCE_KMSG_BOOT,
    EVIDENCE_KMSG_SEQ,
    LABEL_STATE,
    Finding,
    NodeState,
    Phase,
)

log = logging.getLogger(__name__)

Mark = tuple[str, int]
"""(boot id, kernel-log record sequence number): a record already reported to intake."""

_MAX_BOOTS = 4  # the state file keeps the cursor of the last few boots only


@dataclass(frozen=True, slots=True)
class Recovery:
    """The previous agent's findings (of the node's active repairs) and the kernel-log marks it left."""

    findings: tuple[Finding, ...] = ()
    marks: tuple[Mark, ...] = ()


def recovery_from(repairs: Iterable[Mapping[str, Any]], *, quarantined: bool = False) -> Recovery:
    """Pure: findings of the active repairs, and a mark for every kernel-log finding of any repair.

    ``quarantined``: the node still carries the ``quarantined`` state label, so the latest Quarantined repair's
    findings still describe it (quarantine is sticky until a human releases the node): they come back too,
    or every rollout would report a quarantined node's standing faults again as new.
    """
    findings: list[Finding] = []
    marks: list[Mark] = []
    ordered = sorted(repairs, key=lambda r: (r.get("metadata", {}).get("creationTimestamp", ""), _name(r)))
    quarantine = next((r for r in reversed(ordered) if _phase(r) == Phase.QUARANTINED.value), None)
    for repair in ordered:
        items = [Finding.from_dict(item) for item in (repair.get("spec") or {}).get("findings") or ()]
        current = is_active(dict(repair)) or (quarantined and repair is quarantine)
        if current and not repair.get("metadata", {}).get("deletionTimestamp"):
            findings.extend(items)
        marks.extend(mark for mark in map(kmsg_mark, items) if mark is not None)
    return Recovery(tuple(findings), tuple(marks))


def _name(repair: Mapping[str, Any]) -> str:
    return str(repair.get("metadata", {}).get("name", ""))


def _phase(repair: Mapping[str, Any]) -> str:
    return str((repair.get("status") or {}).get("phase") or "")


def kmsg_mark(finding: Finding) -> Mark | None:
    """The kernel-log record a finding came from, if it says."""
    seq, boot = finding.evidence.get(EVIDENCE_KMSG_SEQ), finding.evidence.get(EVIDENCE_KMSG_BOOT)
    if seq is None or boot is None or not seq.isdigit():
        return None
    return boot, int(seq)


def read_recovery(api: client.ApiClient, node: str) -> Recovery:
    """Read this node's state label and list its GPURepairs, once; raises on API errors (the caller retries)."""
    labels = (raw_call(client.CoreV1Api(api).read_node, node).get("metadata") or {}).get("labels") or {}
    repairs = repairs_of_node(client.CustomObjectsApi(api), node)
    quarantined = labels.get(LABEL_STATE) == NodeState.QUARANTINED.value
    return recovery_from(repairs, quarantined=quarantined)


@dataclass
class CursorFile:
    """The kernel-log cursor on the host: ``{"<boot id>": <highest reported sequence>}`` as JSON.

    Written atomically (temporary file, then rename); an unreadable or garbled file is logged and read as
    empty, which costs at most a repeated report, never a lost one.
    """

    path: Path
    _marks: dict[str, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> list[Mark]:
        with self._lock:
            return list(self._load().items())

    def advance(self, marks: Iterable[Mark]) -> bool:
        """Record marks past the saved ones; returns whether the file was written."""
        with self._lock:
            saved = self._load()
            changed = False
            for boot, seq in marks:
                if seq > saved.get(boot, -1):
                    saved.pop(boot, None)  # re-inserted last: the newest boot is the last key
                    saved[boot] = seq
                    changed = True
            if not changed:
                return False
            while len(saved) > _MAX_BOOTS:
                saved.pop(next(iter(saved)))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                scratch = self.path.with_name(self.path.name + ".tmp")
                scratch.write_text(json.dumps(saved), encoding="utf-8")
                os.replace(scratch, self.path)
            except OSError as error:
                log.warning("kmsg cursor not saved path=%s error=%s", self.path, error)
                return False
            return True

    def _load(self) -> dict[str, int]:
        if self._marks is None:
            self._marks = {}
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError) as error:
                log.warning("kmsg cursor unreadable path=%s error=%s; using the repairs' marks", self.path, error)
                data = {}
            if isinstance(data, dict):
                self._marks = {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
        return self._marks
