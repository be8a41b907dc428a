from __future__ import annotations

from pathlib import Path

import pytest

from repairbot.detectors.base import SignalState
from repairbot.detectors.infiniband import InfinibandDetector, parse_numbered_state, parse_rate_gbps
from repairbot.model import Action, Severity
from repairbot_sim.sysfs import IB_PHYS_LINK_UP, FakeSysfs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    tree = FakeSysfs(tmp_path / "sys")
    for hca in range(2):
        tree.add_ib_port(f"mlx5_{hca}", 1)
    return tree


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("4: ACTIVE", (4, "ACTIVE")),
        ("5: LinkUp", (5, "LinkUp")),
        ("1: DOWN\n", (1, "DOWN")),
        ("4: PortConfigurationTraining", (4, "PortConfigurationTraining")),
        ("garbage", (None, "garbage")),
    ],
)
def test_parse_numbered_state(text: str, parsed: tuple[int | None, str]) -> None:
    assert parse_numbered_state(text) == parsed


@pytest.mark.parametrize(
    ("text", "gbps"),
    [("400 Gb/sec (4X NDR)", 400.0), ("200 Gb/sec (4X HDR)", 200.0), ("2.5 Gb/sec (1X SDR)", 2.5), ("", None)],
)
def test_parse_rate(text: str, gbps: float | None) -> None:
    assert parse_rate_gbps(text) == gbps


def test_healthy_ports(sysfs: FakeSysfs, clock: Clock) -> None:
    report = InfinibandDetector(sysfs.root, clock=clock).poll()
    assert report.findings == []
    assert report.observations["mlx5_0/1"]["state"] == "4: ACTIVE"
    assert report.health is not None and report.health.state is SignalState.OK


@pytest.mark.parametrize(("state", "phys"), [("1: DOWN", "2: Polling"), ("2: INIT", IB_PHYS_LINK_UP)])
def test_port_not_active_is_port_down(sysfs: FakeSysfs, clock: Clock, state: str, phys: str) -> None:
    sysfs.set_ib_port("mlx5_1", 1, state=state, phys_state=phys)
    (finding,) = InfinibandDetector(sysfs.root, clock=clock).poll().findings
    assert (finding.code, finding.action, finding.severity) == ("ib-port-down", Action.NOTIFY, Severity.CRITICAL)
    assert state in finding.evidence["mlx5_1/1"]


def test_two_ports_down_are_one_finding_naming_both(sysfs: FakeSysfs, clock: Clock) -> None:
    for hca in ("mlx5_0", "mlx5_1"):
        sysfs.set_ib_port(hca, 1, state="1: DOWN", phys_state="3: Disabled")
    (finding,) = InfinibandDetector(sysfs.root, clock=clock).poll().findings
    assert set(finding.evidence) == {"mlx5_0/1", "mlx5_1/1"}


def test_flaps_counted_within_the_window(sysfs: FakeSysfs, clock: Clock) -> None:
    detector = InfinibandDetector(sysfs.root, clock=clock, flap_threshold=3, flap_window_s=600)
    detector.poll()
    for _ in range(2):
        clock.now += 120
        sysfs.bump_ib_counter("mlx5_0", 1, "link_downed")
        assert detector.poll().findings == []
    clock.now += 120
    sysfs.bump_ib_counter("mlx5_0", 1, "link_downed")
    (finding,) = detector.poll().findings
    assert finding.code == "ib-flap" and "+3" in finding.evidence["mlx5_0/1"]


def test_flaps_spread_beyond_the_window_do_not_count(sysfs: FakeSysfs, clock: Clock) -> None:
    detector = InfinibandDetector(sysfs.root, clock=clock, flap_threshold=3, flap_window_s=600)
    detector.poll()
    for _ in range(4):
        clock.now += 400
        sysfs.bump_ib_counter("mlx5_0", 1, "link_downed")
        assert detector.poll().findings == []


def test_error_rate_above_limit(sysfs: FakeSysfs, clock: Clock) -> None:
    detector = InfinibandDetector(sysfs.root, clock=clock, error_rate_limits={"symbol_error": 10.0})
    detector.poll()
    clock.now += 60
    sysfs.bump_ib_counter("mlx5_0", 1, "symbol_error", 5)
    assert detector.poll().findings == []
    clock.now += 60
    sysfs.bump_ib_counter("mlx5_0", 1, "symbol_error", 50)
    (finding,) = detector.poll().findings
    assert (finding.code, finding.severity) == ("ib-errors", Severity.WARNING)
    assert "symbol_error 50.0/min" in finding.evidence["mlx5_0/1"]


def test_pegged_or_reset_counters_give_no_rate(sysfs: FakeSysfs, clock: Clock) -> None:
    detector = InfinibandDetector(sysfs.root, clock=clock)
    sysfs.bump_ib_counter("mlx5_0", 1, "local_link_integrity_errors", 15)  # 4-bit counter at its maximum
    detector.poll()
    clock.now += 60
    sysfs.bump_ib_counter("mlx5_0", 1, "local_link_integrity_errors", 5)
    assert detector.poll().findings == []


def test_rate_below_first_seen(sysfs: FakeSysfs, clock: Clock) -> None:
    detector = InfinibandDetector(sysfs.root, clock=clock)
    detector.poll()
    sysfs.set_ib_port("mlx5_0", 1, rate="200 Gb/sec (4X HDR)")
    (finding,) = detector.poll().findings
    assert finding.code == "ib-rate-degraded" and "first seen" in finding.evidence["mlx5_0/1"]


def test_rate_below_configured(sysfs: FakeSysfs, clock: Clock) -> None:
    sysfs.set_ib_port("mlx5_1", 1, rate="100 Gb/sec (2X NDR)")
    (finding,) = InfinibandDetector(sysfs.root, clock=clock, expected_rate_gbps=400).poll().findings
    assert finding.code == "ib-rate-degraded" and set(finding.evidence) == {"mlx5_1/1"}


def test_only_listed_ports_are_checked(sysfs: FakeSysfs, clock: Clock) -> None:
    sysfs.set_ib_port("mlx5_1", 1, state="1: DOWN", phys_state="3: Disabled")
    assert InfinibandDetector(sysfs.root, clock=clock, ports=["mlx5_0/1"]).poll().findings == []


def test_missing_tree_is_unknown(tmp_path: Path, clock: Clock) -> None:
    report = InfinibandDetector(tmp_path, clock=clock).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.UNKNOWN
