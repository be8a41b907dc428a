"""Are all the node's GPUs there? NVML's view against the inventory and the PCI bus.

A GPU that fell off the bus, or that the driver failed to initialise, can
vanish from NVML while its PCI function is still present (or the PCI function
can vanish too). Either way the node has fewer GPUs than the scheduler
believes, and jobs asking for 8 GPUs land on a 7-GPU node. NVIDIA's answer is
the same as for Xid 79: reboot, power-cycle if it stays missing.

Three numbers are compared (REFERENCE §2.3):

* visible — GPUs NVML enumerates and can reach (a lost GPU is not visible);
* expected — the inventory, from the node's ``nvidia.com/gpu.count`` label or
  its ``nvidia.com/gpu`` capacity, passed in by the agent;
* on the bus — NVIDIA display/3D controllers under ``<sysfs>/bus/pci/devices``
  (vendor ``0x10de``, class ``0x0300xx`` or ``0x0302xx``; NVSwitches, class
  ``0x0680``, are not GPUs).
"""

from __future__ import annotations

from pathlib import Path

from repairbot.detectors.base import DetectorReport, SignalHealth, SignalState
from repairbot.detectors.gpu_backend import GpuBackend, GpuBackendError, NoGpuDriver
from repairbot.model import Action, Finding, GpuRef, Severity

NVIDIA_VENDOR = "0x10de"
GPU_CLASS_PREFIXES = ("0x0300", "0x0302")  # VGA-compatible controller, 3D controller


def nvidia_gpus_on_bus(sysfs_root: Path) -> list[str] | None:
    """PCI addresses of NVIDIA GPUs present on the bus, sorted; ``None`` if sysfs has no PCI tree."""
    devices = sysfs_root / "bus" / "pci" / "devices"
    if not devices.is_dir():
        return None
    found = []
    for device in devices.iterdir():
        try:
            vendor = (device / "vendor").read_text().strip().lower()
            device_class = (device / "class").read_text().strip().lower()
        except OSError:
            continue  # a device being hot-removed while we look
        if vendor == NVIDIA_VENDOR and device_class.startswith(GPU_CLASS_PREFIXES):
            found.append(device.name.lower())
    return sorted(found)


class GpuCountDetector:
    """Finds ``gpu-missing`` when NVML sees fewer GPUs than expected or than the bus holds."""

    name = "gpu-count"

    def __init__(self, backend: GpuBackend, *, expected: int | None, sysfs_root: Path = Path("/sys")) -> None:
        self._backend = backend
        self._expected = expected
        self._sysfs_root = Path(sysfs_root)

    def poll(self) -> DetectorReport:
        report = DetectorReport(self.name)
        on_bus = nvidia_gpus_on_bus(self._sysfs_root)
        try:
            self._backend.init()
            gpus = self._backend.gpus()
        except NoGpuDriver:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, "no GPU driver on this node")
            report.observations = {"expected": self._expected, "on_bus": on_bus}
            return report
        except GpuBackendError as error:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, str(error))
            return report
        visible = sorted(gpu.pci for gpu in gpus if not gpu.lost)
        lost = sorted(gpu.pci or f"index {gpu.index}" for gpu in gpus if gpu.lost)
        report.observations = {
            "expected": self._expected,
            "visible": len(visible),
            "visible_pci": visible,
            "lost": lost,
            "on_bus": None if on_bus is None else len(on_bus),
            "on_bus_pci": on_bus,
        }
        if on_bus is None:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, f"no PCI tree under {self._sysfs_root}")
        finding = self._judge(visible, lost, on_bus)
        if finding is not None:
            report.findings.append(finding)
        return report

    def _judge(self, visible: list[str], lost: list[str], on_bus: list[str] | None) -> Finding | None:
        short_of_inventory = self._expected is not None and len(visible) < self._expected
        short_of_bus = on_bus is not None and len(visible) < len(on_bus)
        if not (short_of_inventory or short_of_bus):
            return None
        not_visible = sorted(set(on_bus or []) - set(visible))
        evidence = {
            "expected": str(self._expected) if self._expected is not None else "unknown",
            "visible": str(len(visible)),
            "on_bus": str(len(on_bus)) if on_bus is not None else "unknown",
            "on_bus_not_visible": ", ".join(not_visible) or "none",
        }
        if lost:
            evidence["lost"] = ", ".join(lost)
        if on_bus is not None and self._expected is not None and len(on_bus) < self._expected:
            evidence["missing_from_bus"] = str(self._expected - len(on_bus))
        # One missing GPU is named, so the repair and the ticket point at a slot.
        gpu = GpuRef(pci=not_visible[0]) if len(not_visible) == 1 else GpuRef()
        wanted = max(self._expected or 0, len(on_bus or []))
        where = f"; on the bus but not visible: {evidence['on_bus_not_visible']}" if not_visible else ""
        return Finding(
            code="gpu-missing",
            message=f"{len(visible)} of {wanted} GPUs visible to NVML{where}",
            action=Action.REBOOT,
            severity=Severity.CRITICAL,
            gpu=gpu,
            evidence=evidence,
        )
