"""One node agent per simulated GPU node, connected to the sandbox's API server.

Each simulated node gets a fake NVML backend, a fake sysfs tree and a kernel
log file (:class:`~repairbot_sim.gpu.SimulatedGpuNode`), and runs the very
same :class:`~repairbot.agent.runner.NodeAgent` and executor a real node
runs, built by the same assembly code. Only the backends differ.
"""

from __future__ import annotations

import functools
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
from repairbot.agent.tracker import FindingTracker
from repairbot.detectors.bursts import BurstBoundary
from repairbot.kube.client import raw_call
from repairbot.model import Finding, format_time
from repairbot_sim.control import AGENT_RESTART, NodeHandle
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.host import ActionTimes, SimulatedHost

log = logging.getLogger(__name__)


@dataclass
class SimulatedNodeAgent:
    """A simulated node and the agent watching it.

    ``build`` makes a fresh agent for this node (a new pod: new process, empty memory); the node itself —
    its GPUs, kernel-log file and boot id — outlives every agent, as a machine outlives its pods.
    """

    node: SimulatedGpuNode
    host: SimulatedHost
    connected: ConnectedAgent
    build: Callable[[], ConnectedAgent] | None = None
    restarts: int = 0
    kubelet: SimulatedKubelet | None = None

    @property
    def agent(self) -> NodeAgent:
        return self.connected.agent

    def handle(self) -> NodeHandle:
        return NodeHandle(inject=self.inject, describe=self.describe)

    def inject(self, fault: str, gpu: int = 0) -> None:
        """A fault on the node, or ``agent-restart``: the DaemonSet replaced this node's agent pod."""
        if fault == AGENT_RESTART:
            self.restart_agent()
            return
        self.node.inject(fault, gpu)

    def restart_agent(self) -> None:
        """Stop this node's agent and start a fresh one, as a DaemonSet rollout does; the node is untouched.

        NVML delivers an event only to an event set registered when it happens, so events the old
        process had not read yet die with it, as they would on a real node.
        """
        if self.build is None:
            raise ValueError(f"node {self.node.name}: this sandbox cannot restart agents")
        old = self.connected
        old.stop()
        old.executor.api.close()  # the old pod's connections go with it
        self.node.backend.drop_events()
        self.connected = self.build()
        self.connected.start()
        self.restarts += 1
        log.info("simulated agent restarted node=%s restarts=%d", self.node.name, self.restarts)

    def describe(self) -> dict[str, Any]:
        report = self.agent.tracker.condition([], starting=not self.agent.ready)
        return {
            "bootId": self.node.boot_id,
            "gpus": self.node.gpu_count,
            "gpuHealthy": report.status,
            "reason": report.reason,
            "active": [f.code for f in self.agent.tracker.active()],
            "agentRestarts": self.restarts,
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


def _connect_node(
    node: SimulatedGpuNode,
    host: SimulatedHost,
    connect: Callable[[str], client.ApiClient],
    kubelet: SimulatedKubelet,
    interval: float,
    clock_offset: timedelta | None = None,
    report_codes: tuple[str, ...] = (),
    kmsg_report_interval: float = 60.0,
) -> ConnectedAgent:
    """One agent process for ``node``: detectors, intake and executor, all new; the node's kubelet stays."""
    config = AgentConfig(
        node=node.name,
        sysfs_root=node.sysfs.root,
        kmsg_path=node.kmsg_path,
        expected_gpus=node.gpu_count,
        interval=interval,
        state_dir=node.root / "var-lib-repairbot",  # the node's hostPath: outlives the agent
        counted_codes=report_codes,  # what the chart's --report-codes would say for this policy
        kmsg_report_interval_s=kmsg_report_interval,
    )
    bursts = BurstBoundary()
    agent = NodeAgent(
        node=node.name,
        detectors=polled_detectors(config, node.backend),
        event_sources=event_sources(
            config, node.backend, boot_id=lambda: node.boot_id, uptime=node.uptime, bursts=bursts
        ),
        interval=interval,
        bursts=bursts,
        tracker=FindingTracker(counted_codes=config.counted_codes),
    )
    # One client per agent, as on a real fleet: each agent is its own process with its own pool and token.
    api = connect(node.name)
    connected = connect_agent(agent, api, host, config.state_dir)
    if clock_offset and agent.sink is not None:
        agent.sink = SkewedClockSink(agent.sink, clock_offset)
    connected.executor.resync_seconds = max(1.0, interval)
    host.on_reboot_started = kubelet.going_down
    host.on_reboot_finished = _after_boot(connected, kubelet)
    return connected


@dataclass
class SimulatedFleet:
    """Agents for every simulated node; ``start()``/``stop()`` run and end them all."""

    members: dict[str, SimulatedNodeAgent] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        names: list[str],
        root: Path,
        connect: Callable[[str], client.ApiClient],
        *,
        kubelet: Callable[[str], client.ApiClient] | None = None,
        interval: float = 1.0,
        times: ActionTimes | None = None,
        clock_offset: timedelta = timedelta(0),
        report_codes: tuple[str, ...] = (),
        kmsg_report_interval: float = 60.0,
    ) -> SimulatedFleet:
        """``connect(node)``: a client with that node's agent credentials (one per agent process);
        ``kubelet(node)``: one with the node's own, which the simulated kubelet reports node status with
        (a kubelet is no RepairBot component; default: ``connect``).
        ``clock_offset``: how far every node's clock is off (e.g. 60 s ahead) in what its agent reports.
        ``report_codes``: the finding classes the operator's escalation rules count (``--report-codes``)."""
        fleet = cls()
        for name in names:
            node = SimulatedGpuNode(name, root / name)
            host = SimulatedHost(node, times or ActionTimes())
            node_kubelet = SimulatedKubelet((kubelet or connect)(name), node)
            member = SimulatedNodeAgent(
                node,
                host,
                _connect_node(
                    node, host, connect, node_kubelet, interval, clock_offset, report_codes, kmsg_report_interval
                ),
            )
            member.build = functools.partial(
                _connect_node,
                node,
                host,
                connect,
                node_kubelet,
                interval,
                clock_offset,
                report_codes,
                kmsg_report_interval,
            )
            member.kubelet = node_kubelet
            fleet.members[name] = member
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
            if member.kubelet is not None:
                member.kubelet.api.close()
