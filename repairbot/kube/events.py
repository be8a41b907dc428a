"""Kubernetes Events on the Node and the GPURepair for every step of a repair.

``kubectl describe node gpu-17`` is where an SRE looks first; the same words
as the GPURepair history, Slack and the log appear there. Events are
best-effort by nature: a failed event is logged and counted, never raised,
because an event must not fail a repair.

Like client-go's event recorder, a repeat of the same event (same object,
type, reason and message) within ten minutes bumps ``count`` and
``lastTimestamp`` on the existing Event instead of creating a new one, so a
drain that reports "3 pods left" every five seconds for an hour is one line
with a count, not 720 objects in etcd.
"""

from __future__ import annotations

import enum
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import raw_call
from repairbot.logs import step_fields

log = logging.getLogger(__name__)

COMPONENT = "repairbot-operator"
DEDUP_WINDOW = timedelta(minutes=10)
MESSAGE_MAX_BYTES = 1024
REASON_MAX = 128
CACHE_SIZE = 4096
CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 5
"""An event call never holds a repair step longer than this (a hung API server costs one timeout, not a stall)."""


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The ``involvedObject`` of an Event. ``namespace`` None for cluster-scoped objects (Node, GPURepair)."""

    kind: str
    name: str
    api_version: str
    uid: str = ""
    namespace: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """From an object as the API returns it (raw JSON or a kopf body)."""
        metadata = obj.get("metadata") or {}
        return cls.from_involved({**metadata, "kind": obj.get("kind"), "apiVersion": obj.get("apiVersion")})

    @classmethod
    def from_involved(cls, ref: Mapping[str, Any]) -> ObjectRef:
        """From an ``involvedObject``-shaped mapping: kind, name, apiVersion, uid, namespace."""
        return cls(
            kind=str(ref.get("kind") or ""),
            name=str(ref.get("name") or ""),
            api_version=str(ref.get("apiVersion") or ""),
            uid=str(ref.get("uid") or ""),
            namespace=ref.get("namespace") or None,
        )

    @classmethod
    def node(cls, name: str, uid: str = "") -> ObjectRef:
        return cls(kind="Node", name=name, api_version="v1", uid=uid)

    @property
    def event_namespace(self) -> str:
        """Events about cluster-scoped objects live in ``default``, as the API server's validation requires."""
        return self.namespace or CLUSTER_SCOPED_EVENT_NAMESPACE

    def as_involved_object(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"kind": self.kind, "name": self.name, "apiVersion": self.api_version}
        if self.uid:
            ref["uid"] = self.uid
        if self.namespace:
            ref["namespace"] = self.namespace
        return ref


def camel_reason(reason: str) -> str:
    """Event reasons are CamelCase words (``DrainTimedOut``); ``drain-timed-out`` becomes that too."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", reason) if w]
    text = "".join(w[0].upper() + w[1:] for w in words) or "Unknown"
    return text[:REASON_MAX]


def clip_message(message: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """At most ``limit`` bytes of UTF-8 (the API server counts bytes), ending in "..." when cut."""
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    return encoded[: limit - 3].decode(errors="ignore") + "..."


@dataclass(slots=True)
class _Seen:
    """A posted Event we may bump instead of repeating."""

    name: str
    namespace: str
    count: int
    last: datetime


_Key = tuple[str, str, str, str, str, str, str]


class EventRecorder:
    """Posts Events as ``component``; never raises. ``failures`` counts events that could not be written.

    Safe to share between kopf's handler threads: the de-duplication cache is
    guarded by a lock, the API calls are not (two simultaneous first copies of
    one event may both be created, which is harmless).
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        component: str = COMPONENT,
        instance: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.component = component
        self.instance = instance or socket.gethostname()
        self.clock = clock
        self.failures = 0
        self.last_error: str | None = None
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, obj_ref: ObjectRef | Mapping[str, Any], type: EventType | str, reason: str, message: str) -> None:
        """Post (or bump) one event about ``obj_ref``. ``type`` other than Normal is treated as Warning.

        ``obj_ref`` is an :class:`ObjectRef` or an ``involvedObject``-shaped mapping
        (``{"apiVersion", "kind", "name", "uid"}``).
        """
        if not isinstance(obj_ref, ObjectRef):
            obj_ref = ObjectRef.from_involved(obj_ref)
        kind = EventType.NORMAL if str(type) == EventType.NORMAL.value else EventType.WARNING
        reason, message = camel_reason(reason), clip_message(message)
        now = self.clock()
        key: _Key = (obj_ref.event_namespace, obj_ref.kind, obj_ref.name, obj_ref.uid, kind.value, reason, message)
        log.info(
            "event=k8s_event object=%s/%s type=%s reason=%s message=%r",
            obj_ref.kind, obj_ref.name, kind.value, reason, message,
            extra=step_fields(node=obj_ref.name if obj_ref.kind == "Node" else None,
                              repair=obj_ref.name if obj_ref.kind == "GPURepair" else None,
                              event=reason, type=kind.value),
        )  # fmt: skip
        try:
            seen = self._recent(key, now)
            if seen is not None and self._bump(seen, now):
                return
            self._create(key, obj_ref, kind, reason, message, now)
        except Exception as error:  # any failure (API, connection, urllib3): an event never fails a repair
            self._failed(obj_ref, reason, error)

    def _recent(self, key: _Key, now: datetime) -> _Seen | None:
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen.last > DEDUP_WINDOW:
                return None
            self._seen.move_to_end(key)
            return seen

    def _bump(self, seen: _Seen, now: datetime) -> bool:
        """PATCH count and lastTimestamp; False when the Event is gone (expired by its TTL) and must be recreated."""
        count = seen.count + 1
        patch = {"count": count, "lastTimestamp": _event_time(now)}
        try:
            raw_call(
                self.core.patch_namespaced_event, seen.name, seen.namespace, patch,
                _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        with self._lock:
            seen.count, seen.last = count, now
        return True

    def _create(self, key: _Key, ref: ObjectRef, kind: EventType, reason: str, message: str, now: datetime) -> None:
        stamp = _event_time(now)
        name = f"{ref.name}.{time.time_ns():x}"  # client-go's naming: object name + a hex timestamp
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.event_namespace},
            "involvedObject": ref.as_involved_object(),
            "type": kind.value,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self.component, "host": self.instance},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        created = raw_call(
            self.core.create_namespaced_event, ref.event_namespace, body, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        with self._lock:
            self._seen[key] = _Seen(str(created.get("metadata", {}).get("name") or name), ref.event_namespace, 1, now)
            self._seen.move_to_end(key)
            while len(self._seen) > CACHE_SIZE:
                self._seen.popitem(last=False)

    def _failed(self, ref: ObjectRef, reason: str, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{ref.kind}/{ref.name} {reason}: {error}"
        log.warning("event=k8s_event_failed object=%s/%s reason=%s error=%r", ref.kind, ref.name, reason, error)


def _event_time(when: datetime) -> str:
    """Events carry whole seconds, as every Kubernetes client writes them."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
