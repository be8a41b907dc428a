"""Simulated GPU nodes: a fake NVML backend, a fake sysfs and a kernel log, broken on demand.

:class:`FakeGpuBackend` (in :mod:`repairbot_sim.fake_nvml`, re-exported here) implements
:class:`~repairbot.detectors.gpu_backend.GpuBackend`, so the real detectors run against it unchanged.
:class:`SimulatedGpuNode` puts one together the way an 8-GPU HGX H100 node looks and offers one
injection API whose faults leave the same traces a real fault leaves — a
kernel-log line, an NVML event, a counter, a missing device — and whose
repairs (GPU reset, reboot) clear exactly what the real action would clear.
"""

from __future__ import annotations

import time
import uuid as uuid_lib
from collections.abc import Callable
from pathlib import Path

from repairbot.detectors.gpu_backend import ClockEventReason, GpuEvent, GpuEventKind

# The fake NVML lives in its own module; its names stay importable from here.
from repairbot_sim.fake_nvml import H100_NAME as H100_NAME
from repairbot_sim.fake_nvml import H100_NVLINKS as H100_NVLINKS
from repairbot_sim.fake_nvml import HGX_PCI_ADDRESSES as HGX_PCI_ADDRESSES
from repairbot_sim.fake_nvml import FakeGpu, FakeGpuBackend
from repairbot_sim.sysfs import IB_PHYS_LINK_UP, IB_PHYS_POLLING, IB_STATE_ACTIVE, IB_STATE_DOWN, FakeSysfs

# What the driver prints after the code, for the Xids the demo and the tests use.
XID_TEXT = {
    13: "pid=2024380, name=python3, Graphics SM Warp Exception on (GPC 7, TPC 1, SM 0): Out Of Range Address",
    31: "pid=2024380, name=python3, Ch 00000008, intr 00000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 "
    "faulted @ 0x7f2a_8c000000. Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    48: "pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU "
    "in the framebuffer at partition 6, subpartition 0.",
    63: "pid='<unknown>', name=<unknown>, Row Remapper: New row marked for remapping, reset gpu to activate.",
    64: "pid='<unknown>', name=<unknown>, Row Remapper: Failed to remap a row, no spare rows left.",
    74: "pid='<unknown>', name=<unknown>, NVLink: fatal error detected on link 4(0x0, 0x0, 0x10000, 0x0, 0x0)",
    79: "GPU has fallen off the bus.",
    94: "pid=2024380, name=python3, Contained: SM (0x1). RST: No, D-RST: No",
    95: "pid='<unknown>', name=<unknown>, Uncontained: FBHUB. RST: Yes, D-RST: No",
    119: "pid=2024380, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU0 GSP! "
    "Expected function 76 (GSP_RM_CONTROL) (0x20802a02 0x8).",
}

FAULTS = (
    "xid:<code>",
    "ecc-dbe",
    "row-remap-pending",
    "row-remap-failure",
    "fall-off-bus",
    "pcie-degrade",
    "ib-port-down",
    "ib-flap",
    "thermal",
    "gpu-missing",
    "nvlink-down",
)

COLD_BOOT_CURES = frozenset({"fall-off-bus", "gpu-missing"})
"""Persistent faults a power cycle clears (see :meth:`SimulatedGpuNode.power_cycle`)."""


class SimulatedGpuNode:
    """One GPU node of the simulated world: fake NVML + fake sysfs + kernel log, and one fault API.

    ``inject(fault, gpu)`` takes one of :data:`FAULTS`; ``gpu`` is the GPU index,
    or the InfiniBand HCA index (``mlx5_<gpu>``) for ``ib-*`` faults. A fault
    injected with ``persistent=True`` is hardware that stays broken: it comes
    back after every reset and reboot (a lost GPU then stays missing).
    """

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        gpu_count: int = 8,
        ib_hcas: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.backend = FakeGpuBackend.hgx_h100(name, gpu_count)
        self.sysfs = FakeSysfs(self.root / "sys")
        self.kmsg_path = self.root / "kmsg"
        self.boot_count = 0
        self.boot_id = ""
        self._clock = clock
        self._booted_at = 0.0
        self._slept = 0.0  # time passed on the node beyond its clock (see :meth:`pass_time`); 0 at every boot
        self._sequence = 0
        self._prefaced: set[int] = set()
        self._persistent: set[tuple[str, int]] = set()
        for gpu in self.backend.devices:
            self.sysfs.add_gpu(gpu.pci)
        for hca in range(ib_hcas):
            self.sysfs.add_ib_port(f"mlx5_{hca}", 1)
        self._boot()

    @property
    def gpu_count(self) -> int:
        """What the node's inventory (``nvidia.com/gpu.count``) says."""
        return len(self.backend.devices)

    # Kernel log (/dev/kmsg record format: "<prio>,<seq>,<usec>,-;<text>")

    def _kmsg(self, text: str, priority: int = 3) -> None:
        usec = int(self.uptime() * 1_000_000)
        with self.kmsg_path.open("a") as log:
            log.write(f"{priority},{self._sequence},{usec},-;{text}\n")
        self._sequence += 1

    def uptime(self) -> float:
        """Seconds since this node booted: the timebase of its kernel-log records' usec (``/proc/uptime``)."""
        return self._clock() - self._booted_at + self._slept

    def pass_time(self, seconds: float) -> None:
        """The node lives ``seconds`` more than the sandbox does: everything logged so far is that much older.

        Its uptime jumps ahead and records logged from now on carry the later usec, so a node can be
        "up for a week" in a test that runs for seconds (say, to hold an Xid an earlier agent reported days ago).
        """
        if seconds < 0:
            raise ValueError(f"time only passes forward, got {seconds} s")
        self._slept += seconds

    def kmsg_lines(self) -> list[str]:
        return self.kmsg_path.read_text().splitlines() if self.kmsg_path.exists() else []

    def _xid_line(self, gpu: FakeGpu, code: int, text: str | None = None) -> None:
        bdf = gpu.pci.rsplit(".", 1)[0]
        if gpu.index not in self._prefaced:  # the driver names a GPU before its first Xid
            self._prefaced.add(gpu.index)
            self._kmsg(f"NVRM: GPU at PCI:{bdf}: {gpu.uuid}", priority=6)
            self._kmsg(f"NVRM: GPU Board Serial Number: {gpu.serial}", priority=6)
        gpu.xids.append((self._clock(), code))
        detail = text or XID_TEXT.get(code, f"pid='<unknown>', name=<unknown>, Xid {code} reported by the driver")
        self._kmsg(f"NVRM: Xid (PCI:{bdf}): {code}, {detail}", priority=4)

    def log_xid(self, code: int, gpu: int = 0, *, pid: int | None = None, process: str = "python3") -> None:
        """Only the driver's kernel-log line of an Xid, no NVML event: an Xid from before NVML was watched
        (an earlier agent's time), or one whose event no process was registered for.

        ``pid``: the line names that process (``pid=…, name=…``) instead of the catalog text's, so a test can
        have several jobs hit the same GPU.
        """
        text = None
        if pid is not None:
            detail = XID_TEXT.get(code, f"Xid {code} reported by the driver").split(", ", 2)[-1]
            text = f"pid={pid}, name={process}, {detail}"
        self._xid_line(self.backend.device(gpu), code, text)

    # Faults

    def inject(self, fault: str, gpu: int = 0, *, persistent: bool = False) -> None:
        """Break something the way it breaks on a real node. Raises ValueError for an unknown fault."""
        if fault.startswith("xid:"):
            code = int(fault.split(":", 1)[1])
            device = self.backend.device(gpu)
            self._xid_line(device, code)
            self.backend.push_event(GpuEvent(GpuEventKind.XID, device.ref(), xid=code, detail="simulated"))
            return
        apply = self._faults().get(fault)
        if apply is None:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        apply(gpu)
        if persistent:
            self._persistent.add((fault, gpu))

    def _faults(self) -> dict[str, Callable[[int], None]]:
        return {
            "ecc-dbe": self._ecc_dbe,
            "row-remap-pending": self._row_remap_pending,
            "row-remap-failure": self._row_remap_failure,
            "fall-off-bus": self._fall_off_bus,
            "pcie-degrade": self._pcie_degrade,
            "ib-port-down": self._ib_port_down,
            "ib-flap": self._ib_flap,
            "thermal": self._thermal,
            "gpu-missing": self._gpu_missing,
            "nvlink-down": self._nvlink_down,
        }

    def _ecc_dbe(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.volatile_dbe += 1
        gpu.aggregate_dbe += 1
        self._xid_line(gpu, 48)
        self.backend.push_event(GpuEvent(GpuEventKind.DOUBLE_BIT_ECC, gpu.ref(), detail="simulated"))

    def _row_remap_pending(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.remapped_unc += 1
        gpu.remap_pending = True
        self._xid_line(gpu, 63)

    def _row_remap_failure(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.remap_failure = True
        self._xid_line(gpu, 64)
        self.backend.push_event(GpuEvent(GpuEventKind.ROW_REMAP_FAILURE, gpu.ref(), detail="simulated"))

    def _fall_off_bus(self, index: int) -> None:
        gpu = self.backend.device(index)
        self._xid_line(gpu, 79)
        self._kmsg(f"NVRM: GPU {gpu.pci}: GPU has fallen off the bus.")
        gpu.lost = True
        self.backend.push_event(GpuEvent(GpuEventKind.XID, gpu.ref(), xid=79, detail="simulated"))
        self.backend.push_event(GpuEvent(GpuEventKind.GPU_LOST, gpu.ref(), detail="simulated"))

    def _pcie_degrade(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.pcie_width = 8  # a lane group failed to train: Gen5 x8 instead of x16
        gpu.pcie_replays += 500

    def _ib_port_down(self, hca: int) -> None:
        device = f"mlx5_{hca}"
        self.sysfs.set_ib_port(device, 1, state=IB_STATE_DOWN, phys_state=IB_PHYS_POLLING)
        self.sysfs.bump_ib_counter(device, 1, "link_downed")
        self._kmsg(f"{device}: Port 1 link down", priority=6)

    def _ib_flap(self, hca: int) -> None:
        device = f"mlx5_{hca}"
        self.sysfs.bump_ib_counter(device, 1, "link_downed", 3)
        self.sysfs.bump_ib_counter(device, 1, "link_error_recovery", 3)
        self.sysfs.bump_ib_counter(device, 1, "symbol_error", 40)

    def _thermal(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.clock_reasons |= ClockEventReason.HW_SLOWDOWN | ClockEventReason.HW_THERMAL_SLOWDOWN

    def _gpu_missing(self, index: int) -> None:
        gpu = self.backend.device(index)
        gpu.visible = False
        self._kmsg(f"NVRM: GPU {gpu.pci}: RmInitAdapter failed! (0x26:0x65:1474)")
        self._kmsg(f"NVRM: GPU {gpu.pci}: rm_init_adapter failed, device minor number {gpu.index}")

    def _nvlink_down(self, index: int) -> None:
        self.backend.device(index).nvlinks[0] = False

    # Repairs

    def clear(self) -> None:
        """Everything healthy again, as if the hardware had been replaced (persistent faults too)."""
        self._persistent.clear()
        for gpu in self.backend.devices:
            self._heal(gpu, rebooting=True)
            gpu.remap_failure = False
            gpu.lost = False
            gpu.visible = True
        for hca, port in self.sysfs.ib_ports():
            self.sysfs.set_ib_port(hca, port, state=IB_STATE_ACTIVE, phys_state=IB_PHYS_LINK_UP)
        self.backend.drop_events()

    def reset_gpu(self, index: int) -> bool:
        """``nvidia-smi -r -i <index>``: False when the GPU is unreachable or still has clients."""
        gpu = self.backend.device(index)
        if gpu.lost or not gpu.visible or gpu.pids:
            return False
        self._heal(gpu)
        self._reapply(lambda fault, at: at == index and not fault.startswith("ib-"))
        return True

    def reboot(self) -> None:
        """A warm reboot: volatile state cleared, remaps applied, lost GPUs back, a new boot id.

        Sticky state survives (aggregate ECC, row-remap failure); persistent
        faults come back, a persistently lost GPU as one the driver cannot initialise.
        """
        self.backend.drop_events()
        self.kmsg_path.write_text("")  # /dev/kmsg starts empty on every boot
        for gpu in self.backend.devices:
            self._heal(gpu, rebooting=True)
            gpu.lost = False
            gpu.visible = True
            gpu.pids.clear()
        for hca, port in self.sysfs.ib_ports():
            self.sysfs.set_ib_port(hca, port, state=IB_STATE_ACTIVE, phys_state=IB_PHYS_LINK_UP)
        self._boot()
        self._reapply(lambda _fault, _at: True)

    def power_cycle(self) -> None:
        """A cold boot through the BMC: what a warm reboot cannot revive comes back.

        A GPU wedged off the bus (a persistent ``fall-off-bus`` or ``gpu-missing``)
        usually returns once the board loses power; memory damage (row-remap
        failure, lifetime ECC) does not, so those faults stay.
        """
        self._persistent = {(f, at) for f, at in self._persistent if f not in COLD_BOOT_CURES}
        self.reboot()

    def _heal(self, gpu: FakeGpu, *, rebooting: bool = False) -> None:
        """What a GPU reset clears; a reboot also retrains PCIe and forgets the clock slowdown."""
        gpu.volatile_sbe = gpu.volatile_dbe = 0
        gpu.remap_pending = False  # the reset applies the pending remap
        gpu.recovery_action = 0
        gpu.nvlinks = dict.fromkeys(gpu.nvlinks, True)
        if rebooting:
            gpu.clock_reasons = 0  # environmental; persists across a GPU reset
            gpu.pcie_gen, gpu.pcie_width = gpu.pcie_max_gen, gpu.pcie_max_width

    def _reapply(self, which: Callable[[str, int], bool]) -> None:
        for fault, at in sorted(self._persistent):
            if which(fault, at):
                self._faults()["gpu-missing" if fault == "fall-off-bus" else fault](at)

    def _boot(self) -> None:
        self.boot_count += 1
        self.boot_id = str(uuid_lib.uuid5(uuid_lib.NAMESPACE_DNS, f"{self.name}.boot.{self.boot_count}"))
        self._booted_at = self._clock()
        self._slept = 0.0
        self._sequence = 0
        self._prefaced.clear()
        self._kmsg(f"Linux version 6.8.0-49-generic (buildd@lcy02-amd64-104) boot_id={self.boot_id}", priority=5)
