"""Load for the operator: findings offered on a schedule through intake, and the decisions they get.

:func:`offer_findings` sends findings through :class:`~repairbot.kube.intake.Intake`
over HTTP exactly as agents do, from a pool of sender threads (each with its
own client, as each agent has its own); a finding offered at ``t`` is sent at
``t`` or as soon as a sender is free. :class:`Decisions` watches GPURepairs
until every node's repair has left Pending; :func:`decision_times` reads when
the operator decided each one from its history (the operator's own stamp,
immune to how busy the benchmark process is).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness import RawWatch, bench_client, fatal_xid

from repairbot.kube.intake import Intake
from repairbot.model import GROUP, PLURAL, VERSION, parse_time

DECIDED = ("Cordoned", "Blocked")


@dataclass
class Offered:
    """What :func:`offer_findings` did: per finding index, the node and offer time, and when intake accepted it."""

    start: float
    offered: dict[int, tuple[str, float]] = field(default_factory=dict)
    accepted: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

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


def offer_findings(kubeconfig: str, plan: Sequence[tuple[str, int]], window: float, workers: int) -> Offered:
    """Offer one fatal Xid finding per ``(node, gpu)`` of ``plan``, evenly over ``window`` seconds (0: all at once)."""
    work: queue.Queue[tuple[int, str, int, float] | None] = queue.Queue()
    result = Offered(start=time.time() + 0.5)
    for k, (node, gpu) in enumerate(plan):
        work.put((k, node, gpu, result.start + k * window / len(plan)))
    for _ in range(workers):
        work.put(None)
    lock = threading.Lock()

    def sender() -> None:
        intake = Intake(bench_client(kubeconfig))
        while (item := work.get()) is not None:
            k, node, gpu, at = item
            time.sleep(max(0.0, at - time.time()))
            try:
                intake.report(node, [fatal_xid(79, gpu % 8, datetime.fromtimestamp(at, UTC))])
                done = time.time()
                with lock:
                    result.offered[k] = (node, at)
                    result.accepted[k] = done
            except Exception as error:  # counted and reported, never hidden
                with lock:
                    result.offered[k] = (node, at)
                    result.errors.append(f"{node}: {error}")

    threads = [threading.Thread(target=sender, name=f"sender-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


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
