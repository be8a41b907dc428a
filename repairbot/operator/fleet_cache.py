"""The operator's in-memory view of the fleet, kept current by the watches kopf already runs.

Every reconcile needs fleet-wide facts — how many nodes of the pool are out
of service, which repairs opened lately (storm breaker), this node's past
repairs (lemon rule, reboot cap). Listing a thousand nodes for each of them
made MTTA grow with the fleet (19 s p50 at 1,000 nodes in the first
benchmark); reading this cache keeps it flat.

Two rules keep the cache honest:

* it is primed by one list before the operator acts (a half-filled cache
  would under-count the budget), and an older watch event never overwrites a
  newer object (resourceVersion compared when both are numbers);
* RepairBot's own cordons and uncordons are written through at once, so the
  next admission — serialised behind the same lock — already counts them,
  before the watch event comes back.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Phase
from repairbot.operator.facts import FleetView, read_fleet


def _slim_node(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only what fleet facts and a decision read (:func:`repairbot.kube.marks.node_marks`, the claim).

    Name, uid, labels, RepairBot's own annotations, resourceVersion, deletion, cordon, taints, the Ready
    condition and the boot id: enough to decide and to write a node patch fenced by its resourceVersion,
    a few hundred bytes a node rather than the kubelet's whole status.
    """
    metadata, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k.startswith(OWN_PREFIX)}
    ready = [dict(c) for c in status.get("conditions") or () if c.get("type") == "Ready"]
    slim: dict[str, Any] = {
        "metadata": {
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
            "labels": dict(metadata.get("labels") or {}),
            "annotations": annotations,
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "spec": {"unschedulable": bool(spec.get("unschedulable")),
                 "taints": [dict(t) for t in spec.get("taints") or ()]},
        "status": {"conditions": ready, "nodeInfo": {"bootID": (status.get("nodeInfo") or {}).get("bootID")}},
    }
    if metadata.get("deletionTimestamp"):
        slim["metadata"]["deletionTimestamp"] = metadata["deletionTimestamp"]
    return slim


OWN_PREFIX = "repairbot.io/"
"""Node annotations the cache keeps: RepairBot's own (the claim), never anyone else's."""


TERMINAL_PHASES = frozenset(p.value for p in Phase if p.is_terminal)

_SIGHTING_EVIDENCE = (EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, "pid", "process")


def _slim_findings(findings: Any) -> list[dict[str, Any]]:
    """Only what the escalation rules count of a repair's findings: class, GPU, times, occurrences and the
    evidence that names a job and a kernel-log record (:meth:`repairbot.model.Finding.sightings`)."""
    slim = []
    for item in findings:
        if not isinstance(item, Mapping) or not item.get("code"):
            continue
        kept = {key: item[key] for key in ("code", "gpu", "firstSeen", "lastSeen", "occurrences") if key in item}
        evidence = item.get("evidence") or {}
        kept["evidence"] = {key: evidence[key] for key in _SIGHTING_EVIDENCE if key in evidence}
        slim.append(kept)
    return slim


def _newer(incoming: Mapping[str, Any], known: Mapping[str, Any] | None) -> bool:
    if known is None:
        return True
    new = str((incoming.get("metadata") or {}).get("resourceVersion") or "")
    old = str((known.get("metadata") or {}).get("resourceVersion") or "")
    if new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


class FleetCache:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        self._repairs: dict[str, dict[str, Any]] = {}
        self._bodies: dict[str, dict[str, Any]] = {}  # whole objects of unfinished repairs: what a reconcile reads
        self._lock = threading.Lock()
        self._primed = threading.Event()

    @property
    def primed(self) -> bool:
        return self._primed.is_set()

    def prime(self, api: client.ApiClient) -> None:
        """One list of GPU nodes and GPURepairs; watch events keep it current afterwards."""
        listing = read_fleet(api)
        for node in listing.nodes.values():
            self.node_seen(node)
        for repair in listing.repairs:
            self.repair_seen(repair)
        self._primed.set()

    def node_seen(self, body: Mapping[str, Any]) -> None:
        labels = (body.get("metadata") or {}).get("labels") or {}
        if labels.get("nvidia.com/gpu.present") != "true":
            return
        slim = _slim_node(body)
        name = slim["metadata"]["name"]
        with self._lock:
            if _newer(slim, self._nodes.get(name)):
                self._nodes[name] = slim

    def node_gone(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)

    def node(self, name: str) -> dict[str, Any] | None:
        """The node as last seen (slim, see :func:`_slim_node`), or None when not cached (not a GPU node, gone)."""
        with self._lock:
            known = self._nodes.get(name)
            return copy.deepcopy(known) if known is not None else None

    def note_unschedulable(self, name: str, unschedulable: bool) -> None:
        """Write-through for RepairBot's own cordon or uncordon (the watch event follows later)."""
        with self._lock:
            known = self._nodes.get(name)
            if known is not None:
                known["spec"]["unschedulable"] = unschedulable

    def repair(self, name: str) -> dict[str, Any] | None:
        """The whole repair as last seen, while it is unfinished; None otherwise (the caller reads the API)."""
        with self._lock:
            known = self._bodies.get(name)
            return copy.deepcopy(known) if known is not None else None

    def repair_seen(self, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return
        with self._lock:
            if _newer(body, self._repairs.get(name)):
                phase = str((body.get("status") or {}).get("phase") or "Pending")
                if phase in TERMINAL_PHASES:
                    self._bodies.pop(name, None)
                else:
                    self._bodies[name] = copy.deepcopy(dict(body))
                self._repairs[name] = {
                    "metadata": dict(body.get("metadata") or {}),
                    "spec": {"nodeName": (body.get("spec") or {}).get("nodeName"),
                             "dryRun": bool((body.get("spec") or {}).get("dryRun")),
                             "findings": _slim_findings((body.get("spec") or {}).get("findings") or ())},
                    "status": dict(body.get("status") or {}),
                }

    def repair_gone(self, name: str) -> None:
        with self._lock:
            self._repairs.pop(name, None)
            self._bodies.pop(name, None)

    def view(self) -> FleetView:
        with self._lock:
            return FleetView(dict(self._nodes), tuple(self._repairs.values()))
