"""``repairbot``: one entry point for every component and every SRE chore.

Sub-commands are added as capabilities land; each one is a small function
that parses nothing itself and returns a process exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from repairbot import __version__

Handler = Callable[[argparse.Namespace], int]


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from repairbot.sim.sandbox import SandboxConfig, run_until_signalled

    config = SandboxConfig(
        state_dir=Path(args.state_dir),
        nodes=args.nodes,
        api_port=args.port,
        pod_termination_seconds=args.pod_termination_seconds,
    )
    asyncio.run(run_until_signalled(config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from repairbot.sim.demo import run_demo

    return asyncio.run(run_demo(state_dir=Path(args.state_dir), nodes=args.nodes))


def _cmd_kmsg(args: argparse.Namespace) -> int:
    from repairbot.agent.kmsg_report import write_report

    if args.file == "-":
        write_report(sys.stdin, sys.stdout, as_json=args.json)
        return 0
    try:
        with open(args.file, encoding="utf-8", errors="replace") as source:
            write_report(source, sys.stdout, as_json=args.json)
    except OSError as error:
        print(f"repairbot kmsg: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repairbot",
        description="RepairBot repairs GPU nodes in Kubernetes: detect, cordon, drain, repair, validate, return.",
    )
    parser.add_argument("--version", action="version", version=f"repairbot {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = commands.add_parser(
        "sandbox",
        help="run a simulated GPU cluster (emulated Kubernetes API) on 127.0.0.1",
        description="Start the embedded simulated cluster and serve until interrupted. "
        "Point kubectl at STATE_DIR/kubeconfig.",
    )
    sandbox.add_argument("--state-dir", default="rb-state", help="where kubeconfig and state.json go")
    sandbox.add_argument("--nodes", type=_positive_int, default=8, help="simulated GPU nodes (default 8)")
    sandbox.add_argument("--port", type=int, default=0, help="API server port (default: any free port)")
    sandbox.add_argument(
        "--pod-termination-seconds",
        type=int,
        default=None,
        help="how long evicted training pods take to terminate (default: at once)",
    )
    sandbox.set_defaults(handler=_cmd_sandbox)

    kmsg = commands.add_parser(
        "kmsg",
        help="parse kernel-log text (dmesg, journal, /dev/kmsg) and print the GPU findings in it",
    )
    kmsg.add_argument("file", nargs="?", default="-", help="a log file, or - for standard input (default)")
    kmsg.add_argument("--json", action="store_true", help="one JSON object per finding")
    kmsg.set_defaults(handler=_cmd_kmsg)

    demo = commands.add_parser("demo", help="a short scripted walk through the simulated cluster")
    demo.add_argument("--state-dir", default="rb-state", help="where kubeconfig and state.json go")
    demo.add_argument("--nodes", type=_positive_int, default=8)
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
