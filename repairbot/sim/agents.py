"""One node agent per simulated GPU node, connected to the sandbox's API server.

Each simulated node gets a fake NVML backend, a fake sysfs tree and a kernel
log file (:class:`~repairbot.sim.gpu.SimulatedGpuNode`), and runs the very
same :class:`~repairbot.agent.runner.NodeAgent` and executor a real node
runs, built by the same assembly code. Only the backends differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client

from repairbot.agent.assemble import AgentConfig, event_sources, polled_detectors
from repairbot.agent.runner import FindingSink, NodeAgent
from repairbot.agent.service import ConnectedAgent, connect_agent
from repairbot.kube.client import raw_call
from repairbot.model import Finding, format_time
from repairbot.sim.control import NodeHandle
from repairbot.sim.gpu import SimulatedGpuNode
from repairbot.sim.host import ActionTimes, SimulatedHost

log = logging.getLogger(__name__)


@dataclass
class SimulatedNodeAgent:
    """A simulated node and the agent watching it."""

    node: SimulatedGpuNode
    host: SimulatedHost
    connected: ConnectedAgent

    @property
    def agent(self) -> NodeAgent:
        return self.connected.agent

    def handle(self) -> NodeHandle:
        return NodeHandle(inject=self.node.inject, describe=self.describe)

    def describe(self) -> dict[str, Any]:
        report = self.agent.tracker.condition([])
        return {
            "bootId": self.node.boot_id,
            "gpus": self.node.gpu_count,
            "gpuHealthy": report.status,
            "reason": report.reason,
            "active": [f.code for f in self.agent.tracker.active()],
        }


@dataclass
class SimulatedKubelet:
    """The one thing the sandbox needs of a kubelet: a node goes NotReady while it reboots and
    comes back Ready with its new ``status.nodeInfo.bootID`` — which is how the operator sees a
    power cycle finish."""

    api: client.ApiClient
    node: SimulatedGpuNode

    def going_down(self) -> None:
        self._report("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status (rebooting).")

    def back_up(self) -> None:
        self._report("True", "KubeletReady", "kubelet is posting ready status")

    def _report(self, status: str, reason: str, message: str) -> None:
        now = format_time(datetime.now(UTC))
        ready = {"type": "Ready", "status": status, "reason": reason, "message": message,
                 "lastHeartbeatTime": now, "lastTransitionTime": now}  # fmt: skip
        body = {"status": {"conditions": [ready], "nodeInfo": {"bootID": self.node.boot_id}}}
        try:
            raw_call(client.CoreV1Api(self.api).patch_node_status, self.node.name, body)
        except Exception as error:  # a kubelet retries at its next heartbeat; so does the operator
            log.debug("simulated kubelet could not report node=%s error=%s", self.node.name, error)


def _after_boot(connected: ConnectedAgent, kubelet: SimulatedKubelet) -> Callable[[], None]:
    """After a simulated reboot: the kubelet reports the new boot id, and the executor notices it at once
    (a real agent restarts with the node and finds its request on start-up)."""

    def back() -> None:
        kubelet.back_up()
        try:
            connected.executor.reconcile()
        except Exception as error:  # the executor's own loop retries; this is only a shortcut
            log.debug("post-reboot reconcile failed node=%s error=%s", connected.agent.node, error)

    return back


@dataclass(slots=True)
class SkewedClockSink:
    """The sink of an agent whose node clock is ``offset`` off: every time it reports moves with it.

    A sim knob, not a product one: real fleets have nodes with wrong clocks
    (NTP down, a bad RTC), and the operator must not let them decide its
    safety windows.
    """

    inner: FindingSink
    offset: timedelta

    def report(self, node: str, findings: list[Finding]) -> None:
        self.inner.report(node, [self._skewed(f) for f in findings])

    def _skewed(self, finding: Finding) -> Finding:
        last = finding.last_seen + self.offset if finding.last_seen is not None else None
        return replace(finding, first_seen=finding.first_seen + self.offset, last_seen=last)


@dataclass
class SimulatedFleet:
    """Agents for every simulated node; ``start()``/``stop()`` run and end them all."""

    members: dict[str, SimulatedNodeAgent] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        names: list[str],
        root: Path,
        connect: Callable[[], client.ApiClient],
        *,
        interval: float = 1.0,
        times: ActionTimes | None = None,
        clock_offset: timedelta = timedelta(0),
    ) -> SimulatedFleet:
        """``clock_offset``: how far every node's clock is off (e.g. 60 s ahead) in what its agent reports."""
        fleet = cls()
        for name in names:
            node = SimulatedGpuNode(name, root / name)
            config = AgentConfig(
                node=name,
                sysfs_root=node.sysfs.root,
                kmsg_path=node.kmsg_path,
                expected_gpus=node.gpu_count,
                interval=interval,
            )
            agent = NodeAgent(
                node=name,
                detectors=polled_detectors(config, node.backend),
                event_sources=event_sources(config, node.backend),
                interval=interval,
            )
            host = SimulatedHost(node, times or ActionTimes())
            # One client per node, as on a real fleet: each agent is its own process with its own pool.
            api = connect()
            connected = connect_agent(agent, api, host)
            if clock_offset and agent.sink is not None:
                agent.sink = SkewedClockSink(agent.sink, clock_offset)
            connected.executor.resync_seconds = max(1.0, interval)
            kubelet = SimulatedKubelet(api, node)
            host.on_reboot_started = kubelet.going_down
            host.on_reboot_finished = _after_boot(connected, kubelet)
            fleet.members[name] = SimulatedNodeAgent(node, host, connected)
        return fleet

    def handles(self) -> dict[str, NodeHandle]:
        return {name: member.handle() for name, member in self.members.items()}

    def start(self) -> None:
        for member in self.members.values():
            member.connected.start()
        log.info("simulated agents started nodes=%d", len(self.members))

    def stop(self) -> None:
        for member in self.members.values():
            member.connected.request_stop()
        for member in self.members.values():
            member.connected.join()
