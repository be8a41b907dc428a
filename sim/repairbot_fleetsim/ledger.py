"""What happened to the fleet under one strategy: the raw record, and the numbers a report prints.

The :class:`Ledger` is written while a strategy runs (every out-of-service
interval, action, page and breaker trip); :func:`summarize` turns it into a
:class:`StrategyResult` of plain numbers, which is what the report, the plot
and ``results.json`` read. Nothing here knows how a strategy decides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from repairbot.model import Action

OUTCOMES = ("repaired", "quarantined", "network", "maintenance", "no-fault", "unfinished")
"""Why a node was out of service: repaired in place, replaced after quarantine, waited for the network
team, host maintenance, taken out although healthy (a software crash), or still out when the run ended."""


@dataclass(frozen=True, slots=True)
class ActionTaken:
    at: float
    node: int
    action: Action
    by: str  # automation | human
    cured: bool  # did this action fix the failure?
    needed: bool  # did the failure need anything done to the node at all?
    in_storm: bool
    failure: str


@dataclass(frozen=True, slots=True)
class Resolution:
    failure: str
    category: str
    outcome: str
    failed_at: float
    returned_at: float


@dataclass
class Ledger:
    strategy: str
    seen: list[str] = field(default_factory=list)
    intervals: list[tuple[int, float, float, str]] = field(default_factory=list)
    actions: list[ActionTaken] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    mtta: list[float] = field(default_factory=list)
    pages: int = 0
    breaker_trips: list[tuple[float, str, str]] = field(default_factory=list)  # (when, why, incident id)
    fleet_breaker_trips: int = 0  # of those, the fleet-wide breaker's (the rest are one leaf's)
    breaker_blocked_seconds: float = 0.0
    breaker_held_bystanders: list[float] = field(default_factory=list)  # seconds, repairs outside any storm
    reboot_cap_waits: int = 0
    quarantines: int = 0
    lemons: int = 0
    merged: int = 0
    relapses: int = 0


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """One strategy's numbers for one run. Hours are node-hours unless named otherwise."""

    name: str
    label: str
    node_hours_out: float
    gpu_hours_lost: float
    node_hours_by_outcome: dict[str, float]
    destructive_actions: int
    actions_by_type: dict[str, int]
    unneeded_actions: int
    unneeded_by_type: dict[str, int]
    storm_actions: int
    failed_actions: int
    breaker_trips: int
    fleet_breaker_trips: int
    breaker_blocked_hours: float
    bystanders_held: int
    bystander_hold_h: float
    bystander_hold_max_h: float
    quarantines: int
    lemons: int
    repairs: int
    network_waits: int
    pages: int
    relapses: int
    merged: int
    reboot_cap_waits: int
    acknowledged: int
    mtta_mean_s: float
    mtta_p50_s: float
    mtta_p99_s: float
    repair_p50_h: float
    repair_p99_h: float
    restore_p50_h: float
    restore_p99_h: float
    failures_seen: int
    series_hours: list[float]  # cumulative node-hours out of service, one point per hour
    series_hours_no_rma: list[float]  # the same, leaving out nodes whose incident ended in hardware replacement

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; the hourly series are thinned to one point per 6 hours (the plot uses them all)."""
        out = {name: _rounded(getattr(self, name)) for name in self.__slots__ if not name.startswith("series_")}
        out["series_every_6h"] = {
            "node_hours": _rounded(self.series_hours[::6]),
            "node_hours_no_rma": _rounded(self.series_hours_no_rma[::6]),
        }
        return out


def summarize(ledger: Ledger, *, label: str, horizon: float, gpus_per_node: int) -> StrategyResult:
    """The ledger's numbers. Intervals still open at the horizon count up to the horizon."""
    by_outcome = {outcome: 0.0 for outcome in OUTCOMES}
    for _, start, end, outcome in ledger.intervals:
        by_outcome[outcome] += max(0.0, min(end, horizon) - start) / 3600.0
    node_hours = sum(by_outcome.values())
    counts = Counter(action.action.value for action in ledger.actions)
    unneeded = Counter(action.action.value for action in ledger.actions if not action.needed)
    repaired = [r for r in ledger.resolutions if r.outcome == "repaired"]
    restored = [r for r in ledger.resolutions if r.outcome != "no-fault"]
    return StrategyResult(
        name=ledger.strategy,
        label=label,
        node_hours_out=node_hours,
        gpu_hours_lost=node_hours * gpus_per_node,
        node_hours_by_outcome=by_outcome,
        destructive_actions=len(ledger.actions),
        actions_by_type={action.value: counts.get(action.value, 0) for action in _COUNTED},
        unneeded_actions=sum(unneeded.values()),
        unneeded_by_type={action.value: unneeded.get(action.value, 0) for action in _COUNTED},
        storm_actions=sum(1 for a in ledger.actions if a.in_storm),
        failed_actions=sum(1 for a in ledger.actions if not a.cured),
        breaker_trips=len(ledger.breaker_trips),
        fleet_breaker_trips=ledger.fleet_breaker_trips,
        breaker_blocked_hours=ledger.breaker_blocked_seconds / 3600.0,
        bystanders_held=len(ledger.breaker_held_bystanders),
        bystander_hold_h=sum(ledger.breaker_held_bystanders) / 3600.0,
        bystander_hold_max_h=max(ledger.breaker_held_bystanders, default=0.0) / 3600.0,
        quarantines=ledger.quarantines,
        lemons=ledger.lemons,
        repairs=len(repaired),
        network_waits=sum(1 for r in ledger.resolutions if r.outcome == "network"),
        pages=ledger.pages,
        relapses=ledger.relapses,
        merged=ledger.merged,
        reboot_cap_waits=ledger.reboot_cap_waits,
        acknowledged=len(ledger.mtta),
        mtta_mean_s=sum(ledger.mtta) / len(ledger.mtta) if ledger.mtta else 0.0,
        mtta_p50_s=percentile(ledger.mtta, 50),
        mtta_p99_s=percentile(ledger.mtta, 99),
        repair_p50_h=percentile([r.returned_at - r.failed_at for r in repaired], 50) / 3600.0,
        repair_p99_h=percentile([r.returned_at - r.failed_at for r in repaired], 99) / 3600.0,
        restore_p50_h=percentile([r.returned_at - r.failed_at for r in restored], 50) / 3600.0,
        restore_p99_h=percentile([r.returned_at - r.failed_at for r in restored], 99) / 3600.0,
        failures_seen=len(ledger.seen),
        series_hours=cumulative_hours(ledger.intervals, horizon),
        series_hours_no_rma=cumulative_hours([i for i in ledger.intervals if i[3] != "quarantined"], horizon),
    )


def _rounded(value: Any) -> Any:
    """Floats to 3 decimals (hourly series to 2), so results.json stays readable and diffable."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [round(item, 2) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


_COUNTED = (Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT, Action.POWER_CYCLE)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cumulative_hours(intervals: list[tuple[int, float, float, str]], horizon: float) -> list[float]:
    """Node-hours out of service accumulated by each whole hour of the run (a sweep over interval edges)."""
    edges: list[tuple[float, int]] = []
    for _, start, end, _ in intervals:
        if start < horizon:
            edges.append((start, 1))
            edges.append((min(end, horizon), -1))
    edges.sort()
    series: list[float] = []
    total = 0.0
    active = 0
    last = 0.0
    index = 0
    for hour in range(int(horizon // 3600) + 1):
        mark = hour * 3600.0
        while index < len(edges) and edges[index][0] <= mark:
            at, step = edges[index]
            total += active * (at - last)
            active += step
            last = at
            index += 1
        series.append((total + active * (mark - last)) / 3600.0)
    return series
