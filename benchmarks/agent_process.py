"""One simulated GPU node's agent as its own process, for ``agent_bench.py`` to measure.

Composed as ``repairbot agent`` composes it on a real node (``build_agent`` +
``connect_agent``: NVML event and kernel-log threads, polls every
``--interval`` seconds, the action executor with its default resync), with the
simulated node's NVML backend, sysfs tree, kernel log and host in place of the
real ones; connected to a cluster, alone in a process so its CPU, RSS and API
requests are the agent's. Runs until SIGTERM.

``python benchmarks/agent_process.py --kubeconfig K --node gpu-node-000 --root DIR [--interval 10]``
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from repairbot.agent.assemble import AgentConfig, build_agent
from repairbot.agent.service import connect_agent
from repairbot.kube.client import api_client
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.host import SimulatedHost


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--root", required=True, help="where the simulated node's sysfs and kernel log live")
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = SimulatedGpuNode(args.node, Path(args.root))
    config = AgentConfig(
        node=args.node,
        sysfs_root=node.sysfs.root,
        kmsg_path=node.kmsg_path,
        expected_gpus=node.gpu_count,
        interval=args.interval,
    )
    connected = connect_agent(build_agent(config, node.backend), api_client(args.kubeconfig), SimulatedHost(node))
    connected.start()
    print("started", flush=True)
    stop.wait()
    connected.stop()


if __name__ == "__main__":
    main()
