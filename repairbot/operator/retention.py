"""Retention: finished GPURepairs are deleted after a while, so the API server does not fill with history.

Every repair ever opened would otherwise stay in etcd for good — a 2,000-node
fleet opens thousands a month — and every list, watch and reconcile of the
fleet would pay for them. The rule (``policy.retention``) is a pure function,
:func:`expired`: a terminal repair goes once it ended more than ``ttl`` ago
*and* is not among its node's ``keepPerNode`` newest finished repairs. Active
repairs are never touched, and a Quarantined repair stays until a human
released its node (condition ``Released=True``) — it is the hardware team's
evidence. The Slack thread and Jira ticket outlive the object.

:class:`RetentionCollector` applies it periodically on the active operator
only (it runs beside the notifications, inside the leader's kopf run), deletes
with the listed ``resourceVersion`` as a precondition (a repair that changed
since the list is looked at again next sweep) and counts what it deleted.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object
from repairbot.logs import step_fields
from repairbot.model import GROUP, PLURAL, VERSION, Phase, parse_time
from repairbot.operator.background import BackgroundLoop
from repairbot.operator.metrics import OperatorMetrics
from repairbot.policy import RetentionPolicy

log = logging.getLogger(__name__)

RELEASED = "Released"
"""Condition a human's release writes on a Quarantined repair (``repairbot release NODE``)."""
SWEEP_INTERVAL = timedelta(minutes=10)


def is_released(repair: Mapping[str, Any]) -> bool:
    conditions = (repair.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == RELEASED and c.get("status") == "True" for c in conditions)


def ended_at(repair: Mapping[str, Any]) -> datetime | None:
    """When a finished repair ended: ``resolvedAt``, else its last history entry, else its creation."""
    status = repair.get("status") or {}
    history = status.get("history") or ()
    text = status.get("resolvedAt") or (history[-1].get("at") if history else None)
    text = text or repair.get("metadata", {}).get("creationTimestamp")
    try:
        return parse_time(str(text)) if text else None
    except ValueError:
        return None


def _terminal(repair: Mapping[str, Any]) -> bool:
    phase = (repair.get("status") or {}).get("phase")
    return phase in {p.value for p in Phase if p.is_terminal}


def expired(repairs: Iterable[Mapping[str, Any]], policy: RetentionPolicy, now: datetime) -> list[Mapping[str, Any]]:
    """The repairs to delete now (pure): finished, past ``ttl``, beyond the node's newest ``keep_per_node``.

    Newest means latest ended; a repair whose end cannot be read is kept (a
    retention rule must never delete what it cannot judge).
    """
    by_node: dict[str, list[tuple[datetime, Mapping[str, Any]]]] = defaultdict(list)
    for repair in repairs:
        if not _terminal(repair) or repair.get("metadata", {}).get("deletionTimestamp"):
            continue
        end = ended_at(repair)
        if end is None:
            continue
        node = str((repair.get("spec") or {}).get("nodeName") or "")
        by_node[node].append((end, repair))
    doomed: list[Mapping[str, Any]] = []
    for finished in by_node.values():
        finished.sort(key=lambda pair: (pair[0], pair[1]["metadata"]["name"]), reverse=True)
        for end, repair in finished[policy.keep_per_node :]:
            if now - end <= policy.ttl:
                continue
            if (repair.get("status") or {}).get("phase") == Phase.QUARANTINED.value and not is_released(repair):
                continue
            doomed.append(repair)
    return doomed


@dataclass
class RetentionCollector:
    """Deletes what :func:`expired` names, every ``interval``, while it runs (on the leader only)."""

    api: client.ApiClient
    policy: RetentionPolicy
    metrics: OperatorMetrics | None = None
    interval: float = SWEEP_INTERVAL.total_seconds()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _lane: BackgroundLoop | None = None

    def sweep(self) -> int:
        """One pass: list, judge, delete (each with its resourceVersion as precondition); how many went."""
        custom = client.CustomObjectsApi(self.api)
        listing = as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
        deleted = 0
        for repair in expired(listing.get("items") or [], self.policy, self.clock()):
            meta = repair["metadata"]
            body = client.V1DeleteOptions(preconditions=client.V1Preconditions(
                uid=meta.get("uid"), resource_version=meta.get("resourceVersion")))  # fmt: skip
            try:
                custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, meta["name"], body=body)
            except ApiException as error:
                if error.status in (404, 409):  # gone already, or changed since the list: judged again next sweep
                    continue
                raise
            deleted += 1
            phase = str((repair.get("status") or {}).get("phase"))
            if self.metrics is not None:
                self.metrics.repairs_deleted.labels(phase).inc()
            log.info("retention deleted repair=%s node=%s phase=%s ended=%s", meta["name"],
                     (repair.get("spec") or {}).get("nodeName"), phase, ended_at(repair),
                     extra=step_fields(node=(repair.get("spec") or {}).get("nodeName"), repair=meta["name"],
                                       phase=phase))  # fmt: skip
        return deleted

    def start(self) -> None:
        """Sweep at once (a new leader cleans up what piled up meanwhile), then every ``interval``."""
        failed = f"retention sweep failed; retrying in {self.interval}s"
        self._lane = BackgroundLoop("retention", self.sweep, lambda: self.interval, failed=failed, logger=log)
        self._lane.start()

    def stop(self) -> None:
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
