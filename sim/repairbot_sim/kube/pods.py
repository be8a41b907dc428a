"""Pod lifecycle the emulator owns in place of kubelets and the disruption controller.

* Graceful deletion: a pod annotated ``sim.repairbot.io/termination-seconds: "N"``
  is marked terminating (``deletionTimestamp``) and removed N seconds later,
  the way a kubelet confirms a stop; other pods (and ``gracePeriodSeconds=0``)
  go at once. kubectl drain waits on exactly this.
* ``pods/eviction``: decided by :func:`repairbot_sim.kube.disruption.decide_eviction`
  with live budgets; 429 with the real server's Status when a budget is
  exhausted, 500 when a pod has several budgets.
* PDB status: recomputed after every pod or PDB write, so ``kubectl get pdb``
  and clients reading ``status.disruptionsAllowed`` see current numbers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from repairbot_sim.kube.api import KubeApi, WriteOptions
from repairbot_sim.kube.disruption import budget_status, decide_eviction, matching_budgets, matching_budgets_pods
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.store import WatchEvent, now_rfc3339

__all__ = ["TERMINATION_ANNOTATION", "PodLifecycle"]

TERMINATION_ANNOTATION = "sim.repairbot.io/termination-seconds"
STATUS_SYNC_DELAY = 0.05
"""Seconds between a pod or budget write and the recount of the namespace's budget status."""
_PODS = "/pods"
_PDBS = "policy/poddisruptionbudgets"
_SCALABLE = {"ReplicaSet": "apps/replicasets", "StatefulSet": "apps/statefulsets", "Deployment": "apps/deployments"}

log = logging.getLogger(__name__)


class PodLifecycle:
    """Deletion grace, eviction and PodDisruptionBudget status."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.store = api.store
        self._syncing = False
        self._dirty: set[str] = set()
        self._flush_scheduled = False
        self.store.listeners.append(self._on_write)

    # -------------------------------------------------------------- deletion

    def termination_seconds(self, pod: dict[str, Any], requested: int | None) -> int:
        """Grace to emulate: 0 when forced, unscheduled, or not annotated."""
        if requested == 0 or not pod.get("spec", {}).get("nodeName"):
            return 0
        raw = (pod["metadata"].get("annotations") or {}).get(TERMINATION_ANNOTATION, "0")
        try:
            return max(0, int(float(raw)))
        except ValueError:
            return 0

    def delete_pod(
        self,
        namespace: str,
        name: str,
        options: WriteOptions,
        *,
        grace: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        info = self.api.registry.lookup("", "v1", "pods")
        assert info is not None
        pod = self.api.get(info, namespace, name)
        seconds = self.termination_seconds(pod, grace)
        obj, gone = self.api.delete_object(
            info, namespace, name, options, preconditions=preconditions, grace_seconds=seconds
        )
        if not gone and not options.dry_run and seconds > 0:
            self._finish_later(namespace, name, obj["metadata"]["uid"], seconds)
        return obj, gone

    def _finish_later(self, namespace: str, name: str, uid: str, seconds: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.store.finish_delete(_PODS, namespace, name, uid)
            return
        loop.call_later(seconds, self.store.finish_delete, _PODS, namespace, name, uid)

    # -------------------------------------------------------------- eviction

    def evict(self, namespace: str, name: str, body: Any, options: WriteOptions) -> dict[str, Any]:
        """POST pods/<name>/eviction (policy/v1 or v1beta1 Eviction)."""
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise ApiError.bad_request("the object provided is unrecognized (expected kind Eviction)")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError.bad_request(f"name in URL does not match name in Eviction object ({meta['name']} != {name})")
        pod = self.store.get(_PODS, namespace, name)
        if pod is None:
            raise ApiError.not_found("pods", name)
        info = self.api.registry.lookup("", "v1", "pods")
        assert info is not None
        eviction = {**body, "metadata": {**meta, "name": name, "namespace": namespace}}
        version = str(body.get("apiVersion") or "policy/v1").rpartition("/")[2]
        # Admission sees the Eviction (policy group) as the object of a CREATE on pods/eviction, before any budget.
        self.api.admit(
            "CREATE",
            info,
            eviction,
            None,
            options,
            name=name,
            subresource="eviction",
            kind=("policy", version, "Eviction"),
        )
        budgets = self.store.list(_PDBS, namespace)
        # Only pods some budget selects can matter to the decision: don't copy the namespace's thousands.
        pods = self.store.list(_PODS, namespace, where=lambda other: bool(matching_budgets(other, budgets)))
        decision = decide_eviction(pod, budgets, pods)
        if not decision.allowed:
            if decision.code == 500:
                raise ApiError(500, "InternalError", decision.message)
            details = {"causes": [{"reason": "DisruptionBudget", "message": decision.cause}]}
            raise ApiError(429, "TooManyRequests", decision.message, details)
        delete_options = body.get("deleteOptions") or {}
        grace = delete_options.get("gracePeriodSeconds")
        self.delete_pod(
            namespace,
            name,
            WriteOptions(
                dry_run=options.dry_run or "All" in (delete_options.get("dryRun") or []),
                user=options.user,
                internal=True,
            ),
            grace=grace,
            preconditions=delete_options.get("preconditions"),
        )
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    # ----------------------------------------------------------- PDB status

    def _expected_scale(self, pods: list[dict[str, Any]]) -> int | None:
        """Sum of the owning controllers' replicas, when every pod has a known owner."""
        owners: dict[tuple[str, str], int] = {}
        for pod in pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            key = _SCALABLE.get(ref.get("kind", "")) if ref else None
            owner = self.store.get(key, pod["metadata"].get("namespace"), ref["name"]) if key and ref else None
            if owner is None or not isinstance(owner.get("spec", {}).get("replicas"), int):
                return None
            owners[(key or "", owner["metadata"]["name"])] = owner["spec"]["replicas"]
        return sum(owners.values()) if owners else None

    def sync_budgets(self, namespace: str) -> None:
        pods = self.store.list(_PODS, namespace)
        for pdb in self.store.list(_PDBS, namespace):
            selected = matching_budgets_pods(pdb, pods)
            numbers = budget_status(pdb, pods, expected_scale=self._expected_scale(selected))
            status = dict(pdb.get("status") or {})
            status.update(numbers.as_status(pdb["metadata"].get("generation", 1)))
            status.setdefault("disruptedPods", {})
            condition = {
                "type": "DisruptionAllowed",
                "status": "True" if numbers.disruptions_allowed > 0 else "False",
                "reason": "SufficientPods" if numbers.disruptions_allowed > 0 else "InsufficientPods",
                "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1),
            }
            old_condition = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None
            )
            condition["lastTransitionTime"] = (
                old_condition.get("lastTransitionTime")
                if old_condition and old_condition.get("status") == condition["status"]
                else pdb["metadata"].get("creationTimestamp")
            )
            if old_condition and old_condition.get("status") != condition["status"]:
                condition["lastTransitionTime"] = now_rfc3339()
            status["conditions"] = [condition]
            if status != pdb.get("status"):
                pdb["status"] = status
                self.store.update(_PDBS, pdb, resource="poddisruptionbudgets", group="policy", check_version=False)

    def _on_write(self, event: WatchEvent) -> None:
        if self._syncing or event.key not in (_PODS, _PDBS):
            return
        if event.key == _PDBS and event.old is not None and _without_status(event.old) == _without_status(event.obj):
            return
        namespace = event.obj["metadata"].get("namespace")
        if not namespace or not self.store.list(_PDBS, namespace):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._sync_now(namespace)
            return
        # Like the real disruption controller, status follows writes shortly after, not inside them:
        # seeding a thousand pods then costs one recount per namespace, not one per pod.
        # (Evictions never read this status; they count the pods live.)
        self._dirty.add(namespace)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(STATUS_SYNC_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        for namespace in sorted(dirty):
            self._sync_now(namespace)

    def _sync_now(self, namespace: str) -> None:
        self._syncing = True
        try:
            self.sync_budgets(namespace)
        except Exception:  # a listener must never break the write that triggered it
            log.exception("event=pdb_status_sync_failed namespace=%s", namespace)
        finally:
            self._syncing = False


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}
