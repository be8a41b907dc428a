"""The sandbox's cluster side as its own process, for benchmarks: API server, BMC, Slack, Jira, webhook.

No agents and no operator: the benchmark brings its own (agents in its process,
the operator as ``repairbot operator``), so the emulated API server does not
share a GIL with the code being measured and each process's CPU and memory
can be read apart. Prints one ``{"ready": true, ...}`` line (the sandbox's
state) when up; stops on SIGTERM.

``python benchmarks/sandbox_server.py --state-dir DIR --nodes N [--pod-termination-seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from repairbot_sim.sandbox import SandboxConfig, run_until_signalled


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--pod-termination-seconds", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = SandboxConfig(
        state_dir=Path(args.state_dir),
        nodes=args.nodes,
        pod_termination_seconds=args.pod_termination_seconds,
        agents=False,
        operator=False,
    )
    asyncio.run(run_until_signalled(config))


if __name__ == "__main__":
    main()
