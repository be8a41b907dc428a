"""``repairbot inject NODE agent-restart``: a fresh agent for the node, the node itself untouched."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from repairbot.agent.service import ConnectedAgent
from repairbot_sim.agents import SimulatedNodeAgent
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.host import ActionTimes, SimulatedHost


@dataclass
class FakeApi:
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeConnected:
    """What restart needs of a running agent: start, stop, and the API client it owns."""

    log: list[str]
    name: str
    executor: Any = field(default=None)

    def __post_init__(self) -> None:
        self.executor = type("Executor", (), {"api": FakeApi()})()

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def member_with(tmp_path: Path) -> tuple[SimulatedNodeAgent, list[str], FakeConnected]:
    node = SimulatedGpuNode("gpu-node-001", tmp_path / "gpu-node-001")
    log: list[str] = []
    first = FakeConnected(log, "agent-1")
    made = iter(range(2, 10))
    member = SimulatedNodeAgent(node, SimulatedHost(node, ActionTimes()), cast(ConnectedAgent, first))
    member.build = lambda: cast(ConnectedAgent, FakeConnected(log, f"agent-{next(made)}"))
    return member, log, first


def test_agent_restart_replaces_the_agent_and_leaves_the_node_as_it_was(tmp_path: Path) -> None:
    member, log, first = member_with(tmp_path)
    member.inject("xid:79", 2)
    kmsg_before, boot_before = member.node.kmsg_lines(), member.node.boot_id
    member.inject("agent-restart", 0)
    assert log == ["stop agent-1", "start agent-2"]
    assert first.executor.api.closed  # the old pod's connections go with it
    assert member.restarts == 1
    assert (member.node.kmsg_lines(), member.node.boot_id) == (kmsg_before, boot_before)
    # NVML events the old process had not read die with it, as they would on a real node.
    assert member.node.backend.wait_event(0) is None


def test_other_faults_still_reach_the_node(tmp_path: Path) -> None:
    member, log, _ = member_with(tmp_path)
    member.inject("ecc-dbe", 1)
    assert log == [] and member.node.backend.device(1).volatile_dbe == 1
    with pytest.raises(ValueError, match="unknown fault"):
        member.inject("no-such-fault", 0)
