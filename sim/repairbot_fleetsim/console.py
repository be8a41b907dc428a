"""``repairbot simulate`` on a terminal: run, write the files, print the comparison and where it went."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from repairbot.policy import PolicyError, load_policy
from repairbot_fleetsim.config import SimConfig
from repairbot_fleetsim.report import RESULT_ROWS
from repairbot_fleetsim.simulate import SimulationResult, simulate, write_outputs


def run_simulate(
    *,
    nodes: int,
    days: float,
    seed: int,
    out_dir: Path,
    plot: bool = True,
    policy_path: Path | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Exit code 0 when the files were written; 2 for bad arguments or a bad policy file."""
    err = sys.stderr
    if not days > 0:
        print(f"repairbot simulate: --days must be above 0, got {days:g}", file=err)
        return 2
    config = SimConfig(nodes=nodes, days=days, seed=seed)
    if policy_path is not None:
        try:
            config = SimConfig(nodes=nodes, days=days, seed=seed, policy=load_policy(policy_path),
                               policy_source=str(policy_path))  # fmt: skip
        except (OSError, PolicyError) as error:
            print(f"repairbot simulate: policy {policy_path}: {error}", file=err)
            return 2
    result = simulate(config)
    try:
        written = write_outputs(result, out_dir, plot=plot)
    except OSError as error:
        print(f"repairbot simulate: cannot write to {out_dir}: {error}", file=err)
        return 1
    console = Console(file=stdout or sys.stdout, width=140, highlight=False)
    console.print(summary_table(result))
    console.print(f"simulated in {result.runtime_seconds:.2f} s; trace {result.trace.digest}, same for every strategy")
    for path in written:
        console.print(f"wrote {path}")
    return 0


def summary_table(result: SimulationResult) -> Table:
    config = result.config
    title = (
        f"{config.nodes:,} nodes x {config.gpus_per_node} GPUs, {config.days:g} days, seed {config.seed}: "
        f"{sum(result.trace.per_category.values())} failure events, {result.trace.storms} leaf-switch storms"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for strategy in result.results:
        table.add_column(strategy.label, justify="right")
    for name, cell in RESULT_ROWS:
        table.add_row(name, *(cell(strategy) for strategy in result.results))
    return table
