"""Drain a node through the Eviction API, one non-blocking pass at a time.

The kopf handler calls :func:`drain_step` every few seconds while a repair is
Draining; each pass lists the node's pods, asks each one to leave the way the
policy's drain rules say, and reports what is left. Nothing here sleeps or
waits for a pod: the state machine owns the clock (drain timeout → Blocked),
and a pass is cheap to repeat, so a restarted operator simply runs the next one.

What leaves and how, as ``kubectl drain`` does it and the policy refines it:

* DaemonSet pods, mirror (static) pods and finished pods (Succeeded/Failed)
  never need to leave: their controller would put them straight back, the
  kubelet owns them, or they hold nothing. Pods without a controller are
  evicted like any other — the node is broken, they cannot stay — where
  ``kubectl drain`` would refuse them without ``--force``: nothing brings
  them back, so each pass names them (``unmanaged``) for the repair's history.
* ``evict``: POST ``pods/<name>/eviction``; the API server checks the
  PodDisruptionBudget. A 429 names the budget that blocks it.
* ``wait``: left alone until it finishes or the rule's ``waitTimeout`` has
  passed since the drain started, then evicted.
* ``force-after``: evicted; once the rule's ``waitTimeout`` has passed, deleted
  directly (PDB bypassed) — only when the policy's ``allowForce`` is on.
  A pod already terminating whose grace period has run out (a dead kubelet
  never confirms the stop) is then deleted with grace 0.
* A pod with a ``deletionTimestamp`` is leaving: it still counts as left
  until the API no longer lists it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import describe_api_error, raw_call, retried, status_body
from repairbot.logs import step_fields
from repairbot.model import GpuRef, parse_time
from repairbot.policy import DrainMode, DrainPolicy, DrainRule

log = logging.getLogger(__name__)

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
GPU_RESOURCE_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-")
"""Extended resources that put a pod on a GPU: whole GPUs and MIG slices."""

TRANSPORT_ERRORS = (OSError, urllib3.exceptions.HTTPError)
"""A request that never got an answer (refused, reset, timed out): reported like an API error."""

_BUDGET_NAME = re.compile(r"disruption budget (\S+?)(?: needs | is |\s*$)")


@dataclass(frozen=True, slots=True)
class DrainProgress:
    """One pass of a drain: what is left, and what this pass did about it.

    Pods are named ``namespace/name``; ``blocked`` maps a pod to the
    ``namespace/name`` of the PodDisruptionBudget that refused its eviction.
    ``leaving`` are pods already terminating. ``errors`` are API failures that
    outlived the retries, in words a human can act on. ``unmanaged`` are the
    pods that must leave and declare no controller (whatever this pass did
    with them): once gone they are gone for good.
    """

    pods_left: int
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    leaving: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.pods_left == 0

    @property
    def blocking_pdbs(self) -> tuple[str, ...]:
        """Each blocking budget once, sorted: what ``Facts.blocking_pdbs`` carries."""
        return tuple(sorted(set(self.blocked.values())))

    def summary(self) -> str:
        """One sentence for history, events and Slack, e.g.
        ``3 pods left: train/llama-worker-002 blocked by PDB train/llama; ml/job waiting to finish``.

        What this pass did (evicted, force-deleted) is named too: a force delete
        must never go unseen.
        """
        parts = [f"{pod} blocked by PDB {pdb}" for pod, pdb in sorted(self.blocked.items())]
        parts += [f"{pod} waiting to finish" for pod in self.waiting]
        parts += [f"{pod} terminating" for pod in self.leaving]
        if self.evicted:
            parts.append(f"evicted {_names(self.evicted)}")
        if self.forced:
            parts.append(f"force-deleted {_names(self.forced)}")
        parts += [f"error: {error}" for error in self.errors]
        if self.unmanaged:
            parts.append(f"not managed by a controller: {_names(self.unmanaged)}")
        noun = "pod" if self.pods_left == 1 else "pods"
        head = "no pods left to drain" if self.done else f"{self.pods_left} {noun} left"
        return f"{head}: {'; '.join(parts)}" if parts else head


class DrainFailed(RuntimeError):
    """A drain pass whose evictions or deletes the API server refused or failed, after their retries.

    Not reported as "pods left": a refusal (RBAC's 403, an admission policy's)
    does not pass with the drain timeout, and a drain that "timed out" would
    send the SRE to look at the pods. Raised instead, so the reconcile fails,
    is retried with backoff, and the API server's own words are recorded on
    the GPURepair (``ReconcileError``); once the cause is fixed the drain goes
    on from where it stood.
    """

    @classmethod
    def of(cls, node: str, progress: DrainProgress) -> DrainFailed | None:
        """The failure of a pass with errors (the first in full, the other pods by name); None without."""
        if not progress.errors:
            return None
        first, *rest = progress.errors
        more = f" (and {len(rest)} more: {_names([e.partition(': ')[0] for e in rest], shown=3)})" if rest else ""
        return cls(f"node {node}: drain stopped: {first}{more}")


def _names(pods: list[str], shown: int = 5) -> str:
    more = len(pods) - shown
    return ", ".join(pods[:shown]) + (f" and {more} more" if more > 0 else "")


# --------------------------------------------------------------------------- pure parts


def pod_key(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def stays_on_node(pod: Mapping[str, Any]) -> bool:
    """DaemonSet, mirror and finished pods never need to leave a drained node."""
    metadata = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return True
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return True
    owners = metadata.get("ownerReferences") or []
    return any(ref.get("kind") == "DaemonSet" and ref.get("controller") for ref in owners)


def has_controller(pod: Mapping[str, Any]) -> bool:
    """Does the pod name a controller (``ownerReferences[].controller``)? kubectl drain's test for "managed"."""
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("controller") is True for ref in owners)


def uses_gpu(pod: Mapping[str, Any]) -> bool:
    """Does any container ask for an NVIDIA GPU or MIG slice (requests or limits)?

    Init containers count too: while one runs it holds its GPU.
    """
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        for amounts in (resources.get("limits") or {}, resources.get("requests") or {}):
            if any(name.startswith(GPU_RESOURCE_PREFIXES) and str(v) not in ("0", "") for name, v in amounts.items()):
                return True
    return False


def must_leave(pod: Mapping[str, Any], only_gpu: GpuRef | None) -> bool:
    """Pods this drain moves. For a GPU reset (``only_gpu``) only GPU pods must go.

    The operator cannot tell which GPU a pod holds (that needs the kubelet's
    pod-resources socket on the node), so a reset of one GPU moves every pod
    that uses any GPU, and pods that use none stay. ``only_gpu`` names the
    GPU for the record; it does not narrow the set further.
    """
    if stays_on_node(pod):
        return False
    return only_gpu is None or uses_gpu(pod)


def pdb_names_from_status(body: str | bytes | None) -> list[str]:
    """Budget names in a 429 eviction Status: ``details.causes[].message`` (real server and emulator)."""
    status = status_body(body)
    texts = [c.get("message") or "" for c in (status.get("details") or {}).get("causes") or [] if isinstance(c, dict)]
    texts.append(str(status.get("message") or ""))
    names = [found.group(1) for text in texts for found in [_BUDGET_NAME.search(text)] if found]
    return list(dict.fromkeys(names))


def mode_for(pod: Mapping[str, Any], rules: DrainPolicy, elapsed: timedelta) -> tuple[DrainMode, bool]:
    """What to do with a pod that must leave now: (evict | wait | force-after, past the rule's timeout?).

    A ``force-after`` rule without ``allowForce`` behaves as ``evict`` (the
    policy loader refuses that combination; this is the belt to its braces).
    """
    metadata = pod.get("metadata") or {}
    rule: DrainRule = rules.rule_for(str(metadata.get("namespace") or ""), metadata.get("labels") or {})
    past = rule.wait_timeout is not None and elapsed >= rule.wait_timeout
    if rule.mode is DrainMode.FORCE_AFTER and not rules.allow_force:
        return DrainMode.EVICT, past
    return rule.mode, past


def grace_ran_out(pod: Mapping[str, Any], now: datetime) -> bool:
    """A terminating pod past ``deletionTimestamp`` + its grace: no kubelet is going to confirm it.

    Real servers set ``deletionTimestamp`` to the deadline already; adding the
    grace once more costs one grace period and is right whatever the server does.
    """
    metadata = pod.get("metadata") or {}
    stamp = metadata.get("deletionTimestamp")
    if not stamp:
        return False
    grace = timedelta(seconds=int(metadata.get("deletionGracePeriodSeconds") or 0))
    return now >= parse_time(str(stamp)) + grace


# --------------------------------------------------------------------------- the pass


def drain_step(
    api: client.ApiClient,
    node: str,
    rules: DrainPolicy,
    *,
    now: datetime,
    started_at: datetime,
    only_gpu: GpuRef | None = None,
) -> DrainProgress:
    """One drain pass over ``node`` under the policy's drain section ``rules``.

    ``started_at`` is when the drain began (the ``start-drain`` history entry):
    ``wait`` and ``force-after`` timeouts count from it. A failure to list the
    node's pods raises (after retries): without the list the pass knows
    nothing, and reporting "0 left" would start a reboot under running pods.
    """
    core = client.CoreV1Api(api)
    pods = _pods_to_move(core, node, only_gpu)
    pass_ = _Pass(core, rules, now, now - started_at)
    for pod in pods:
        pass_.handle(pod)
    left = len(pods)
    if pass_.evicted or pass_.forced or pass_.vanished:
        left = _count_left(core, node, only_gpu, fallback=left)
    progress = DrainProgress(
        pods_left=left,
        evicted=pass_.evicted,
        blocked=pass_.blocked,
        waiting=pass_.waiting,
        forced=pass_.forced,
        leaving=pass_.leaving,
        errors=pass_.errors,
        unmanaged=[pod_key(pod) for pod in pods if not has_controller(pod)],
    )
    log.info("event=drain_step node=%s pods_left=%d summary=%r", node, progress.pods_left, progress.summary(),
             extra=step_fields(node=node, phase="Draining", pods_left=progress.pods_left))
    return progress


def pods_to_move(api: client.ApiClient, node: str, only_gpu: GpuRef | None = None) -> tuple[str, ...]:
    """The pods a drain of ``node`` would move now (``namespace/name``), moving none: what a deferred repair
    waits on (a pending row remap resets once no GPU pod is left, never by evicting one)."""
    return tuple(pod_key(pod) for pod in _pods_to_move(client.CoreV1Api(api), node, only_gpu))


def _list_pods(core: client.CoreV1Api, node: str) -> list[dict[str, Any]]:
    selector = f"spec.nodeName={node}"
    listed = retried(lambda: raw_call(core.list_pod_for_all_namespaces, field_selector=selector), attempts=3)
    return list(listed.get("items") or [])


def _pods_to_move(core: client.CoreV1Api, node: str, only_gpu: GpuRef | None) -> list[dict[str, Any]]:
    return sorted((p for p in _list_pods(core, node) if must_leave(p, only_gpu)), key=pod_key)


def _count_left(core: client.CoreV1Api, node: str, only_gpu: GpuRef | None, *, fallback: int) -> int:
    """Pods still on the node after this pass's evictions; ``fallback`` (all counted) if the list fails."""
    try:
        return len(_pods_to_move(core, node, only_gpu))
    except (ApiException, *TRANSPORT_ERRORS) as error:
        log.warning("event=drain_recount_failed node=%s error=%r", node, error)
        return fallback


@dataclass
class _Pass:
    """The per-pod decisions of one :func:`drain_step`, collecting what happened."""

    core: client.CoreV1Api
    rules: DrainPolicy
    now: datetime
    elapsed: timedelta
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    leaving: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    vanished: bool = False
    """A pod answered 404: it left between the list and our call, so the count must be taken again."""

    def handle(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        mode, past_timeout = mode_for(pod, self.rules, self.elapsed)
        force_now = mode is DrainMode.FORCE_AFTER and past_timeout
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            if force_now and grace_ran_out(pod, self.now):
                self._delete(pod, key, grace=0)
            else:
                self.leaving.append(key)
            return
        if mode is DrainMode.WAIT and not past_timeout:
            self.waiting.append(key)
        elif force_now:
            self._delete(pod, key, grace=self.rules.grace_period_seconds)
        else:
            self._evict(pod, key)

    def _evict(self, pod: dict[str, Any], key: str) -> None:
        namespace, name = key.split("/", 1)
        body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": name, "namespace": namespace}}  # fmt: skip
        if self.rules.grace_period_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": self.rules.grace_period_seconds}

        def evict() -> str | None:
            """None once the eviction is accepted; the blocking budget when a PodDisruptionBudget refuses it."""
            try:
                raw_call(self.core.create_namespaced_pod_eviction, name, namespace, body)
            except ApiException as error:
                if error.status == 429 and _is_budget_refusal(error):
                    return self._blocking_budget(pod, error)
                raise
            return None

        try:
            budget = retried(evict, attempts=3, max_wait=0.5)
        except ApiException as error:
            if error.status == 404:
                self.vanished = True  # already gone: nothing left to do
                return
            self.errors.append(f"{key}: eviction {_failed(error)}: {describe_api_error(error)}")
            return
        except TRANSPORT_ERRORS as error:
            self.errors.append(f"{key}: eviction failed: {error}")
            return
        if budget is not None:
            self.blocked[key] = budget
            return
        self.evicted.append(key)

    def _delete(self, pod: dict[str, Any], key: str, *, grace: int | None) -> None:
        namespace, name = key.split("/", 1)
        uid = (pod.get("metadata") or {}).get("uid")
        options: dict[str, Any] = {"preconditions": {"uid": uid}} if uid else {}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        try:
            retried(lambda: raw_call(self.core.delete_namespaced_pod, name, namespace, body=options),
                    attempts=3, max_wait=0.5)  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                self.vanished = True
                return
            self.errors.append(f"{key}: force delete {_failed(error)}: {describe_api_error(error)}")
            return
        except TRANSPORT_ERRORS as error:
            self.errors.append(f"{key}: force delete failed: {error}")
            return
        log.warning("event=pod_force_deleted pod=%s grace=%s", key, grace)
        self.forced.append(key)

    @staticmethod
    def _blocking_budget(pod: dict[str, Any], error: ApiException) -> str:
        """``namespace/name`` of the budget behind a 429, as the Status names it.

        kube-apiserver's eviction REST names the budget in every DisruptionBudget cause ("The disruption
        budget llama needs 2 healthy pods ...", "... is still being processed by the server"), so no list of
        the namespace's budgets (and no RBAC to read them) is needed to tell the SRE which one it was.
        """
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        names = pdb_names_from_status(error.body)
        return ", ".join(f"{namespace}/{name}" for name in names) if names else f"{namespace}/<unknown>"


def _is_budget_refusal(error: ApiException) -> bool:
    """A PDB said no (as opposed to API throttling, which is worth an immediate retry)."""
    status = status_body(error.body)
    causes = (status.get("details") or {}).get("causes") or []
    if any(isinstance(c, dict) and c.get("reason") == "DisruptionBudget" for c in causes):
        return True
    return "disruption budget" in str(status.get("message") or "")


def _failed(error: ApiException) -> str:
    """"refused" for the API server's no to this identity (401, 403), "failed" for anything else."""
    return "refused" if error.status in (401, 403) else "failed"
