"""From a validated notification to repairs: plan (pure), then apply through the cluster.

Planning decides, for every alert, the node and the finding or the reason to
ignore it, before anything is written — so a notification is applied
whole-or-not-at-all as far as validation goes. Applying goes through
:class:`ClusterSink`, a small protocol the real Kubernetes implementation
(:class:`KubeSink`) and test doubles both satisfy.

Idempotence (REFERENCE §6.2: senders repeat still-firing groups): a firing
is ``(source, fingerprint, startsAt)``; an in-memory LRU remembers which
repair took each one, so a repeat answers with that repair and writes
nothing. After a restart (empty LRU) intake's merge still keeps one repair
per node; only the finding's count goes up.

A resolved alert never opens a repair and never moves one: it is answered as
ignored with reason ``resolved``. When its node has an active repair fed by
that alert, intake marks the finding's evidence ``resolvedAt`` and the
operator writes "alert resolved" into the repair's history (so the Slack
thread and the Jira ticket say it too); the repair itself carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client

from repairbot.kube.client import raw_call, retried
from repairbot.kube.intake import Intake, IntakeRefused, NodeNotFound, NodeOptedOut, RecordSource
from repairbot.logs import step_fields
from repairbot.model import Action, Finding, Source
from repairbot.webhook.mapping import DEFAULT_NODE_LABELS, AlertRules, NodeIndex, map_node
from repairbot.webhook.payloads import Alert, Notification

log = logging.getLogger(__name__)

REASON_RESOLVED = "resolved"
REASON_DISABLED = NodeOptedOut.reason
REASON_UNKNOWN_NODE = NodeNotFound.reason
# The Xid catalog says the node needs nothing (application Xids 13, 31, 43 …): as on the agent's path, no repair.
REASON_NO_ACTION = "no-action"


@dataclass(frozen=True, slots=True)
class Planned:
    """One alert's fate: a finding for ``node``, or ``reason`` to ignore it."""

    alert: Alert
    node: str | None = None
    finding: Finding | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RepairRef:
    node: str
    name: str
    alert: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "name": self.name, "alert": self.alert, "fingerprint": self.fingerprint}


@dataclass(slots=True)
class Outcome:
    """The 202 body: what opened or fed a repair, what was ignored and why, and how many alerts the sender cut.

    ``truncated`` is the sender's own ``truncatedAlerts`` (Alertmanager's and
    Grafana's webhook payloads both carry it when a group exceeded the
    receiver's ``max_alerts``): those alerts never reached RepairBot, so the
    answer says so rather than pretend the notification was whole.
    """

    repairs: list[RepairRef]
    ignored: list[tuple[str, str]]
    truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "repairs": [ref.to_dict() for ref in self.repairs],
            "ignored": [{"fingerprint": fp, "reason": reason} for fp, reason in self.ignored],
        }
        if self.truncated:
            body["truncatedAlerts"] = self.truncated
        return body


def plan(
    notification: Notification,
    index: NodeIndex,
    rules: AlertRules,
    *,
    node_labels: Sequence[str] = DEFAULT_NODE_LABELS,
) -> list[Planned]:
    """Every alert's node and finding, or why it is ignored (pure)."""
    planned: list[Planned] = []
    for alert in notification.alerts:
        match = map_node(alert, index, node_labels)
        if not alert.firing:
            planned.append(Planned(alert, node=match.node, reason=REASON_RESOLVED))
            continue
        if match.node is None:
            planned.append(Planned(alert, reason=match.reason))
            continue
        finding = rules.finding(alert, kind=notification.kind, receiver=notification.receiver)
        if finding.action is Action.NONE:
            planned.append(Planned(alert, reason=REASON_NO_ACTION))
            continue
        planned.append(Planned(alert, node=match.node, finding=finding))
    return planned


class ClusterSink(Protocol):
    """What the webhook needs from the cluster (blocking calls; run them in a thread)."""

    def list_nodes(self) -> list[dict[str, Any]]: ...

    def deliver(self, node: str, findings: list[Finding], source: Source) -> str:
        """Report ``findings`` (one node's, of one notification) and tag the node; the repair's name.

        :class:`NodeRefused` if it may not be touched. Called for several nodes at once, from a pool.
        """
        ...

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        """Record on ``node``'s active repair that alert ``fingerprint`` resolved; the repair's name or None."""
        ...


class NodeRefused(Exception):
    """The node vanished or is ``repairbot.io/disabled``: the alert is ignored with ``reason``."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"node {node}: {reason}")
        self.reason = reason


class CachedNodes(RecordSource, Protocol):
    """A record source that also lists the nodes (the webhook's watch caches, :mod:`repairbot.webhook.cache`)."""

    def list_nodes(self) -> list[dict[str, Any]] | None: ...


class KubeSink:
    """:class:`ClusterSink` over the kubernetes client: the node list, and intake for everything else.

    With ``cache`` (the webhook's informers) intake reads the node list and the repairs from it, and the
    API only after a 409 or for what the cache does not hold.
    """

    def __init__(self, api: client.ApiClient, cache: CachedNodes | None = None) -> None:
        self._core = client.CoreV1Api(api)
        self._cache = cache
        self._intake = Intake(api, cache)

    def list_nodes(self) -> list[dict[str, Any]]:
        cached = self._cache.list_nodes() if self._cache is not None else None
        if cached is not None:
            return cached
        return list(retried(lambda: raw_call(self._core.list_node)).get("items") or [])

    def deliver(self, node: str, findings: list[Finding], source: Source) -> str:
        """Through intake, the one door: it refuses an opted-out or unknown node, merges, and tags it ``faulty``."""
        try:
            result = self._intake.report(node, findings, source=source, reason=findings[0].message)
        except IntakeRefused as refused:
            raise NodeRefused(node, refused.reason) from refused
        return result.name

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        return self._intake.note_resolved(node, fingerprint, at)


class SeenFirings:
    """LRU of firings already delivered → the repair that took them."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, str, str], RepairRef] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> RepairRef | None:
        ref = self._items.get(key)
        if ref is not None:
            self._items.move_to_end(key)
        return ref

    def remember(self, key: tuple[str, str, str], ref: RepairRef) -> None:
        self._items[key] = ref
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class NodeDirectory:
    """The node index, listed at most every ``ttl`` seconds, and again on a miss.

    A node that joined a second ago must not be ``unknown-node``, but a burst
    of alerts must not list 2,000 nodes per request either.
    """

    def __init__(self, fetch: Callable[[], Awaitable[list[dict[str, Any]]]], *, ttl: float = 10.0) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._index: NodeIndex | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def index(self, *, refresh_if_older_than: float | None = None) -> NodeIndex:
        async with self._lock:
            age = time.monotonic() - self._at
            limit = self._ttl if refresh_if_older_than is None else min(self._ttl, refresh_if_older_than)
            if self._index is None or age > limit:
                self._index = NodeIndex.from_nodes(await self._fetch())
                self._at = time.monotonic()
            return self._index


DELIVERY_WORKERS = 8
"""Nodes of one notification delivered at once (each its own report): bounded, within the client's connection pool."""


class AlertHandler:
    """Plans and applies notifications; one at a time so repeats racing each other stay idempotent.

    Within a notification, each node's new findings go to intake as one report, and the nodes are
    delivered concurrently by a bounded pool: a 100-alert payload costs one write per node, in parallel.
    """

    def __init__(
        self,
        sink: ClusterSink,
        rules: AlertRules,
        *,
        node_labels: Sequence[str] = DEFAULT_NODE_LABELS,
        seen: SeenFirings | None = None,
        node_ttl: float = 10.0,
        workers: int = DELIVERY_WORKERS,
    ) -> None:
        self._sink = sink
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook-deliver")
        self._rules = rules
        self._node_labels = tuple(node_labels)
        self._seen = seen or SeenFirings()
        self._nodes = NodeDirectory(lambda: asyncio.to_thread(sink.list_nodes), ttl=node_ttl)
        self._apply_lock = asyncio.Lock()

    async def handle(self, notification: Notification) -> Outcome:
        """Plan against the node index (re-listed once if a node looks unknown), then apply."""
        index = await self._nodes.index()
        planned = plan(notification, index, self._rules, node_labels=self._node_labels)
        if any(p.reason == REASON_UNKNOWN_NODE for p in planned):
            index = await self._nodes.index(refresh_if_older_than=1.0)
            planned = plan(notification, index, self._rules, node_labels=self._node_labels)
        async with self._apply_lock:
            return await self._apply(notification, planned)

    async def _apply(self, notification: Notification, planned: list[Planned]) -> Outcome:
        source = Source(notification.kind.value)
        outcome = Outcome([], [], truncated=notification.truncated_alerts)
        if notification.truncated_alerts:
            log.warning(
                "webhook notification truncated by its sender source=%s receiver=%s group=%s truncated=%d "
                "received=%d: the cut alerts never arrived; raise the receiver's max_alerts or look at the group",
                source.value, notification.receiver, notification.group_key, notification.truncated_alerts,
                len(notification.alerts),
            )  # fmt: skip
        fresh: OrderedDict[str, list[tuple[Planned, tuple[str, str, str]]]] = OrderedDict()
        planned_keys: set[tuple[str, str, str]] = set()
        for item in planned:
            if item.reason == REASON_RESOLVED and item.node is not None:
                await self._note_resolved(source, item.node, item.alert)
            if item.node is None or item.finding is None:
                continue
            key = (source.value, *item.alert.identity())
            if self._seen.get(key) is None and key not in planned_keys:  # a repeat within the payload: once
                planned_keys.add(key)
                fresh.setdefault(item.node, []).append((item, key))
        refused, taken = await self._deliver_nodes(source, fresh)
        for item in planned:
            alert = item.alert
            if item.node is None or item.finding is None:
                outcome.ignored.append((alert.fingerprint, item.reason))
                log.info(
                    "webhook alert ignored source=%s alertname=%s fingerprint=%s reason=%s",
                    source.value, alert.alertname, alert.fingerprint, item.reason,
                )  # fmt: skip
                continue
            if item.node in refused:
                outcome.ignored.append((alert.fingerprint, refused[item.node]))
                log.info("webhook alert ignored node=%s fingerprint=%s reason=%s", item.node,
                         alert.fingerprint, refused[item.node])  # fmt: skip
                continue
            key = (source.value, *alert.identity())
            ref = taken.get(key) or self._seen.get(key)
            if ref is not None:
                outcome.repairs.append(ref)
        return outcome

    async def _deliver_nodes(
        self, source: Source, fresh: OrderedDict[str, list[tuple[Planned, tuple[str, str, str]]]]
    ) -> tuple[dict[str, str], dict[tuple[str, str, str], RepairRef]]:
        """One report per node, nodes concurrently (bounded by the pool); the refused nodes and why, and the
        repair each delivered firing went to.

        Every node delivered is remembered before an API error of another is raised (a 503: the sender
        re-sends, and the remembered firings are answered from memory, written once).
        """
        loop = asyncio.get_running_loop()
        nodes = list(fresh)
        results = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._pool, self._sink.deliver, node, [item.finding for item, _ in fresh[node] if item.finding],
                    source,
                )
                for node in nodes
            ),
            return_exceptions=True,
        )  # fmt: skip
        refused: dict[str, str] = {}
        taken: dict[tuple[str, str, str], RepairRef] = {}
        failure: BaseException | None = None
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, NodeRefused):
                refused[node] = result.reason
                continue
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            for item, key in fresh[node]:
                alert, finding = item.alert, item.finding
                assert finding is not None
                taken[key] = RepairRef(node, result, alert.alertname, alert.fingerprint)
                self._seen.remember(key, taken[key])
                log.info(
                    "webhook alert accepted source=%s alertname=%s node=%s repair=%s finding=%s fingerprint=%s",
                    source.value, alert.alertname, node, result, finding.code, alert.fingerprint,
                    extra=step_fields(node=node, repair=result, source=source.value, alertname=alert.alertname,
                                      finding=finding.code, fingerprint=alert.fingerprint),
                )  # fmt: skip
        if failure is not None:
            raise failure
        return refused, taken

    async def _note_resolved(self, source: Source, node: str, alert: Alert) -> None:
        """Best effort: a resolution that cannot be written is logged, never turned into a 5xx
        (the sender would re-send a resolved notification that changes nothing)."""
        at = alert.ends_at or datetime.now(UTC)
        try:
            name = await asyncio.to_thread(self._sink.note_resolved, node, alert.fingerprint, at)
        except Exception as error:  # an API error after intake's retries: the sender must not re-send for it
            log.warning("webhook resolved alert not recorded node=%s fingerprint=%s error=%s",
                        node, alert.fingerprint, error)  # fmt: skip
            return
        if name is not None:
            log.info("webhook alert resolved source=%s alertname=%s node=%s repair=%s fingerprint=%s",
                     source.value, alert.alertname, node, name, alert.fingerprint)  # fmt: skip
