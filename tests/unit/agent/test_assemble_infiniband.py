"""The agent's InfiniBand options reach the detector: a port left out is never reported, a slow link is."""

from __future__ import annotations

from pathlib import Path

from repairbot.agent.assemble import AgentConfig, polled_detectors
from repairbot.cli import build_parser
from repairbot.detectors.infiniband import InfinibandDetector
from repairbot_sim.fake_nvml import FakeGpuBackend
from repairbot_sim.sysfs import IB_PHYS_POLLING, IB_STATE_DOWN, FakeSysfs


def infiniband(config: AgentConfig) -> InfinibandDetector:
    [detector] = [d for d in polled_detectors(config, FakeGpuBackend.hgx_h100("n")) if d.name == "infiniband"]
    assert isinstance(detector, InfinibandDetector)
    return detector


def test_a_port_left_out_on_purpose_is_never_reported(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path)
    sysfs.add_ib_port("mlx5_0", 1)
    sysfs.add_ib_port("mlx5_1", 1)
    sysfs.set_ib_port("mlx5_1", 1, state=IB_STATE_DOWN, phys_state=IB_PHYS_POLLING)  # no cable, by design
    every = infiniband(AgentConfig(node="n", sysfs_root=tmp_path)).poll().findings
    assert [f.code for f in every] == ["ib-port-down"]
    chosen = infiniband(AgentConfig(node="n", sysfs_root=tmp_path, ib_ports=("mlx5_0/1",))).poll().findings
    assert chosen == []


def test_the_cli_splits_the_port_list_and_reads_the_rate() -> None:
    args = build_parser().parse_args(["agent", "--ib-ports", "mlx5_0/1, mlx5_1/1", "--ib-rate-gbps", "400"])
    assert (args.ib_ports, args.ib_rate_gbps) == ("mlx5_0/1, mlx5_1/1", 400.0)
