"""The fake NVML: simulated GPUs and a :class:`GpuBackend` over them.

Kept apart from :mod:`repairbot_sim.gpu` because it is the one piece of the
sandbox that stands in for a real interface: detector tests use it on its own,
with no kernel log or sysfs, while :class:`~repairbot_sim.gpu.SimulatedGpuNode`
builds a whole node on top of it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from repairbot.detectors.gpu_backend import (
    ClockEventReasons,
    EccCounts,
    GpuBackendError,
    GpuEvent,
    GpuInfo,
    GpuLost,
    GpuReadError,
    NoGpuDriver,
    PcieLink,
    RetiredPages,
    RowRemap,
)
from repairbot.model import GpuRef

T = TypeVar("T")

H100_NAME = "NVIDIA H100 80GB HBM3"
HGX_PCI_ADDRESSES = (
    "0000:18:00.0",
    "0000:2a:00.0",
    "0000:3a:00.0",
    "0000:5d:00.0",
    "0000:9a:00.0",
    "0000:ab:00.0",
    "0000:ba:00.0",
    "0000:db:00.0",
)
H100_NVLINKS = 18


def _hex_digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


@dataclass
class FakeGpu:
    """One simulated GPU's mutable state; a healthy H100 SXM by default."""

    index: int
    uuid: str
    pci: str
    serial: str
    name: str = H100_NAME
    volatile_sbe: int = 0
    volatile_dbe: int = 0
    aggregate_sbe: int = 0
    aggregate_dbe: int = 0
    remapped_corr: int = 0
    remapped_unc: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    pcie_gen: int = 5
    pcie_width: int = 16
    pcie_max_gen: int = 5
    pcie_max_width: int = 16
    pcie_replays: int = 0
    clock_reasons: int = 0
    nvlinks: dict[int, bool] = field(default_factory=lambda: dict.fromkeys(range(H100_NVLINKS), True))
    recovery_action: int = 0
    pids: list[int] = field(default_factory=list)
    lost: bool = False
    visible: bool = True
    xids: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, code), for the dcgm-exporter sim
    unsupported: set[str] = field(default_factory=lambda: {"retired_pages"})  # Hopper uses row remapping
    raises: dict[str, GpuBackendError] = field(default_factory=dict)

    def info(self) -> GpuInfo:
        return GpuInfo(self.index, self.uuid, self.name, self.pci, self.serial, lost=self.lost)

    def ref(self) -> GpuRef:
        return GpuRef(index=self.index, uuid=self.uuid, pci=self.pci, serial=self.serial)


class FakeGpuBackend:
    """A :class:`GpuBackend` over :class:`FakeGpu` objects, with a thread-safe event queue."""

    def __init__(self, gpus: list[FakeGpu], *, driver_loaded: bool = True) -> None:
        self.devices = gpus
        self.driver_loaded = driver_loaded
        self.initialised = False
        self._events: deque[GpuEvent] = deque()
        self._wakeup = threading.Condition()

    @classmethod
    def hgx_h100(cls, node_name: str, count: int = 8) -> FakeGpuBackend:
        """``count`` H100 SXM GPUs with UUIDs and serials derived from the node name."""
        gpus = []
        for index in range(count):
            digest = _hex_digest(node_name, "gpu", index)
            uuid = f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            pci = HGX_PCI_ADDRESSES[index] if index < len(HGX_PCI_ADDRESSES) else f"0000:{0xE0 + index:02x}:00.0"
            gpus.append(FakeGpu(index, uuid, pci, serial=f"165{int(digest[32:44], 16) % 10**10:010d}"))
        return cls(gpus)

    def device(self, index: int) -> FakeGpu:
        return self.devices[index]

    def init(self) -> None:
        if not self.driver_loaded:
            raise NoGpuDriver("this node has no GPU driver (NVML Shared Library Not Found)")
        self.initialised = True

    def shutdown(self) -> None:
        self.initialised = False

    def gpus(self) -> list[GpuInfo]:
        self.init()
        return [gpu.info() for gpu in self.devices if gpu.visible]

    def _read(self, uuid: str, reading: str, produce: Callable[[FakeGpu], T]) -> T | None:
        """One reading of one GPU, failing the way NVML would for a lost, missing or unsupported one."""
        gpu = next((gpu for gpu in self.devices if gpu.uuid == uuid and gpu.visible), None)
        if gpu is None:
            raise GpuReadError(f"GPU {uuid}: {reading}: Not Found")
        if gpu.lost:
            raise GpuLost(f"GPU {uuid}: {reading}: GPU is lost", gpu.ref())
        if reading in gpu.raises:
            raise gpu.raises[reading]
        return None if reading in gpu.unsupported else produce(gpu)

    def ecc_counts(self, uuid: str) -> EccCounts | None:
        return self._read(
            uuid, "ecc", lambda g: EccCounts(g.volatile_sbe, g.volatile_dbe, g.aggregate_sbe, g.aggregate_dbe)
        )

    def row_remap(self, uuid: str) -> RowRemap | None:
        return self._read(
            uuid, "row_remap", lambda g: RowRemap(g.remapped_corr, g.remapped_unc, g.remap_pending, g.remap_failure)
        )

    def retired_pages(self, uuid: str) -> RetiredPages | None:
        return self._read(uuid, "retired_pages", lambda g: RetiredPages(0, g.volatile_dbe, g.volatile_dbe > 0))

    def pcie_link(self, uuid: str) -> PcieLink | None:
        return self._read(
            uuid,
            "pcie",
            lambda g: PcieLink(g.pcie_gen, g.pcie_max_gen, g.pcie_width, g.pcie_max_width, g.pcie_replays),
        )

    def clock_event_reasons(self, uuid: str) -> ClockEventReasons | None:
        return self._read(uuid, "clock_event_reasons", lambda g: ClockEventReasons(g.clock_reasons))

    def nvlink_states(self, uuid: str) -> dict[int, bool] | None:
        return self._read(uuid, "nvlink", lambda g: dict(g.nvlinks) or None)

    def recovery_action(self, uuid: str) -> int | None:
        return self._read(uuid, "recovery_action", lambda g: g.recovery_action)

    def running_pids(self, uuid: str) -> list[int] | None:
        return self._read(uuid, "running_pids", lambda g: list(g.pids))

    def register_events(self) -> dict[str, bool]:
        self.init()
        return {gpu.uuid: not gpu.lost for gpu in self.devices if gpu.visible}

    def push_event(self, event: GpuEvent) -> None:
        with self._wakeup:
            self._events.append(event)
            self._wakeup.notify_all()

    def drop_events(self) -> None:
        with self._wakeup:
            self._events.clear()

    def wait_event(self, timeout_ms: int) -> GpuEvent | None:
        with self._wakeup:
            if not self._events:
                self._wakeup.wait(timeout_ms / 1000.0)
            return self._events.popleft() if self._events else None
