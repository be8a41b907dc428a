"""``repairbot simulate``: the fleet simulation's sub-command, registered by the ``repairbot-sim`` distribution."""

from __future__ import annotations

import argparse
from pathlib import Path

from repairbot.cli import positive_int


def _cmd_simulate(args: argparse.Namespace) -> int:
    from repairbot_fleetsim.console import run_simulate

    return run_simulate(
        nodes=args.nodes,
        days=args.days,
        seed=args.seed,
        out_dir=Path(args.out),
        plot=not args.no_plot,
        policy_path=Path(args.policy) if args.policy else None,
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to ``repairbot``'s sub-commands."""
    simulate = commands.add_parser(
        "simulate",
        help="simulate a GPU fleet for weeks: RepairBot vs a polling checker vs manual on-call",
        description="A discrete-event simulation of an H100 fleet with the failure mix of Meta's Llama 3 record, "
        "correlated leaf-switch failures included, run under RepairBot's policy, a 5-minute polling checker and a "
        "human on call with one seeded trace. Writes report.md, report.png and results.json.",
    )
    simulate.add_argument("--nodes", type=positive_int, default=2048, help="8-GPU nodes (default 2048)")
    simulate.add_argument("--days", type=float, default=54.0, help="simulated days (default 54)")
    simulate.add_argument("--seed", type=int, default=1, help="the failure trace's seed (default 1)")
    simulate.add_argument("--out", default="benchmarks/results/fleetsim", help="output directory")
    simulate.add_argument("--no-plot", action="store_true", help="skip report.png")
    simulate.add_argument("--policy", default=None, help="RepairBot policy YAML (default: the built-in policy)")
    simulate.set_defaults(handler=_cmd_simulate)
