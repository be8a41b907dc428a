"""``repairbot sandbox``: a small GPU cluster on 127.0.0.1 that real tools can talk to.

The sandbox starts the emulated Kubernetes API server, installs the chart's
GPURepair CRD, seeds GPU nodes with workloads and a PodDisruptionBudget, and
writes a kubeconfig plus ``state.json`` (every URL it serves) into a state
directory. ``kubectl``, the kubernetes client and kopf then work against it as
against a real cluster. Later parts (agents, operator, webhook, Slack and Jira
fakes) join the same sandbox and add their URLs to ``state.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repairbot.sim import fleet
from repairbot.sim.crd import load_crd
from repairbot.sim.kubeapi import KubeApiServer, write_kubeconfig

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"


@dataclass(slots=True)
class SandboxConfig:
    state_dir: Path
    nodes: int = 8
    host: str = "127.0.0.1"
    api_port: int = 0
    pod_termination_seconds: int | None = None


@dataclass(slots=True)
class Sandbox:
    """One running sandbox. ``start()`` then ``stop()``; both idempotent enough for tests."""

    config: SandboxConfig
    api: KubeApiServer = field(default_factory=KubeApiServer)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.config.state_dir / KUBECONFIG_FILE

    async def start(self) -> dict[str, Any]:
        """Bring the cluster up and return the state written to ``state.json``."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        api_url = await self.api.start(host=self.config.host, port=self.config.api_port)
        self.api.create_object(load_crd())
        for manifest in fleet.cluster_objects(
            self.config.nodes, termination_seconds=self.config.pod_termination_seconds
        ):
            self.api.create_object(manifest)
        write_kubeconfig(api_url, self.kubeconfig)
        self.state = {
            "ready": True,
            "api": api_url,
            "kubeconfig": str(self.kubeconfig.resolve()),
            "control": f"{api_url}/_sim",
            "nodes": [fleet.node_name(i) for i in range(self.config.nodes)],
        }
        self._write_state()
        log.info("sandbox ready api=%s nodes=%d", api_url, self.config.nodes)
        return self.state

    async def stop(self) -> None:
        await self.api.stop()
        state_file = self.config.state_dir / STATE_FILE
        if state_file.exists():
            self.state["ready"] = False
            self._write_state()

    def _write_state(self) -> None:
        path = self.config.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


async def run_until_signalled(config: SandboxConfig) -> None:
    """Serve until SIGINT/SIGTERM, printing one ``{"ready": true, ...}`` line when up."""
    sandbox = Sandbox(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    state = await sandbox.start()
    print(json.dumps(state), flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()
        log.info("sandbox stopped")


def read_state(state_dir: Path) -> dict[str, Any]:
    """What a running sandbox wrote; a clear error if none runs there."""
    path = state_dir / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no sandbox state at {path}: start one with `repairbot sandbox --state-dir {state_dir}`")
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state
