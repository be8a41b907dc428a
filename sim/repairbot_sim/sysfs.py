"""A fake ``/sys`` for simulated GPU nodes: the PCI devices and the InfiniBand ports.

Real detectors read it through the same paths and file formats as on a
host (``bus/pci/devices/<bdf>/{vendor,class}``,
``class/infiniband/<dev>/ports/<n>/{state,phys_state,rate,counters/…}``), so
``GpuCountDetector`` and ``InfinibandDetector`` run unchanged against it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

NVIDIA_VENDOR = "0x10de"
MELLANOX_VENDOR = "0x15b3"
CLASS_3D_CONTROLLER = "0x030200"
CLASS_BRIDGE_OTHER = "0x068000"  # NVSwitch
CLASS_INFINIBAND = "0x020700"

IB_STATE_ACTIVE = "4: ACTIVE"
IB_STATE_DOWN = "1: DOWN"
IB_PHYS_LINK_UP = "5: LinkUp"
IB_PHYS_POLLING = "2: Polling"
NDR_RATE = "400 Gb/sec (4X NDR)"

IB_COUNTERS = (
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_discards",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "VL15_dropped",
    "port_xmit_wait",
    "port_xmit_data",
    "port_rcv_data",
)


class FakeSysfs:
    """A directory tree shaped like ``/sys`` that tests and the sandbox can break and mend."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # PCI

    def _pci(self, address: str) -> Path:
        return self.root / "bus" / "pci" / "devices" / address

    def add_pci_device(self, address: str, *, vendor: str, device_class: str, device_id: str = "0x0000") -> None:
        path = self._pci(address)
        path.mkdir(parents=True, exist_ok=True)
        (path / "vendor").write_text(vendor + "\n")
        (path / "class").write_text(device_class + "\n")
        (path / "device").write_text(device_id + "\n")

    def add_gpu(self, address: str) -> None:
        """An H100 SXM5 (device id 0x2330) as a 3D controller."""
        self.add_pci_device(address, vendor=NVIDIA_VENDOR, device_class=CLASS_3D_CONTROLLER, device_id="0x2330")

    def remove_pci_device(self, address: str) -> None:
        shutil.rmtree(self._pci(address), ignore_errors=True)

    def pci_devices(self) -> list[str]:
        base = self.root / "bus" / "pci" / "devices"
        return sorted(path.name for path in base.iterdir()) if base.is_dir() else []

    # InfiniBand

    def _port(self, device: str, port: int) -> Path:
        return self.root / "class" / "infiniband" / device / "ports" / str(port)

    def add_ib_port(self, device: str, port: int = 1, *, rate: str = NDR_RATE) -> None:
        """A healthy port: ACTIVE, LinkUp, at ``rate``, all counters zero."""
        path = self._port(device, port)
        (path / "counters").mkdir(parents=True, exist_ok=True)
        self.set_ib_port(device, port, state=IB_STATE_ACTIVE, phys_state=IB_PHYS_LINK_UP, rate=rate)
        (path / "link_layer").write_text("InfiniBand\n")
        for counter in IB_COUNTERS:
            (path / "counters" / counter).write_text("0\n")

    def set_ib_port(
        self,
        device: str,
        port: int = 1,
        *,
        state: str | None = None,
        phys_state: str | None = None,
        rate: str | None = None,
    ) -> None:
        path = self._port(device, port)
        for name, value in (("state", state), ("phys_state", phys_state), ("rate", rate)):
            if value is not None:
                (path / name).write_text(value + "\n")

    def ib_counter(self, device: str, port: int, counter: str) -> int:
        return int((self._port(device, port) / "counters" / counter).read_text().strip() or 0)

    def bump_ib_counter(self, device: str, port: int, counter: str, by: int = 1) -> None:
        path = self._port(device, port) / "counters" / counter
        path.write_text(f"{self.ib_counter(device, port, counter) + by}\n")

    def ib_ports(self) -> list[tuple[str, int]]:
        base = self.root / "class" / "infiniband"
        if not base.is_dir():
            return []
        return sorted(
            (device.name, int(port.name)) for device in base.iterdir() for port in (device / "ports").iterdir()
        )

    def remove_infiniband(self) -> None:
        """A node without an HCA (or with the driver unloaded)."""
        shutil.rmtree(self.root / "class" / "infiniband", ignore_errors=True)
