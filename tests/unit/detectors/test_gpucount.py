from __future__ import annotations

from pathlib import Path

import pytest

from repairbot.detectors.base import SignalState
from repairbot.detectors.gpucount import GpuCountDetector, nvidia_gpus_on_bus
from repairbot.model import Action, Severity
from repairbot_sim.gpu import HGX_PCI_ADDRESSES, FakeGpuBackend
from repairbot_sim.sysfs import CLASS_BRIDGE_OTHER, MELLANOX_VENDOR, NVIDIA_VENDOR, FakeSysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    tree = FakeSysfs(tmp_path / "sys")
    for address in HGX_PCI_ADDRESSES:
        tree.add_gpu(address)
    tree.add_pci_device("0000:05:00.0", vendor=NVIDIA_VENDOR, device_class=CLASS_BRIDGE_OTHER)  # NVSwitch
    tree.add_pci_device("0000:1a:00.0", vendor=MELLANOX_VENDOR, device_class="0x020700")  # ConnectX
    tree.add_pci_device("0000:03:00.0", vendor=NVIDIA_VENDOR, device_class="0x030000")  # VGA-class GPU
    tree.remove_pci_device("0000:03:00.0")
    return tree


@pytest.fixture
def backend() -> FakeGpuBackend:
    return FakeGpuBackend.hgx_h100("gpu-node-001")


def test_bus_scan_counts_only_nvidia_gpus(sysfs: FakeSysfs) -> None:
    assert nvidia_gpus_on_bus(sysfs.root) == sorted(HGX_PCI_ADDRESSES)


def test_all_present_is_clean(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    report = GpuCountDetector(backend, expected=8, sysfs_root=sysfs.root).poll()
    assert report.findings == []
    assert report.observations["visible"] == 8 and report.observations["on_bus"] == 8


def test_gpu_on_bus_but_not_visible_is_named(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    backend.device(4).visible = False
    (finding,) = GpuCountDetector(backend, expected=8, sysfs_root=sysfs.root).poll().findings
    assert (finding.code, finding.action, finding.severity) == ("gpu-missing", Action.REBOOT, Severity.CRITICAL)
    assert finding.evidence["on_bus_not_visible"] == "0000:9a:00.0"
    assert finding.gpu.pci == "0000:9a:00.0"
    assert "7 of 8" in finding.message


def test_lost_gpu_is_not_visible(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    backend.device(0).lost = True
    (finding,) = GpuCountDetector(backend, expected=8, sysfs_root=sysfs.root).poll().findings
    assert finding.evidence["lost"] == "0000:18:00.0"


def test_gpu_gone_from_bus_too_is_short_of_inventory(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    backend.device(7).visible = False
    sysfs.remove_pci_device("0000:db:00.0")
    (finding,) = GpuCountDetector(backend, expected=8, sysfs_root=sysfs.root).poll().findings
    assert finding.evidence["missing_from_bus"] == "1"
    assert finding.evidence["on_bus_not_visible"] == "none"


def test_without_inventory_the_bus_is_the_reference(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    backend.device(1).visible = False
    assert [f.code for f in GpuCountDetector(backend, expected=None, sysfs_root=sysfs.root).poll().findings] == [
        "gpu-missing"
    ]


def test_without_pci_tree_inventory_still_counts(tmp_path: Path, backend: FakeGpuBackend) -> None:
    backend.device(1).visible = False
    report = GpuCountDetector(backend, expected=8, sysfs_root=tmp_path).poll()
    assert [f.code for f in report.findings] == ["gpu-missing"]
    assert report.health is not None and report.health.state is SignalState.UNKNOWN


def test_no_driver_is_unknown(sysfs: FakeSysfs, backend: FakeGpuBackend) -> None:
    backend.driver_loaded = False
    report = GpuCountDetector(backend, expected=8, sysfs_root=sysfs.root).poll()
    assert report.findings == []
    assert report.health is not None and report.health.message == "no GPU driver on this node"
