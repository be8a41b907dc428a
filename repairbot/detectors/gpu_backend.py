"""The small slice of NVML that RepairBot's GPU detectors need, as plain data.

Detectors never touch ``pynvml`` directly: they talk to a :class:`GpuBackend`.
The real one (:class:`repairbot.detectors.nvml.PynvmlBackend`) wraps
nvidia-ml-py; the simulated world plugs in a fake with the same surface. That
keeps the health rules testable on machines without a GPU and lets the demo
inject faults without monkey-patching.

Three conventions hold for every backend:

* GPUs are addressed by UUID. Enumeration order is not stable across reboots,
  so an index is only a display hint.
* A reading the GPU or driver cannot provide (not supported, function missing
  in an old driver, no permission) is ``None`` — never a made-up zero, because
  "0 uncorrectable errors" and "don't know" lead to opposite decisions.
* Failures that *are* facts about the node are exceptions with meaning:
  :class:`NoGpuDriver` (nothing to monitor here), :class:`GpuLost` (the GPU
  fell off the bus — a finding in itself) and :class:`GpuResetRequired`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from repairbot.model import GpuRef


class GpuBackendError(Exception):
    """Base of everything a backend raises on purpose."""


class NoGpuDriver(GpuBackendError):
    """The NVML library or the kernel driver is absent: this node has no GPU driver.

    Not a fault of any GPU — a CPU node, or a GPU node whose driver container
    has not started yet — so detectors report "unknown", never a finding.
    """


class GpuLost(GpuBackendError):
    """NVML answered GPU_IS_LOST: the GPU fell off the bus or became unreachable.

    Only a reboot (or a power cycle) brings it back, so this is itself a finding.
    """

    def __init__(self, message: str, gpu: GpuRef | None = None) -> None:
        super().__init__(message)
        self.gpu = gpu or GpuRef()


class GpuResetRequired(GpuBackendError):
    """NVML answered RESET_REQUIRED: the GPU refuses work until it is reset."""

    def __init__(self, message: str, gpu: GpuRef | None = None) -> None:
        super().__init__(message)
        self.gpu = gpu or GpuRef()


class GpuReadError(GpuBackendError):
    """Any other NVML failure: the reading is unknown and the detector says why."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One enumerated GPU. ``pci`` is normalised ``dddd:bb:dd.f`` lower case.

    ``lost`` marks a GPU the backend knew about but can no longer reach
    (enumeration itself answered GPU_IS_LOST); its identity comes from the last
    successful enumeration, and may be partly empty if there was none.
    """

    index: int
    uuid: str
    name: str
    pci: str
    serial: str | None = None
    lost: bool = False

    def ref(self) -> GpuRef:
        return GpuRef(index=self.index, uuid=self.uuid or None, pci=self.pci or None, serial=self.serial or None)


@dataclass(frozen=True, slots=True)
class EccCounts:
    """ECC error totals. Volatile counts reset with the driver/GPU; aggregate ones never do."""

    volatile_corrected: int | None = None
    volatile_uncorrected: int | None = None
    aggregate_corrected: int | None = None
    aggregate_uncorrected: int | None = None


@dataclass(frozen=True, slots=True)
class RowRemap:
    """``nvmlDeviceGetRemappedRows``: rows remapped for correctable/uncorrectable errors and two flags.

    ``pending``: a remap waits for the next GPU reset. ``failure``: a remap
    ever failed — sticky, survives resets and reboots, RMA territory.
    """

    corr: int
    unc: int
    pending: bool
    failure: bool


@dataclass(frozen=True, slots=True)
class RetiredPages:
    """Dynamic page retirement (Volta and older; some newer parts report it too)."""

    sbe: int | None = None
    dbe: int | None = None
    pending: bool | None = None


@dataclass(frozen=True, slots=True)
class PcieLink:
    """Negotiated versus possible PCIe link, and the cumulative replay counter."""

    cur_gen: int | None = None
    max_gen: int | None = None
    cur_width: int | None = None
    max_width: int | None = None
    replay_counter: int | None = None

    def degraded(self) -> bool:
        """Trained below what this device supports in this slot (unknown parts never count)."""
        below_gen = self.cur_gen is not None and self.max_gen is not None and self.cur_gen < self.max_gen
        below_width = self.cur_width is not None and self.max_width is not None and self.cur_width < self.max_width
        return below_gen or below_width

    def width_degraded(self) -> bool:
        return self.cur_width is not None and self.max_width is not None and self.cur_width < self.max_width


class ClockEventReason(enum.IntFlag):
    """``nvmlClocksEventReason*`` bits (the ``ClocksThrottleReason`` names are deprecated)."""

    GPU_IDLE = 0x1
    APPLICATIONS_CLOCKS_SETTING = 0x2
    SW_POWER_CAP = 0x4
    HW_SLOWDOWN = 0x8
    SYNC_BOOST = 0x10
    SW_THERMAL_SLOWDOWN = 0x20
    HW_THERMAL_SLOWDOWN = 0x40
    HW_POWER_BRAKE_SLOWDOWN = 0x80
    DISPLAY_CLOCK_SETTING = 0x100


HARDWARE_SLOWDOWN_REASONS = (
    ClockEventReason.HW_SLOWDOWN | ClockEventReason.HW_THERMAL_SLOWDOWN | ClockEventReason.HW_POWER_BRAKE_SLOWDOWN
)
"""Bits that mean the hardware protected itself (heat, power brake, excess draw).

Idle and software power caps are normal operation and are never findings.
"""


@dataclass(frozen=True, slots=True)
class ClockEventReasons:
    """The current clocks-event ("throttle") reasons bitmask, decoded."""

    bitmask: int

    def active(self) -> list[str]:
        return [reason.name.lower() for reason in ClockEventReason if reason.name and self.bitmask & reason]

    def hardware_slowdown(self) -> list[str]:
        """Names of the active hardware-protection reasons (empty when clocks are healthy)."""
        hardware = ClockEventReason(self.bitmask & HARDWARE_SLOWDOWN_REASONS)
        return [reason.name.lower() for reason in ClockEventReason if reason.name and hardware & reason]


class GpuEventKind(enum.StrEnum):
    """What an NVML event reported, independent of the NVML bit that carried it."""

    XID = "xid"
    DOUBLE_BIT_ECC = "double-bit-ecc"
    ROW_REMAP_FAILURE = "row-remap-failure"
    RECOVERY_ACTION = "recovery-action"
    GPU_LOST = "gpu-lost"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class GpuEvent:
    """One event from the driver. ``gpu`` is empty when the event names no device (whole node)."""

    kind: GpuEventKind
    gpu: GpuRef = field(default_factory=GpuRef)
    xid: int | None = None
    detail: str = ""


@runtime_checkable
class GpuBackend(Protocol):
    """The GPU readings RepairBot's detectors use. Every per-GPU call takes the GPU's UUID.

    Per-GPU calls raise :class:`GpuLost`, :class:`GpuResetRequired` or
    :class:`GpuReadError`; unsupported readings return ``None``. ``init``
    raises :class:`NoGpuDriver` and is idempotent, so several detectors can
    share one backend and each make sure it is up.
    """

    def init(self) -> None: ...

    def shutdown(self) -> None:
        """Release the driver (a GPU reset fails while any NVML client holds it)."""
        ...

    def gpus(self) -> list[GpuInfo]: ...

    def ecc_counts(self, uuid: str) -> EccCounts | None: ...

    def row_remap(self, uuid: str) -> RowRemap | None: ...

    def retired_pages(self, uuid: str) -> RetiredPages | None: ...

    def pcie_link(self, uuid: str) -> PcieLink | None: ...

    def clock_event_reasons(self, uuid: str) -> ClockEventReasons | None: ...

    def nvlink_states(self, uuid: str) -> dict[int, bool] | None:
        """Link number → active, for the links this GPU has; ``None`` without NVLink."""
        ...

    def recovery_action(self, uuid: str) -> int | None:
        """The raw ``NVML_FI_DEV_GET_GPU_RECOVERY_ACTION`` value (see :class:`repairbot.catalog.xid.RecoveryAction`)."""
        ...

    def running_pids(self, uuid: str) -> list[int] | None: ...

    def register_events(self) -> dict[str, bool]:
        """Subscribe to Xid and other critical events; UUID → whether the GPU supports them."""
        ...

    def wait_event(self, timeout_ms: int) -> GpuEvent | None:
        """The next event, or ``None`` after ``timeout_ms`` without one.

        A lost GPU comes back as an event of kind ``GPU_LOST``, not an exception,
        because it is news the caller must act on, not a failure to read.
        """
        ...
