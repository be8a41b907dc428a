"""RepairBot's marks on a Node: cordon, the ``repairbot.io/unhealthy`` taint, the state label.

Every write here may be repeated after a crash, so each one reads the node,
computes the wanted shape, and writes only when something differs: a repeat
is a read and nothing else (no watch event that would wake every handler
again). Writes that replace a list carry the node's ``resourceVersion``: node
``spec.taints`` has no merge key, so a strategic merge patch replaces the
whole list, and without the version check a taint another controller added
between our read and our write would be lost. A 409 re-reads and re-applies
through :func:`repairbot.kube.client.retried`.

RepairBot owns exactly three things on a node — its taint (key
``repairbot.io/unhealthy``, effect ``NoSchedule``), its state label, and the
cordon *it* set — and never touches any other taint, label or someone else's
cordon (DESIGN.md "Node marks").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import raw_call, retried
from repairbot.model import LABEL_STATE, TAINT_UNHEALTHY, NodeState

TAINT_EFFECT = "NoSchedule"
ANNOTATION_REPAIR = "repairbot.io/repair"
"""On a Node: the repair that took it out of service last (the fence two twins' admissions meet at)."""
LABEL_VALUE_MAX = 63
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
_LABEL_VALUE_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class MarkResult:
    """What :func:`cordon_and_taint` found before it wrote, and whether it wrote.

    ``was_unschedulable`` without ``had_our_taint`` means someone else had
    cordoned the node: RepairBot must never uncordon it (the machine records
    this once as ``nodeWasCordoned``).
    """

    was_unschedulable: bool
    had_our_taint: bool
    changed: bool

    @property
    def cordoned_by_someone_else(self) -> bool:
        return self.was_unschedulable and not self.had_our_taint


@dataclass(frozen=True, slots=True)
class NodeMarks:
    """The parts of a Node the operator's decisions depend on, read once (pure, see :func:`node_marks`)."""

    name: str
    uid: str = ""
    unschedulable: bool = False
    our_taint: bool = False
    taint_reason: str | None = None
    state_label: str | None = None
    ready: bool = False
    boot_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False

    @property
    def state(self) -> NodeState | None:
        """The state label as a :class:`NodeState`; None when absent or not one of ours."""
        try:
            return NodeState(self.state_label) if self.state_label else None
        except ValueError:
            return None


def node_marks(node_obj: Mapping[str, Any]) -> NodeMarks:
    """Read a Node (the API's JSON, as from :func:`raw_call` or a kopf body) into :class:`NodeMarks`.

    ``ready`` is False unless the Ready condition says "True": a node whose
    kubelet stopped reporting is not back, whatever its last word was.
    """
    metadata = node_obj.get("metadata") or {}
    spec = node_obj.get("spec") or {}
    status = node_obj.get("status") or {}
    labels = dict(metadata.get("labels") or {})
    ours = _our_taint(spec.get("taints") or [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return NodeMarks(
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        unschedulable=bool(spec.get("unschedulable")),
        our_taint=ours is not None,
        taint_reason=(ours.get("value") or "") if ours is not None else None,
        state_label=labels.get(LABEL_STATE),
        ready=ready,
        boot_id=str((status.get("nodeInfo") or {}).get("bootID") or ""),
        labels=labels,
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def taint_value(reason: str) -> str:
    """``reason`` as a valid taint (label) value: ``[A-Za-z0-9_.-]``, alphanumeric at both ends, ≤63 chars.

    A finding code such as ``xid-79`` passes unchanged; free text from a human
    (``repairbot repair gpu-7 --reason "fan noise, see ticket"``) becomes
    ``fan-noise-see-ticket``. Empty or unusable text becomes ``unknown``
    so the taint still says *that* the node is out of service.
    """
    text = _LABEL_VALUE_CHAR.sub("-", reason.strip())
    text = re.sub(r"-{2,}", "-", text)
    text = _trim_ends(text)[:LABEL_VALUE_MAX]
    return _trim_ends(text) or "unknown"


def _trim_ends(text: str) -> str:
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)


def read_node_marks(api: client.ApiClient, node: str) -> NodeMarks | None:
    """The node's marks, or None when the node does not exist (deleted nodes end repairs)."""
    core = client.CoreV1Api(api)

    def read() -> NodeMarks | None:
        try:
            return node_marks(raw_call(core.read_node, node))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    return retried(read)


class NodeClaimed(Exception):
    """Another repair holds the node (``repairbot.io/repair`` names it and it is still the node's record)."""

    def __init__(self, node: str, holder: str) -> None:
        super().__init__(f"node {node} is held by repair {holder}")
        self.node = node
        self.holder = holder


def claim_of(node_obj: Mapping[str, Any]) -> str | None:
    """The repair that last claimed the node (``repairbot.io/repair``), or None."""
    return ((node_obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_REPAIR) or None


def cordon_and_taint(
    api: client.ApiClient,
    node: str,
    *,
    reason: str,
    state: NodeState | None,
    current: Mapping[str, Any] | None = None,
    claim: str | None = None,
    may_take: Callable[[str], bool] = lambda holder: True,
    written: Callable[[dict[str, Any]], None] = lambda node_obj: None,
) -> MarkResult:
    """Take ``node`` out of service: unschedulable, our ``NoSchedule`` taint with ``reason``, state label.

    Idempotent: when everything is already in place nothing is written. A
    changed ``reason`` replaces the value of our taint (there is only ever one).
    ``state`` None leaves the state label as it is.

    ``current`` is the node as a watch cache holds it: the first attempt decides from it and costs no read;
    the patch carries its ``resourceVersion``, so a stale copy gets a 409 and the retry reads the API.
    ``claim`` names the repair taking the node (annotation ``repairbot.io/repair``, in the same patch):
    when the node names another repair, ``may_take(holder)`` says whether that one still holds it; if it
    does, :class:`NodeClaimed` is raised and nothing is written. Two twins cordoning at once therefore
    cannot both win: the second one's patch is fenced off, and its retry sees the first one's claim.
    ``written`` receives the node as the API server returned it (for the caller's cache).
    """
    core = client.CoreV1Api(api)
    wanted_taint = {"key": TAINT_UNHEALTHY, "value": taint_value(reason), "effect": TAINT_EFFECT}
    node_now = _cached_first(core, node, current)

    def mark() -> MarkResult:
        now = node_now()
        metadata, spec = now.get("metadata") or {}, now.get("spec") or {}
        holder = claim_of(now)
        if claim is not None and holder is not None and holder != claim and may_take(holder):
            holder = None  # the last claimant is finished or gone: this repair takes the node over
        if claim is not None and holder is not None and holder != claim:
            raise NodeClaimed(node, holder)
        taints = list(spec.get("taints") or [])
        before = node_marks(now)
        new_taints = [*_without_our_taint(taints), wanted_taint]
        taint_ok = _our_taint(taints) == wanted_taint
        label_ok = state is None or before.state_label == state.value
        claim_ok = claim is None or claim_of(now) == claim
        if before.unschedulable and taint_ok and label_ok and claim_ok:
            return MarkResult(before.unschedulable, before.our_taint, changed=False)
        patch: dict[str, Any] = {
            "metadata": {"resourceVersion": metadata.get("resourceVersion")},
            "spec": {"unschedulable": True, "taints": taints if taint_ok else new_taints},
        }
        if state is not None:
            patch["metadata"]["labels"] = {LABEL_STATE: state.value}
        if claim is not None:
            patch["metadata"]["annotations"] = {ANNOTATION_REPAIR: claim}
        written(raw_call(core.patch_node, node, patch, _content_type=STRATEGIC_MERGE))
        return MarkResult(before.unschedulable, before.our_taint, changed=True)

    return retried(mark)


def _cached_first(core: client.CoreV1Api, node: str, current: Mapping[str, Any] | None) -> Callable[[], Any]:
    """The node for each attempt of a fenced write: ``current`` (a watch cache's copy, no request) the first
    time, then from the API server (a 409 said the copy was stale)."""
    handed = [current] if current is not None else []
    return lambda: handed.pop() if handed else raw_call(core.read_node, node)


def set_state_label(api: client.ApiClient, node: str, state: NodeState | None) -> bool:
    """Set (or with None remove) ``repairbot.io/state``; returns whether the node changed.

    Labels merge key by key, so no version check is needed: only our key is sent.
    """
    return _merge_metadata_key(api, node, "labels", LABEL_STATE, state.value if state is not None else None)


HELD_STATES = frozenset({NodeState.FAULTY, NodeState.REPAIRING, NodeState.QUARANTINED})
"""A node in one of these states is already RepairBot's: a waiting repair's tag never moves it back to faulty."""


def tag_waiting(
    api: client.ApiClient,
    node: str,
    *,
    current: Mapping[str, Any] | None = None,
    written: Callable[[dict[str, Any]], None] = lambda node_obj: None,
) -> bool:
    """``repairbot.io/state=faulty`` on the node of a repair that waits (queued, blocked before its cordon).

    Nothing is written when the node already carries one of :data:`HELD_STATES`, so a repair deciding
    again every 30 s costs no request. ``current`` is the node as a watch cache holds it: the first attempt
    decides from it and costs no read. The patch carries the node's resourceVersion: if the label moved
    meanwhile (the repair's cordon wrote ``repairing``), the 409 re-reads and nothing goes back to faulty.
    ``written`` receives the node as the API server returned it (for the caller's cache). Returns whether
    the node changed.
    """
    core = client.CoreV1Api(api)
    node_now = _cached_first(core, node, current)

    def tag() -> bool:
        now = node_now()
        metadata = now.get("metadata") or {}
        if node_marks(now).state in HELD_STATES:
            return False
        patch = {"metadata": {"resourceVersion": metadata.get("resourceVersion"),
                              "labels": {LABEL_STATE: NodeState.FAULTY.value}}}  # fmt: skip
        written(raw_call(core.patch_node, node, patch, _content_type=STRATEGIC_MERGE))
        return True

    return retried(tag)


def remove_marks(api: client.ApiClient, node: str, *, uncordon: bool) -> bool:
    """Our taint and state label off; ``spec.unschedulable`` cleared only when ``uncordon``.

    The caller decides ``uncordon`` from the repair's record of whether the node
    was cordoned before RepairBot came; this function never guesses. Returns
    whether the node changed.
    """
    core = client.CoreV1Api(api)

    def unmark() -> bool:
        current = raw_call(core.read_node, node)
        metadata, spec = current.get("metadata") or {}, current.get("spec") or {}
        taints = list(spec.get("taints") or [])
        before = node_marks(current)
        cordon_to_lift = uncordon and before.unschedulable
        if not before.our_taint and before.state_label is None and not cordon_to_lift:
            return False
        patch: dict[str, Any] = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}}
        if before.state_label is not None:
            patch["metadata"]["labels"] = {LABEL_STATE: None}
        spec_patch: dict[str, Any] = {}
        if before.our_taint:
            spec_patch["taints"] = _without_our_taint(taints)
        if cordon_to_lift:
            spec_patch["unschedulable"] = False
        if spec_patch:
            patch["spec"] = spec_patch
        raw_call(core.patch_node, node, patch, _content_type=STRATEGIC_MERGE)
        return True

    return retried(unmark)


def annotate(api: client.ApiClient, node: str, key: str, value: str | None) -> bool:
    """Set (or with None remove) one node annotation; returns whether the node changed."""
    return _merge_metadata_key(api, node, "annotations", key, value)


def _merge_metadata_key(api: client.ApiClient, node: str, section: str, key: str, value: str | None) -> bool:
    """Set (None: remove) ``metadata.<section>[key]`` unless it already holds ``value``; returns whether it changed.

    The patch names only ``key``, and the map merges key by key, so no version
    check is needed; a conflict or hiccup re-reads before writing again.
    """
    core = client.CoreV1Api(api)

    def merge() -> bool:
        current = (raw_call(core.read_node, node).get("metadata") or {}).get(section) or {}
        if current.get(key) == value:
            return False
        raw_call(core.patch_node, node, {"metadata": {section: {key: value}}}, _content_type=STRATEGIC_MERGE)
        return True

    return retried(merge)


def _our_taint(taints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Our taint as stored (normalised to key/value/effect), or None."""
    for taint in taints:
        if taint.get("key") == TAINT_UNHEALTHY and taint.get("effect") == TAINT_EFFECT:
            return {"key": TAINT_UNHEALTHY, "value": taint.get("value") or "", "effect": TAINT_EFFECT}
    return None


def _without_our_taint(taints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in taints if not (t.get("key") == TAINT_UNHEALTHY and t.get("effect") == TAINT_EFFECT)]
