"""Where the storm breakers live between reconciles and across operator restarts: one ConfigMap.

The breakers are fleet-wide state (open, half-open, which canaries; the
fleet's breaker and one per failure domain that stormed), so they cannot live
on any one GPURepair. A ConfigMap in the operator's namespace is visible to
humans (``kubectl get cm repairbot-breaker -o yaml``) and survives a restart or
a leader change; the active operator keeps the latest copy in memory and
writes it back only when it changes.

Writes are fenced: each carries the ``resourceVersion`` this replica last read
or wrote, so a deposed leader that still believes it leads cannot overwrite
the new leader's breaker — its write fails with 409, it reloads, and the
reconcile that tried is run again on what is really stored.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import raw_call, retried
from repairbot.machine.breaker import Breaker, Breakers, BreakerState
from repairbot.model import format_time, parse_time

log = logging.getLogger(__name__)

CONFIGMAP = "repairbot-breaker"
KEY = "breaker.json"


class BreakerConflict(RuntimeError):
    """Someone else wrote the breaker since this replica read it: reloaded; decide again."""


def _breaker_dict(breaker: Breaker) -> dict[str, Any]:
    data: dict[str, Any] = asdict(breaker)
    data["state"] = breaker.state.value
    for key in ("opened_at", "counting_since"):
        data[key] = format_time(data[key]) if data[key] else None
    data["canaries"] = list(breaker.canaries)
    return data


def _breaker_from(data: dict[str, Any]) -> Breaker:
    return Breaker(
        state=BreakerState(data.get("state", "closed")),
        incident=data.get("incident"),
        message=data.get("message", ""),
        opened_at=_time(data.get("opened_at")),
        counting_since=_time(data.get("counting_since")),
        canaries=tuple(data.get("canaries") or ()),
        canaries_passed=int(data.get("canaries_passed") or 0),
        domain=data.get("domain"),
    )


def breakers_to_json(breakers: Breakers) -> str:
    data = {"fleet": _breaker_dict(breakers.fleet),
            "domains": {d: _breaker_dict(b) for d, b in sorted(breakers.domains.items())}}  # fmt: skip
    return json.dumps(data, sort_keys=True)


def breakers_from_json(text: str) -> Breakers:
    """The stored breakers; the one-breaker format of earlier releases reads as the fleet's breaker."""
    data = json.loads(text)
    if "fleet" not in data:
        return Breakers(fleet=_breaker_from(data))
    domains = {str(d): _breaker_from(b) for d, b in (data.get("domains") or {}).items()}
    return Breakers(_breaker_from(data["fleet"]), domains)


def summary(breakers: Breakers) -> str:
    """One word for ``kubectl get cm``: the worst state of any breaker."""
    states = {b.state for b in (breakers.fleet, *breakers.domains.values())}
    for state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
        if state in states:
            return state.value
    return BreakerState.CLOSED.value


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


class BreakerStore:
    """Load once, keep in memory, persist on change, fenced by resourceVersion. Thread-safe."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str = CONFIGMAP) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._name = name  # one per release (the chart passes --breaker-configmap)
        self._lock = threading.Lock()
        self._breakers: Breakers | None = None
        self._version: str | None = None  # of the ConfigMap as last read or written; None: it does not exist

    def get(self) -> Breakers:
        with self._lock:
            if self._breakers is None:
                self._breakers = self._load()
            return self._breakers

    def put(self, breakers: Breakers) -> None:
        with self._lock:
            if self._breakers is None:
                self._breakers = self._load()
            if breakers == self._breakers:
                return
            metadata: dict[str, Any] = {"name": self._name, "namespace": self._namespace,
                                        "labels": {"app.kubernetes.io/name": "repairbot"}}  # fmt: skip
            if self._version is not None:
                metadata["resourceVersion"] = self._version
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                    "data": {KEY: breakers_to_json(breakers), "state": summary(breakers)}}  # fmt: skip
            try:
                written = retried(lambda: self._write(body))
            except BreakerConflict:
                self._breakers = self._load()
                raise
            self._version = str((written.get("metadata") or {}).get("resourceVersion") or "") or None
            if summary(breakers) != summary(self._breakers):
                log.warning("breaker %s: %s", summary(breakers), _describe(breakers))
            self._breakers = breakers

    def _write(self, body: dict[str, Any]) -> dict[str, Any]:
        """One fenced write; a 409 is no transient error here but news: raised as :class:`BreakerConflict`."""
        try:
            return self._write_once(body)
        except ApiException as error:
            if error.status == 409:
                raise BreakerConflict("the breaker ConfigMap changed since this operator read it; reloaded") from error
            raise

    def _write_once(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._version is None:
            return raw_call(self._core.create_namespaced_config_map, self._namespace, body)  # 409 if it appeared
        try:
            return raw_call(self._core.replace_namespaced_config_map, self._name, self._namespace, body)
        except ApiException as error:
            if error.status == 404:  # deleted by hand: what we hold is the truth, write it anew
                self._version = None
                body["metadata"].pop("resourceVersion", None)
                return raw_call(self._core.create_namespaced_config_map, self._namespace, body)
            raise

    def _load(self) -> Breakers:
        try:
            obj = raw_call(self._core.read_namespaced_config_map, self._name, self._namespace)
        except ApiException as error:
            if error.status == 404:
                self._version = None
                return Breakers()
            raise
        self._version = str((obj.get("metadata") or {}).get("resourceVersion") or "") or None
        text = (obj.get("data") or {}).get(KEY)
        return breakers_from_json(text) if text else Breakers()


def _describe(breakers: Breakers) -> str:
    scopes = [("fleet", breakers.fleet), *sorted(breakers.domains.items())]
    return "; ".join(f"{name}={b.state.value} incident={b.incident} {b.message}".rstrip()
                     for name, b in scopes if b.state is not BreakerState.CLOSED) or "all closed"  # fmt: skip
