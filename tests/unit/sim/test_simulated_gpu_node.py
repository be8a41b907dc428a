"""Every fault SimulatedGpuNode can inject is seen by the REAL detectors, and the real repair clears it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from repairbot.detectors.base import DetectorReport, EventSource
from repairbot.detectors.gpu_backend import GpuBackend
from repairbot.detectors.gpucount import GpuCountDetector
from repairbot.detectors.infiniband import InfinibandDetector
from repairbot.detectors.kmsg import KmsgDetector, KmsgParser
from repairbot.detectors.nvml import NvmlEventSource, NvmlHealthDetector, NvmlThresholds
from repairbot.model import Action, Finding
from repairbot_sim.gpu import FakeGpuBackend, SimulatedGpuNode


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Detectors:
    """The agent's polled detectors, wired to one simulated node as the agent would wire them."""

    def __init__(self, node: SimulatedGpuNode, clock: Clock) -> None:
        self.nvml = NvmlHealthDetector(node.backend, thresholds=NvmlThresholds(pcie_degraded_polls=1), clock=clock)
        self.count = GpuCountDetector(node.backend, expected=node.gpu_count, sysfs_root=node.sysfs.root)
        self.infiniband = InfinibandDetector(node.sysfs.root, clock=clock)

    def poll(self) -> list[Finding]:
        reports: list[DetectorReport] = [self.nvml.poll(), self.count.poll(), self.infiniband.poll()]
        return [finding for report in reports for finding in report.findings]


def kmsg_findings(node: SimulatedGpuNode) -> list[Finding]:
    """The kernel-log file through the real parser and the real kmsg detector's finding conversion."""
    parser, detector = KmsgParser(), KmsgDetector(node.kmsg_path)
    events = [parser.feed(line) for line in node.kmsg_lines()]
    return [detector.finding_from_event(event) for event in events if event is not None]


def drain_events(source: EventSource, limit_s: float = 0.3) -> list[Finding]:
    stop = threading.Event()
    timer = threading.Timer(limit_s, stop.set)
    timer.start()
    found = list(source.events(stop))
    timer.cancel()
    return found


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def node(tmp_path: Path, clock: Clock) -> SimulatedGpuNode:
    return SimulatedGpuNode("gpu-node-007", tmp_path, clock=clock)


def codes(findings: list[Finding]) -> set[str]:
    return {finding.code for finding in findings}


def test_fresh_node_is_healthy_everywhere(node: SimulatedGpuNode, clock: Clock) -> None:
    assert isinstance(node.backend, GpuBackend)
    assert Detectors(node, clock).poll() == []
    assert kmsg_findings(node) == []
    assert len(node.backend.gpus()) == 8 and node.backend.device(0).pci == "0000:18:00.0"
    assert node.backend.device(0).uuid.startswith("GPU-")


def test_identities_derive_from_the_node_name(tmp_path: Path) -> None:
    one, same, other = (FakeGpuBackend.hgx_h100(name) for name in ("a", "a", "b"))
    assert one.device(3).uuid == same.device(3).uuid != other.device(3).uuid


# fault, expected polled finding codes, expected kernel-log finding codes
FAULTS: list[tuple[str, set[str], set[str]]] = [
    ("xid:79", set(), {"xid-79"}),
    ("xid:13", set(), {"xid-13"}),
    ("ecc-dbe", {"ecc-dbe"}, {"xid-48"}),
    ("row-remap-pending", {"row-remap-pending"}, {"xid-63"}),
    ("fall-off-bus", {"gpu-lost", "gpu-missing"}, {"xid-79", "gpu-lost"}),
    ("pcie-degrade", {"pcie-degraded", "pcie-replay"}, set()),
    ("ib-port-down", {"ib-port-down"}, set()),
    ("thermal", {"thermal"}, set()),
    ("gpu-missing", {"gpu-missing"}, set()),
    ("nvlink-down", {"nvlink-down"}, set()),
]


@pytest.mark.parametrize(("fault", "polled", "logged"), FAULTS, ids=[fault for fault, _, _ in FAULTS])
def test_fault_is_seen_and_reboot_clears_it(
    node: SimulatedGpuNode, clock: Clock, fault: str, polled: set[str], logged: set[str]
) -> None:
    detectors = Detectors(node, clock)
    detectors.poll()  # baselines (NVLinks seen active, IB counters)
    boot_id = node.boot_id
    node.inject(fault, gpu=2)
    clock.now += 60
    assert codes(detectors.poll()) == polled
    assert logged <= codes(kmsg_findings(node))
    gpu_findings = [f for f in kmsg_findings(node) if f.gpu.pci]
    assert all(f.gpu.pci == "0000:3a:00.0" for f in gpu_findings)
    node.reboot()
    clock.now += 60
    assert node.boot_id != boot_id
    assert detectors.poll() == []
    assert kmsg_findings(node) == []  # a new boot starts a new kernel log


def test_kmsg_lines_name_the_gpu_by_uuid(node: SimulatedGpuNode) -> None:
    node.inject("xid:74", gpu=5)
    (finding,) = kmsg_findings(node)
    assert finding.gpu.uuid == node.backend.device(5).uuid
    assert any("NVRM: Xid (PCI:0000:ab:00): 74," in line for line in node.kmsg_lines())


def test_ib_flap_after_a_baseline(node: SimulatedGpuNode, clock: Clock) -> None:
    detectors = Detectors(node, clock)
    detectors.poll()
    node.inject("ib-flap", gpu=1)
    clock.now += 60
    assert codes(detectors.poll()) == {"ib-flap", "ib-errors"}


def test_row_remap_failure_is_sticky_across_reboot(node: SimulatedGpuNode, clock: Clock) -> None:
    node.inject("row-remap-failure", gpu=0)
    assert codes(Detectors(node, clock).poll()) == {"row-remap-failure"}
    assert "xid-64" in codes(kmsg_findings(node))
    node.reboot()
    assert codes(Detectors(node, clock).poll()) == {"row-remap-failure"}
    node.clear()
    assert Detectors(node, clock).poll() == []


def test_gpu_reset_applies_pending_remap_and_clears_volatile_ecc(node: SimulatedGpuNode, clock: Clock) -> None:
    node.inject("ecc-dbe", gpu=4)
    node.inject("row-remap-pending", gpu=4)
    assert codes(Detectors(node, clock).poll()) == {"ecc-dbe", "row-remap-pending"}
    assert node.reset_gpu(4)
    assert Detectors(node, clock).poll() == []
    assert node.backend.device(4).aggregate_dbe == 1  # lifetime counters survive


def test_reset_refused_for_lost_or_busy_gpu(node: SimulatedGpuNode) -> None:
    node.inject("fall-off-bus", gpu=0)
    assert not node.reset_gpu(0)
    node.backend.device(1).pids = [1234]
    assert not node.reset_gpu(1)


def test_persistent_fall_off_bus_stays_missing_after_reboot(node: SimulatedGpuNode, clock: Clock) -> None:
    node.inject("fall-off-bus", gpu=6, persistent=True)
    node.reboot()
    findings = Detectors(node, clock).poll()
    assert codes(findings) == {"gpu-missing"}
    (missing,) = findings
    assert missing.action is Action.REBOOT and missing.evidence["on_bus_not_visible"] == "0000:ba:00.0"


def test_persistent_fault_returns_after_gpu_reset(node: SimulatedGpuNode, clock: Clock) -> None:
    node.inject("ecc-dbe", gpu=3, persistent=True)
    assert node.reset_gpu(3)
    assert codes(Detectors(node, clock).poll()) == {"ecc-dbe"}


def test_injected_faults_reach_the_nvml_event_source(node: SimulatedGpuNode) -> None:
    node.inject("xid:119", gpu=1)
    node.inject("fall-off-bus", gpu=2)
    found = drain_events(NvmlEventSource(node.backend, wait_ms=20))
    assert [(f.code, f.gpu.index) for f in found] == [("xid-119", 1), ("xid-79", 2), ("gpu-lost", 2)]


def test_unknown_fault_is_refused(node: SimulatedGpuNode) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        node.inject("gpu-on-fire")


def test_missing_driver_node(node: SimulatedGpuNode, clock: Clock) -> None:
    node.backend.driver_loaded = False
    reports: list[Any] = [Detectors(node, clock).nvml.poll(), Detectors(node, clock).count.poll()]
    assert all(report.findings == [] for report in reports)
