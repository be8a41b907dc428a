"""One simulation: draw the trace, run every strategy on it, gather the numbers, write the files.

``repairbot simulate`` calls :func:`simulate` and then :func:`write_outputs`;
tests call :func:`simulate` alone. The result is plain data: ``to_dict`` is
what ``results.json`` holds, identical for identical inputs apart from the
measured run time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repairbot_fleetsim.config import SimConfig, Timings
from repairbot_fleetsim.engine import Fleet, Kernel
from repairbot_fleetsim.failures import LLAMA3_MIX, LLAMA3_SOURCE, Trace, generate_trace
from repairbot_fleetsim.ledger import Ledger, StrategyResult, summarize
from repairbot_fleetsim.strategies import STRATEGIES, Strategy


@dataclass(frozen=True, slots=True)
class SimulationResult:
    config: SimConfig
    trace: Trace
    results: tuple[StrategyResult, ...]
    traces_seen: dict[str, str]  # strategy → digest of the base failures it was fed
    runtime_seconds: float

    def by_name(self, name: str) -> StrategyResult:
        return next(result for result in self.results if result.name == name)

    def ratios(self) -> dict[str, float]:
        """How the baselines compare with RepairBot (baseline ÷ RepairBot)."""
        bot = self.by_name("repairbot")
        out: dict[str, float] = {}
        for other in self.results:
            if other.name == "repairbot":
                continue
            pairs = {
                "node_hours": (other.node_hours_out, bot.node_hours_out),
                "in_place_node_hours": (in_place_hours(other), in_place_hours(bot)),
                "destructive_actions": (other.destructive_actions, bot.destructive_actions),
                "repair_p50": (other.repair_p50_h, bot.repair_p50_h),
            }
            out.update({f"{other.name}_{key}": a / b for key, (a, b) in pairs.items() if b})
        return out

    def to_dict(self) -> dict[str, Any]:
        config = self.config
        policy = config.policy.to_dict()
        return {
            "fleet": {"nodes": config.nodes, "gpusPerNode": config.gpus_per_node, "days": config.days,
                      "seed": config.seed, "failureDomainSize": config.domain_size},
            "policy": {"source": config.policy_source, "budget": policy["budget"], "breaker": policy["breaker"],
                       "lemon": policy["lemon"], "rebootsPerDay": policy["rebootsPerDay"],
                       "actionTimeouts": policy["actionTimeouts"], "validation": policy["validation"]["dcgmDiagLevel"]},
            "timings": timings_dict(config.timings),
            "failureMix": {"source": LLAMA3_SOURCE, "categories": [
                {"name": c.name, "count": c.count, "finding": c.finding, "detectedBy": c.detected_by,
                 "fixes": {fix.value: share for fix, share in c.fixes}, "stormShare": c.storm_share,
                 "inTrace": self.trace.per_category.get(c.name, 0)} for c in LLAMA3_MIX]},
            "trace": {"digest": self.trace.digest, "failures": len(self.trace.failures),
                      "events": sum(self.trace.per_category.values()), "switchStorms": self.trace.storms},
            "tracesSeen": self.traces_seen,
            "strategies": {result.name: result.to_dict() for result in self.results},
            "ratios": {key: round(value, 3) for key, value in self.ratios().items()},
            "runtimeSeconds": round(self.runtime_seconds, 3),
        }  # fmt: skip


def timings_dict(timings: Timings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in timings.__slots__:
        value = getattr(timings, name)
        out[name] = {action.value: seconds for action, seconds in value.items()} if name == "action_runtime" else value
    return out


def run_strategy(strategy: Strategy, trace: Trace, config: SimConfig) -> tuple[Ledger, str]:
    """One strategy over the whole trace; also the digest of the failures it was actually fed."""
    kernel = Kernel()
    ledger = Ledger(strategy.name)
    fleet = Fleet(config, kernel, ledger)
    fleet.start = strategy.bind(fleet)
    for failure in trace.failures:
        fleet.arrive(failure, failure.at)
    kernel.run(config.horizon)
    fleet.close()
    seen = set(ledger.seen)
    fed = Trace(tuple(f for f in trace.failures if f.id in seen), trace.storms, trace.seed,
                trace.horizon, trace.nodes, trace.domain_size)  # fmt: skip
    return ledger, fed.digest


def simulate(config: SimConfig, strategies: tuple[Strategy, ...] = STRATEGIES) -> SimulationResult:
    started = time.perf_counter()
    trace = generate_trace(
        nodes=config.nodes,
        days=config.days,
        seed=config.seed,
        domain_size=config.domain_size,
        poll_interval=config.timings.poll_interval,
        storm_jitter=config.timings.storm_jitter,
    )
    results = []
    seen: dict[str, str] = {}
    for strategy in strategies:
        ledger, digest = run_strategy(strategy, trace, config)
        seen[strategy.name] = digest
        results.append(
            summarize(ledger, label=strategy.label, horizon=config.horizon, gpus_per_node=config.gpus_per_node)
        )
    return SimulationResult(config, trace, tuple(results), seen, time.perf_counter() - started)


def write_outputs(result: SimulationResult, out_dir: Path, *, plot: bool = True) -> list[Path]:
    """``results.json``, ``report.md`` and (unless ``plot`` is off) ``report.png`` under ``out_dir``."""
    from repairbot_fleetsim.report import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if plot:
        from repairbot_fleetsim.plot import render_plot

        written.append(render_plot(result, out_dir / "report.png"))
    report = out_dir / "report.md"
    report.write_text(render_report(result, plot_name="report.png" if plot else None), encoding="utf-8")
    data = out_dir / "results.json"
    data.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [report, *written, data]


def in_place_hours(result: StrategyResult) -> float:
    """Node-hours a repair strategy decides: in-place repairs and healthy nodes taken out, not RMA or network waits."""
    return result.node_hours_by_outcome["repaired"] + result.node_hours_by_outcome["no-fault"]
