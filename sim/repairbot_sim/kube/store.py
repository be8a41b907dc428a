"""The object store: what etcd plus the generic registry do for a real server.

* One cluster-wide, monotonically increasing ``resourceVersion`` (decimal
  strings, as clients must treat them opaquely but etcd's are integers).
* ``uid``, ``creationTimestamp`` and ``generation`` (bumped only when
  something outside ``metadata`` and ``status`` changes) are server-owned.
* Deleting an object with finalizers only sets ``deletionTimestamp``; the
  object goes when an update empties its finalizers — kopf depends on this.
* A bounded history of watch events lets a watcher resume from any recent
  ``resourceVersion``; older ones are *compacted* and answer 410 Gone, which
  is the path that makes informers and kopf re-list.
* etcd's request limit (``--max-request-bytes``, 1.5 MiB by default): a
  create or update whose stored object is larger is refused as etcd refuses
  it, and nothing is stored.
* Watchers get events through asyncio queues, fed synchronously on every
  write, so a watch opened at version N sees every later change exactly once.

Stored objects are never mutated in place (each write stores a fresh dict), so
watch events may share them; callers that want to change an object get a
deep copy from :meth:`Store.get`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repairbot_sim.kube.errors import ApiError

__all__ = ["Store", "WatchEvent", "Watcher", "now_rfc3339"]

ObjectKey = tuple[str, str]  # (namespace or "", name)

ETCD_MAX_REQUEST_BYTES = 1536 * 1024
"""etcd's default ``--max-request-bytes``: the whole put request, key and value."""
_ETCD_REQUEST_OVERHEAD = 256
"""Bytes of a put request besides its key and value (transaction, lease, revision fields), rounded up."""


def now_rfc3339() -> str:
    """Kubernetes timestamps: UTC, second precision, ``Z`` suffix."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    """One change, as a watch stream reports it."""

    type: str  # ADDED, MODIFIED, DELETED
    key: str  # storage key (group/plural)
    obj: dict[str, Any]
    rv: int
    old: dict[str, Any] | None = None
    """The object before the change (MODIFIED only): lets selector watches send ADDED/DELETED."""


@dataclass(eq=False)
class Watcher:
    """A subscription to one storage key (optionally one namespace)."""

    key: str
    namespace: str | None
    predicate: Callable[[dict[str, Any]], bool] | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)

    def wants(self, event: WatchEvent) -> bool:
        if event.key != self.key:
            return False
        if self.namespace is not None and event.obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(event.obj)


def _ident(obj: dict[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _check_etcd_size(key: str, obj: dict[str, Any]) -> None:
    """Refuse what etcd would refuse: a custom resource is stored as its JSON, under its registry key."""
    meta = obj["metadata"]
    storage_key = f"/registry/{key}/{meta.get('namespace') or ''}/{meta['name']}"
    # As the API server stores it: compact JSON in UTF-8 (not the client's \u escapes).
    size = len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size + len(storage_key) + _ETCD_REQUEST_OVERHEAD > ETCD_MAX_REQUEST_BYTES:
        raise ApiError.etcd_request_too_large()


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """All objects of the emulated cluster, by storage key."""

    def __init__(self, *, history_limit: int = 5000) -> None:
        self._objects: dict[str, dict[ObjectKey, dict[str, Any]]] = {}
        self._rv = 1
        self._history: deque[WatchEvent] = deque(maxlen=history_limit)
        self._compacted_rv = 0
        self._watchers: set[Watcher] = set()
        self.listeners: list[Callable[[WatchEvent], None]] = []
        """Synchronous hooks run after every write (the API layer keeps PDB status fresh)."""

    # ----------------------------------------------------------------- reads

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        """Watches and continues from a version below this answer 410 Gone."""
        return self._compacted_rv

    def get(self, key: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._objects.get(key, {}).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, key: str, namespace: str | None = None, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Objects sorted by (namespace, name), as etcd's key order returns them.

        ``where`` filters before copying: a selector over 3,000 pods copies the
        handful it matches, not all of them (``where`` must not mutate).
        """
        bucket = self._objects.get(key, {})
        # Filter first, sort what matched: a selector over 100,000 pods sorts the handful it keeps.
        matched = [
            ident
            for ident, obj in bucket.items()
            if (namespace is None or ident[0] == namespace) and (where is None or where(obj))
        ]
        return [copy.deepcopy(bucket[ident]) for ident in sorted(matched)]

    # ---------------------------------------------------------------- writes

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, event_type: str, key: str, obj: dict[str, Any], rv: int, old: dict[str, Any] | None = None) -> None:
        event = WatchEvent(event_type, key, obj, rv, old)
        if len(self._history) == self._history.maxlen and self._history:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in list(self._watchers):
            if watcher.wants(event):
                watcher.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(event)

    def create(self, key: str, obj: dict[str, Any], *, resource: str, group: str = "") -> dict[str, Any]:
        """Store a new object; the caller has already resolved ``generateName``."""
        ident = _ident(obj)
        bucket = self._objects.setdefault(key, {})
        if ident in bucket:
            raise ApiError.already_exists(resource, ident[1], group)
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        rv = self._next_rv()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["resourceVersion"] = str(rv)
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        _check_etcd_size(key, stored)
        bucket[ident] = stored
        self._emit("ADDED", key, stored, rv)
        return copy.deepcopy(stored)

    def update(
        self, key: str, obj: dict[str, Any], *, resource: str, group: str = "", check_version: bool = True
    ) -> dict[str, Any]:
        """Replace an object (optimistic concurrency on ``metadata.resourceVersion``).

        A write that changes nothing is not a write: no new version and no
        watch event, as on a real server. An object that is being deleted
        and has no finalizers left is removed.
        """
        ident = _ident(obj)
        bucket = self._objects.get(key, {})
        old = bucket.get(ident)
        if old is None:
            raise ApiError.not_found(resource, ident[1], group)
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        wanted = meta.get("resourceVersion")
        if check_version and wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(resource, ident[1], group)
        old_meta = old["metadata"]
        for owned in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        meta["generation"] = old_meta.get("generation", 1)
        if _spec_part(new) != _spec_part(old):
            meta["generation"] += 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return copy.deepcopy(old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(key, ident, new)
        _check_etcd_size(key, new)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        bucket[ident] = new
        self._emit("MODIFIED", key, new, rv, old)
        return copy.deepcopy(new)

    def delete(
        self, key: str, namespace: str | None, name: str, *, resource: str, group: str = "", grace_seconds: int = 0
    ) -> tuple[dict[str, Any], bool]:
        """Delete, or start deleting; returns (object, gone).

        With finalizers, or with ``grace_seconds`` > 0 (a terminating pod),
        only ``deletionTimestamp`` is set and the object stays (gone=False);
        the caller finishes a graceful deletion with :meth:`finish_delete`.
        """
        ident = (namespace or "", name)
        old = self._objects.get(key, {}).get(ident)
        if old is None:
            raise ApiError.not_found(resource, name, group)
        if not old["metadata"].get("finalizers") and grace_seconds <= 0:
            return self._remove(key, ident, copy.deepcopy(old)), True
        if old["metadata"].get("deletionTimestamp"):
            return copy.deepcopy(old), False
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = max(grace_seconds, 0)
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        self._objects[key][ident] = new
        self._emit("MODIFIED", key, new, rv, old)
        return copy.deepcopy(new), False

    def finish_delete(self, key: str, namespace: str | None, name: str, uid: str) -> bool:
        """End a graceful deletion (the kubelet's confirmation), unless finalizers hold it."""
        ident = (namespace or "", name)
        old = self._objects.get(key, {}).get(ident)
        if old is None or old["metadata"].get("uid") != uid or old["metadata"].get("finalizers"):
            return False
        self._remove(key, ident, copy.deepcopy(old))
        return True

    def _remove(self, key: str, ident: ObjectKey, obj: dict[str, Any]) -> dict[str, Any]:
        del self._objects[key][ident]
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._emit("DELETED", key, obj, rv)
        return copy.deepcopy(obj)

    # ----------------------------------------------------------------- watch

    def watch(
        self,
        key: str,
        namespace: str | None,
        since: int | None,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Watcher:
        """Subscribe; with ``since``, replay every later event from history first.

        Raises 410 (reason Expired) when ``since`` is older than the history
        kept, exactly the condition a real server reports as
        "too old resource version".
        """
        if since is not None and since < self._compacted_rv:
            raise ApiError.gone(f"too old resource version: {since} ({self._compacted_rv})")
        watcher = Watcher(key, namespace, predicate)
        if since is not None:
            for event in self._history:
                if event.rv > since and watcher.wants(event):
                    watcher.queue.put_nowait(event)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def compact(self, up_to: int | None = None) -> None:
        """Forget history up to ``up_to`` (default: all) — a test hook for 410 Gone."""
        limit = self._rv if up_to is None else up_to
        while self._history and self._history[0].rv <= limit:
            self._history.popleft()
        self._compacted_rv = max(self._compacted_rv, limit)
