"""A small informer: one kind's objects kept in memory by list + watch, for components that read a lot.

The webhook answers thousands of alerts a second; reading every node and every repair from the API
server for each would cost it requests it need not make. An :class:`Informer` lists once, then watches
from the list's resourceVersion (resuming from the last one seen when a watch ends), relists on 410
Gone or any error (after a bounded backoff), and keeps of each object only what ``trim`` returns, so
memory stays bounded by what its reader needs. Readers get copies; the cache is never written to.

A cache lags the API server by a moment: whoever writes from it must write optimistically (with the
resourceVersion read) and re-read from the API on a 409 — :mod:`repairbot.kube.intake` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from repairbot.kube.client import raw_call

log = logging.getLogger(__name__)

Trim = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What of an object to keep (None: keep nothing of it, as if it did not exist)."""

WATCH_SECONDS = 300
"""A watch is re-opened this often (from the last resourceVersion: no relist, no gap)."""
BACKOFF_MAX = 10.0


class Informer:
    """Objects of one list call, by name, kept current by a watch in a daemon thread."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        *args: Any,
        trim: Trim = lambda obj: obj,
        index: Callable[[dict[str, Any]], str | None] | None = None,
        watch_seconds: int = WATCH_SECONDS,
        **kwargs: Any,
    ) -> None:
        self.name = name
        self._call = list_call
        self._args = args
        self._kwargs = kwargs
        self._trim = trim
        self._index_of = index
        self._watch_seconds = watch_seconds
        self._objects: dict[str, dict[str, Any]] = {}
        self._by_index: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.relists = 0

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """The first list has landed: an absence now means "not there (a moment ago)", not "not known yet"."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get(name)
            return deepcopy(obj) if obj is not None else None

    def by_index(self, key: str) -> list[dict[str, Any]]:
        """Copies of the objects whose ``index`` is ``key`` (e.g. a node's repairs)."""
        with self._lock:
            return [deepcopy(self._objects[n]) for n in sorted(self._by_index.get(key, ()))]

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return [deepcopy(o) for o in self._objects.values()]

    def __len__(self) -> int:
        return len(self._objects)

    # ------------------------------------------------------------------ running

    def start(self) -> Informer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                version = self._relist()
                backoff = 0.5
                while not self._stop.is_set():
                    version = self._watch_from(version)
            except ApiException as error:
                if self._stop.is_set():
                    return
                if error.status != 410:
                    log.warning("informer %s: %s; listing again in %.1f s", self.name, error.status, backoff)
                    self._stop.wait(backoff)
                    backoff = min(BACKOFF_MAX, backoff * 2)
            except Exception as error:  # a dropped connection: list again, bounded backoff
                if self._stop.is_set():
                    return  # stop() closed the stream under the watch
                log.warning("informer %s: %s; listing again in %.1f s", self.name, error, backoff)
                self._stop.wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    def _relist(self) -> str:
        listing = raw_call(self._call, *self._args, **self._kwargs)
        kept: dict[str, dict[str, Any]] = {}
        for obj in listing.get("items") or []:
            trimmed = self._trim(obj)
            if trimmed is not None:
                kept[obj["metadata"]["name"]] = trimmed
        with self._lock:
            self._objects = kept
            self._by_index = {}
            for name, obj in kept.items():
                self._add_index(name, obj)
        self.relists += 1
        self._synced.set()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _watch_from(self, version: str) -> str:
        """One watch from ``version`` until it ends; the last resourceVersion seen (410: raised, to relist)."""
        self._watch = watch.Watch()
        try:
            for event in self._watch.stream(
                self._call, *self._args, resource_version=version, timeout_seconds=self._watch_seconds,
                allow_watch_bookmarks=True, **self._kwargs,
            ):  # fmt: skip
                obj = event.get("raw_object") or {}
                metadata = obj.get("metadata") or {}
                version = str(metadata.get("resourceVersion") or version)
                if event["type"] != "BOOKMARK":
                    self._apply(event["type"], obj)
                if self._stop.is_set():
                    break
        finally:
            self._watch.stop()
        return version

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        trimmed = None if kind == "DELETED" else self._trim(obj)
        with self._lock:
            old = self._objects.pop(name, None)
            if old is not None:
                self._drop_index(name, old)
            if trimmed is not None:
                self._objects[name] = trimmed
                self._add_index(name, trimmed)

    def _add_index(self, name: str, obj: dict[str, Any]) -> None:
        key = self._index_of(obj) if self._index_of else None
        if key is not None:
            self._by_index.setdefault(key, set()).add(name)

    def _drop_index(self, name: str, obj: dict[str, Any]) -> None:
        key = self._index_of(obj) if self._index_of else None
        if key is not None:
            names = self._by_index.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_index[key]
