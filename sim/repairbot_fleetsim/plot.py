"""The report's picture: node-hours out of service over time, where they go, and the destructive actions.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so it
needs no display and leaves pyplot's global state (and any other test's
backend) alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from repairbot_fleetsim.ledger import StrategyResult
from repairbot_fleetsim.report import format_duration_s
from repairbot_fleetsim.simulate import SimulationResult

COLOURS = {"repairbot": "#1b7837", "polling": "#2166ac", "manual": "#b2182b"}
CAUSES = (("repaired", "repaired\nin place"), ("no-fault", "healthy node\ntaken out"),
          ("network", "waiting for\nnetwork team"), ("maintenance", "host\nmaintenance"))  # fmt: skip
ACTIONS = (("gpu-reset", "GPU reset"), ("reboot", "reboot"), ("power-cycle", "power cycle"))


def render_plot(result: SimulationResult, path: Path) -> Path:
    figure = Figure(figsize=(14, 9.5), layout="constrained")
    FigureCanvasAgg(figure)
    (everything, no_rma), (causes, actions) = figure.subplots(2, 2)
    _over_time(everything, result, lambda r: r.series_hours)
    everything.set_title("Cumulative node-hours out of service, all causes")
    _over_time(no_rma, result, lambda r: r.series_hours_no_rma)
    rma = format_duration_s(result.config.timings.replacement)
    no_rma.set_title(f"The same without hardware replacements\n({rma} RMAs: the same under every strategy)")
    _grouped(causes, result, CAUSES, lambda r, key: r.node_hours_by_outcome[key])
    causes.set_ylabel("node-hours")
    causes.set_title("Node-hours by cause, hardware replacement left out")
    _grouped(actions, result, ACTIONS, lambda r, key: r.actions_by_type[key])
    actions.set_ylabel("actions")
    actions.set_title("Destructive actions\n(hatched: unneeded, on a healthy node or a fabric fault)")
    _unneeded(actions, result)
    config = result.config
    figure.suptitle(
        f"{config.nodes:,} H100 nodes, {config.days:g} days, Llama 3 failure mix, seed {config.seed}",
        fontweight="bold",
    )
    figure.savefig(path, dpi=110)
    return path


def _over_time(ax: Axes, result: SimulationResult, series: Callable[[StrategyResult], list[float]]) -> None:
    for strategy in result.results:
        points = series(strategy)
        days = [hour / 24 for hour in range(len(points))]
        label = f"{strategy.label} ({points[-1]:,.0f})"
        ax.plot(days, points, label=label, color=COLOURS.get(strategy.name), linewidth=1.6)
    ax.set_xlabel("day")
    ax.set_ylabel("node-hours")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _grouped(
    ax: Axes,
    result: SimulationResult,
    groups: tuple[tuple[str, str], ...],
    value: Callable[[StrategyResult, str], float],
) -> None:
    width = 0.8 / len(result.results)
    for offset, strategy in enumerate(result.results):
        xs = [index + (offset - (len(result.results) - 1) / 2) * width for index in range(len(groups))]
        heights = [value(strategy, key) for key, _ in groups]
        bars = ax.bar(xs, heights, width, label=strategy.label, color=COLOURS.get(strategy.name))
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), [label for _, label in groups], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _unneeded(ax: Axes, result: SimulationResult) -> None:
    """Hatch over each bar the part of those actions that nothing needed."""
    width = 0.8 / len(result.results)
    for offset, strategy in enumerate(result.results):
        for index, (key, _) in enumerate(ACTIONS):
            count = strategy.unneeded_by_type[key]
            if count:
                x = index + (offset - (len(result.results) - 1) / 2) * width
                ax.bar([x], [count], width, fill=False, hatch="///", edgecolor="black", linewidth=0)
