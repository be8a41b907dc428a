"""Where the storm breaker lives between reconciles and across operator restarts: one ConfigMap.

The breaker is fleet-wide state (open, half-open, which canaries), so it
cannot live on any one GPURepair. A ConfigMap in the operator's namespace is
visible to humans (``kubectl get cm repairbot-breaker -o yaml``) and survives a
restart or a leader change; the active operator keeps the latest copy in
memory and writes it back only when it changes.
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

from repairbot.kube.client import api_retrying, raw_call
from repairbot.model import format_time, parse_time
from repairbot.operator.breaker import Breaker, BreakerState

log = logging.getLogger(__name__)

CONFIGMAP = "repairbot-breaker"
KEY = "breaker.json"


def breaker_to_json(breaker: Breaker) -> str:
    data: dict[str, Any] = asdict(breaker)
    data["state"] = breaker.state.value
    for key in ("opened_at", "counting_since"):
        data[key] = format_time(data[key]) if data[key] else None
    data["canaries"] = list(breaker.canaries)
    return json.dumps(data, sort_keys=True)


def breaker_from_json(text: str) -> Breaker:
    data = json.loads(text)
    return Breaker(
        state=BreakerState(data.get("state", "closed")),
        incident=data.get("incident"),
        message=data.get("message", ""),
        opened_at=_time(data.get("opened_at")),
        counting_since=_time(data.get("counting_since")),
        canaries=tuple(data.get("canaries") or ()),
        canaries_passed=int(data.get("canaries_passed") or 0),
    )


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


class BreakerStore:
    """Load once, keep in memory, persist on change. Thread-safe."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._breaker: Breaker | None = None

    def get(self) -> Breaker:
        with self._lock:
            if self._breaker is None:
                self._breaker = self._load()
            return self._breaker

    def put(self, breaker: Breaker) -> None:
        with self._lock:
            if breaker == self._breaker:
                return
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP, "namespace": self._namespace,
                             "labels": {"app.kubernetes.io/name": "repairbot"}},
                "data": {KEY: breaker_to_json(breaker), "state": breaker.state.value},
            }  # fmt: skip
            for attempt in api_retrying():
                with attempt:
                    try:
                        raw_call(self._core.replace_namespaced_config_map, CONFIGMAP, self._namespace, body)
                    except ApiException as error:
                        if error.status != 404:
                            raise
                        raw_call(self._core.create_namespaced_config_map, self._namespace, body)
            if breaker.state is not (self._breaker.state if self._breaker else BreakerState.CLOSED):
                log.warning("breaker %s incident=%s %s", breaker.state.value, breaker.incident, breaker.message)
            self._breaker = breaker

    def _load(self) -> Breaker:
        try:
            obj = raw_call(self._core.read_namespaced_config_map, CONFIGMAP, self._namespace)
        except ApiException as error:
            if error.status == 404:
                return Breaker()
            raise
        text = (obj.get("data") or {}).get(KEY)
        return breaker_from_json(text) if text else Breaker()
