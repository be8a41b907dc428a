"""Load for the operator: findings offered on a schedule through intake, and the decisions they get.

:func:`offer_findings` hands findings to one :class:`~repairbot.agent.runner.NodeAgent`
per node, which sends them through intake over HTTP exactly as agents do (the first
of a burst at once, the rest coalesced into one next write), on a shared bounded pool
of threads; a finding offered at ``t`` reaches its agent at ``t`` or as soon as a
thread is free. :class:`Decisions` watches GPURepairs
until every node's repair has left Pending; :func:`decision_times` reads when
the operator decided each one from its history (the operator's own stamp,
immune to how busy the benchmark process is).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness import RawWatch, bench_client, fatal_xid
from kubernetes import client

from repairbot.agent.runner import NodeAgent
from repairbot.agent.service import AGENT_SEND_SPACING, IntakeSink
from repairbot.kube.informer import Informer
from repairbot.kube.intake import Intake
from repairbot.model import GROUP, LABEL_NODE, PLURAL, VERSION, Finding, parse_time

DECIDED = ("Cordoned", "Blocked")


@dataclass
class Offered:
    """What :func:`offer_findings` did: per finding index, the node and offer time, and when intake accepted it."""

    start: float
    offered: dict[int, tuple[str, float]] = field(default_factory=dict)
    accepted: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reports: int = 0
    """Reports the agents sent to intake (each one write, plus a node read when it opens a repair)."""

    @property
    def last(self) -> float:
        return max(self.accepted.values(), default=self.start)

    @property
    def ingest_s(self) -> float:
        return self.last - self.start

    def first_offer(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for node, at in self.offered.values():
            first[node] = min(at, first.get(node, at))
        return first


class PoolScheduler:
    """Held-back agent flushes, run when due on the shared pool: one timer thread for every agent, not one each."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-scheduler", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, call: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), call))
            self._cv.notify()

    def idle(self) -> bool:
        with self._cv:
            return not self._due

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(5)

    def _run(self) -> None:
        with self._cv:
            while not self._stop:
                if not self._due:
                    self._cv.wait()
                    continue
                at, _, call = self._due[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._due)
                self._pool.submit(call)


class TimedSink:
    """The agent's intake sink, noting when intake accepted each offered finding (by node and GPU)."""

    def __init__(
        self, inner: IntakeSink, result: Offered, index: dict[tuple[str, int], list[int]], lock: threading.Lock
    ) -> None:
        self.inner, self.result, self.index, self.lock = inner, result, index, lock
        self.reports = 0

    def report(self, node: str, findings: list[Finding]) -> None:
        try:
            self.inner.report(node, findings)
        except Exception as error:  # counted and reported, never hidden (the agent keeps them and retries)
            with self.lock:
                self.result.errors.append(f"{node}: {error}")
            raise
        done = time.time()
        with self.lock:
            self.reports += 1
            for finding in findings:
                for k in self.index.get((node, finding.gpu.index or 0), ()):
                    if k in self.result.offered and k not in self.result.accepted:
                        self.result.accepted[k] = done


def offer_findings(
    kubeconfig: str,
    plan: Sequence[tuple[str, int]],
    window: float,
    workers: int,
    *,
    spacing: float = AGENT_SEND_SPACING,
) -> Offered:
    """Offer one fatal Xid finding per ``(node, gpu)`` of ``plan``, evenly over ``window`` seconds (0: all at once).

    Each node has its agent (:class:`NodeAgent`, the production class, with the production send spacing) whose
    findings go through its own coalescing send path to intake, reading the node's repairs from a watch cache
    (one informer over all GPURepairs stands in for every agent's executor watch of its own node). The agents
    share a bounded pool of ``workers`` threads, each with its own client, as a fleet's agents each have one.
    """
    result = Offered(start=time.time() + 0.5)
    lock = threading.Lock()
    index: dict[tuple[str, int], list[int]] = {}
    for k, (node, gpu) in enumerate(plan):
        index.setdefault((node, gpu % 8), []).append(k)
    cache_client = bench_client(kubeconfig)
    cache_client.user_agent = "repairbot-bench-cache/1"  # the agents' watches: not intake's requests per report
    custom = client.CustomObjectsApi(cache_client)
    repairs = Informer("bench-gpurepairs", custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                       index=_node_label).start()  # fmt: skip
    repairs.wait_synced(30)
    intakes = [Intake(bench_client(kubeconfig), NodeCache(repairs)) for _ in range(workers)]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-agent")
    scheduler = PoolScheduler(pool)
    agents: dict[str, NodeAgent] = {}
    sinks: list[TimedSink] = []
    for node in dict.fromkeys(node for node, _ in plan):
        sink = TimedSink(IntakeSink(intakes[len(agents) % workers]), result, index, lock)
        sinks.append(sink)
        agents[node] = NodeAgent(node=node, detectors=[], sink=sink, send_spacing=spacing,
                                 schedule=scheduler.schedule)  # fmt: skip
    try:
        futures = []
        for k, (node, gpu) in enumerate(plan):
            at = result.start + k * window / len(plan)
            time.sleep(max(0.0, at - time.time()))
            with lock:
                result.offered[k] = (node, at)
            finding = fatal_xid(79, gpu % 8, datetime.fromtimestamp(at, UTC))
            futures.append(pool.submit(agents[node].on_event, finding))
        for future in futures:
            future.result()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not scheduler.idle() or len(result.accepted) < len(plan)):
            time.sleep(0.05)
            if scheduler.idle() and len(result.accepted) < len(plan):  # a failed send: the agent's next flush
                for agent in agents.values():
                    pool.submit(agent.flush)
                time.sleep(0.5)
    finally:
        scheduler.stop()
        pool.shutdown(wait=True)
        repairs.stop()
    result.reports = sum(s.reports for s in sinks)
    return result


def _node_label(repair: dict[str, Any]) -> str | None:
    return ((repair.get("metadata") or {}).get("labels") or {}).get(LABEL_NODE)


class NodeCache:
    """The agents' record source: a node's repairs from the shared informer; the node's labels from the API
    (as a real agent, which does not watch its node: the opt-out GET a create pays)."""

    def __init__(self, repairs: Informer) -> None:
        self.repairs = repairs

    def repairs_of(self, node: str) -> list[dict[str, Any]] | None:
        return self.repairs.by_index(node) if self.repairs.synced else None

    def node_metadata(self, node: str) -> dict[str, Any] | None:
        return None


class Decisions:
    """Watches GPURepairs; :meth:`wait` returns once ``nodes`` distinct nodes' repairs are Cordoned or Blocked."""

    def __init__(self, api_url: str, nodes: int, *, token: str, ca: str) -> None:
        self.nodes = nodes
        self.latest: dict[str, dict[str, Any]] = {}
        self._decided: set[str] = set()
        self._all = threading.Event()
        self._watch = RawWatch(api_url, f"/apis/{GROUP}/{VERSION}/{PLURAL}", self._observe, token=token, ca=ca)

    def _observe(self, _: str, repair: dict[str, Any]) -> None:
        self.latest[repair["metadata"]["name"]] = repair
        if (repair.get("status") or {}).get("phase") in DECIDED:
            self._decided.add(repair["spec"]["nodeName"])
            if len(self._decided) >= self.nodes:
                self._all.set()

    def start(self) -> Decisions:
        self._watch.start()
        return self

    def wait(self, timeout: float) -> bool:
        return self._all.wait(timeout)

    def stop(self) -> None:
        self._watch.stop()


def first_decision(repair: dict[str, Any]) -> tuple[float, str] | None:
    """When and how the operator first decided a repair: its first ``cordon`` or ``block`` history entry."""
    for entry in (repair.get("status") or {}).get("history") or []:
        if entry.get("step") == "cordon":
            return parse_time(entry["at"]).timestamp(), "Cordoned"
        if entry.get("step") == "block":
            return parse_time(entry["at"]).timestamp(), "Blocked"
    return None


def decision_times(repairs: Sequence[dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """node → (first decision time, phase) over every repair of the node (twins included: the earliest)."""
    decided: dict[str, tuple[float, str]] = {}
    for repair in repairs:
        first = first_decision(repair)
        node = repair["spec"]["nodeName"]
        if first is not None and (node not in decided or first[0] < decided[node][0]):
            decided[node] = first
    return decided


def decision_latencies(offered: Offered, decided: dict[str, tuple[float, str]]) -> tuple[list[float], list[float]]:
    """Per repair: the node's first finding offered → decided. Per finding: offered → in a decided repair
    (the later of the decision and its own acceptance by intake)."""
    first = offered.first_offer()
    per_repair = [decided[n][0] - first[n] for n in decided if n in first]
    per_finding = [
        max(decided[node][0], offered.accepted[k]) - at
        for k, (node, at) in offered.offered.items()
        if k in offered.accepted and node in decided
    ]
    return per_repair, per_finding
