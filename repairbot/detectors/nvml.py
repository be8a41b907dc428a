"""NVML: the real :class:`GpuBackend` over nvidia-ml-py, and the two GPU detectors.

* :class:`PynvmlBackend` translates ``pynvml`` into plain readings and the
  backend's exceptions. Missing features (old driver, MIG, no permission)
  become ``None`` so a PCIe card without NVLink or an H100 without retired-page
  support reads as "unknown", never as healthy zeros.
* :class:`NvmlHealthDetector` (polled) and :class:`NvmlEventSource` (pushed)
  turn readings and events into findings. They take any
  :class:`~repairbot.detectors.gpu_backend.GpuBackend` (the simulated world
  passes its fake), so they live in :mod:`repairbot.detectors.gpu_health` and
  are re-exported here.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import pynvml

from repairbot.detectors.gpu_backend import (
    ClockEventReasons,
    EccCounts,
    GpuBackendError,
    GpuEvent,
    GpuEventKind,
    GpuInfo,
    GpuLost,
    GpuReadError,
    GpuResetRequired,
    NoGpuDriver,
    PcieLink,
    RetiredPages,
    RowRemap,
)

# The detectors are backend-agnostic and live in gpu_health (the sandbox imports them without
# pynvml); re-exported so every NVML piece can also be found here.
from repairbot.detectors.gpu_health import NO_GPU_DRIVER, NvmlEventSource, NvmlHealthDetector, NvmlThresholds
from repairbot.detectors.kernel_log import normalize_pci
from repairbot.model import GpuRef

__all__ = [
    "NO_GPU_DRIVER",
    "NvmlEventSource",
    "NvmlHealthDetector",
    "NvmlThresholds",
    "PynvmlBackend",
]

# A reading the GPU/driver cannot give is "unknown", not an error.
_UNKNOWN_CODES = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_NO_PERMISSION}
)
_NO_DRIVER_CODES = frozenset({pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED})

# Xid and DBE are what the reference loop registers; the rest are added where the GPU supports them.
_BASE_EVENTS = pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError
_WANTED_EVENTS = (
    _BASE_EVENTS
    | pynvml.nvmlEventTypeDramRetirementFailure
    | pynvml.nvmlEventTypeGpuUnavailableError
    | pynvml.nvmlEventTypeGpuRecoveryAction
)
_EVENT_KINDS = (
    (pynvml.nvmlEventTypeXidCriticalError, GpuEventKind.XID),
    (pynvml.nvmlEventTypeDoubleBitEccError, GpuEventKind.DOUBLE_BIT_ECC),
    (pynvml.nvmlEventTypeDramRetirementFailure, GpuEventKind.ROW_REMAP_FAILURE),
    (pynvml.nvmlEventTypeGpuUnavailableError, GpuEventKind.GPU_LOST),
    (pynvml.nvmlEventTypeGpuRecoveryAction, GpuEventKind.RECOVERY_ACTION),
)


def _translate(error: pynvml.NVMLError, what: str, gpu: GpuRef) -> GpuBackendError:
    """Turn an NVML error into the backend exception that says what it means for the node."""
    where = f"GPU {gpu.identity()}: " if gpu.identity() else ""
    if error.value == pynvml.NVML_ERROR_GPU_IS_LOST:
        return GpuLost(f"{where}{what}: GPU is lost (fallen off the bus or unreachable)", gpu)
    if error.value == pynvml.NVML_ERROR_RESET_REQUIRED:
        return GpuResetRequired(f"{where}{what}: GPU requires a reset before it can be used again", gpu)
    if error.value in _NO_DRIVER_CODES:
        return NoGpuDriver(f"this node has no GPU driver ({error})")
    return GpuReadError(f"{where}{what}: {error}")


def _handle_address(handle: Any) -> int | None:
    """An NVML device handle as a comparable number (ctypes pointers compare by identity)."""
    try:
        value = ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return None
    return None if value is None else int(value)


def _field_number(field_value: Any) -> int:
    """The numeric payload of a ``c_nvmlFieldValue_t``, whatever its declared type."""
    member = {
        pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
    }.get(int(field_value.valueType), "ullVal")
    return int(getattr(field_value.value, member))


class PynvmlBackend:
    """:class:`GpuBackend` over nvidia-ml-py. ``library`` defaults to ``pynvml`` (tests pass a fake)."""

    def __init__(self, library: Any = None) -> None:
        self._nvml = pynvml if library is None else library
        self._lock = threading.Lock()
        self._initialised = False
        self._known: dict[int, GpuInfo] = {}
        self._handles: dict[str, Any] = {}
        self._refs_by_handle: dict[int, GpuRef] = {}
        self._event_set: Any = None

    def init(self) -> None:
        with self._lock:
            if self._initialised:
                return
            try:
                self._nvml.nvmlInit()
            except pynvml.NVMLError as error:
                raise _translate(error, "nvmlInit", GpuRef()) from error
            self._initialised = True

    def shutdown(self) -> None:
        with self._lock:
            if not self._initialised:
                return
            try:
                if self._event_set is not None:
                    self._nvml.nvmlEventSetFree(self._event_set)
                self._nvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass  # releasing is best effort; the handles are dropped either way
            self._initialised = False
            self._event_set = None
            self._handles.clear()
            self._refs_by_handle.clear()

    def _call(self, what: str, gpu: GpuRef, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except pynvml.NVMLError as error:
            if error.value in _UNKNOWN_CODES:
                return None
            raise _translate(error, what, gpu) from error

    def gpus(self) -> list[GpuInfo]:
        count = self._call("device count", GpuRef(), self._nvml.nvmlDeviceGetCount)
        found: list[GpuInfo] = []
        for index in range(count or 0):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = str(self._nvml.nvmlDeviceGetUUID(handle))
                info = GpuInfo(
                    index=index,
                    uuid=uuid,
                    name=str(self._nvml.nvmlDeviceGetName(handle)),
                    pci=normalize_pci(str(self._nvml.nvmlDeviceGetPciInfo(handle).busId)),
                    serial=self._call("serial", GpuRef(index=index), self._nvml.nvmlDeviceGetSerial, handle),
                )
            except pynvml.NVMLError as error:
                if error.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                    last = self._known.get(index)
                    found.append(
                        GpuInfo(index, last.uuid, last.name, last.pci, last.serial, lost=True)
                        if last
                        else GpuInfo(index, "", "", "", lost=True)
                    )
                    continue
                if error.value == pynvml.NVML_ERROR_NO_PERMISSION:
                    continue  # counted by NVML but not ours to open (e.g. another container's GPU)
                raise _translate(error, "enumeration", GpuRef(index=index)) from error
            self._known[index] = info
            self._handles[uuid] = handle
            address = _handle_address(handle)
            if address is not None:
                self._refs_by_handle[address] = info.ref()
            found.append(info)
        return found

    def _handle(self, uuid: str) -> Any:
        handle = self._handles.get(uuid)
        if handle is None:
            handle = self._call("handle", GpuRef(uuid=uuid), self._nvml.nvmlDeviceGetHandleByUUID, uuid)
            if handle is None:
                raise GpuReadError(f"GPU {uuid}: no permission to open it")
            self._handles[uuid] = handle
        return handle

    def _read(self, uuid: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self._call(what, GpuRef(uuid=uuid), fn, self._handle(uuid), *args)

    def ecc_counts(self, uuid: str) -> EccCounts | None:
        n = self._nvml
        read = [
            self._read(uuid, "ECC errors", n.nvmlDeviceGetTotalEccErrors, error_type, counter)
            for error_type, counter in (
                (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC),
                (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
                (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC),
                (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
            )
        ]
        if all(value is None for value in read):
            return None  # ECC off or unsupported
        return EccCounts(*(None if value is None else int(value) for value in read))

    def row_remap(self, uuid: str) -> RowRemap | None:
        rows = self._read(uuid, "remapped rows", self._nvml.nvmlDeviceGetRemappedRows)
        if rows is None:
            return None
        corr, unc, pending, failure = rows
        return RowRemap(int(corr), int(unc), bool(pending), bool(failure))

    def retired_pages(self, uuid: str) -> RetiredPages | None:
        n = self._nvml
        pending = self._read(uuid, "retired pages pending", n.nvmlDeviceGetRetiredPagesPendingStatus)
        sbe = self._read(uuid, "retired pages", n.nvmlDeviceGetRetiredPages, 0)
        dbe = self._read(uuid, "retired pages", n.nvmlDeviceGetRetiredPages, 1)
        if pending is None and sbe is None and dbe is None:
            return None
        return RetiredPages(
            sbe=None if sbe is None else len(sbe),
            dbe=None if dbe is None else len(dbe),
            pending=None if pending is None else bool(pending),
        )

    def pcie_link(self, uuid: str) -> PcieLink | None:
        n = self._nvml
        values = [
            self._read(uuid, "PCIe link", fn)
            for fn in (
                n.nvmlDeviceGetCurrPcieLinkGeneration,
                n.nvmlDeviceGetMaxPcieLinkGeneration,
                n.nvmlDeviceGetCurrPcieLinkWidth,
                n.nvmlDeviceGetMaxPcieLinkWidth,
                n.nvmlDeviceGetPcieReplayCounter,
            )
        ]
        if all(value is None for value in values):
            return None
        return PcieLink(*(None if value is None else int(value) for value in values))

    def clock_event_reasons(self, uuid: str) -> ClockEventReasons | None:
        bits = self._read(uuid, "clocks event reasons", self._nvml.nvmlDeviceGetCurrentClocksEventReasons)
        return None if bits is None else ClockEventReasons(int(bits))

    def nvlink_states(self, uuid: str) -> dict[int, bool] | None:
        handle = self._handle(uuid)
        states: dict[int, bool] = {}
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                states[link] = int(self._nvml.nvmlDeviceGetNvLinkState(handle, link)) == 1
            except pynvml.NVMLError as error:
                # Links a GPU lacks answer NOT_SUPPORTED or INVALID_ARGUMENT, depending on the driver.
                if error.value in _UNKNOWN_CODES or error.value == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                    continue
                raise _translate(error, f"NVLink {link} state", GpuRef(uuid=uuid)) from error
        return states or None

    def recovery_action(self, uuid: str) -> int | None:
        field = pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION
        values = self._read(uuid, "recovery action", self._nvml.nvmlDeviceGetFieldValues, [field])
        if values is None:
            return None
        value = values[0]
        if int(value.nvmlReturn) != pynvml.NVML_SUCCESS:
            if int(value.nvmlReturn) in _UNKNOWN_CODES:
                return None
            raise _translate(pynvml.NVMLError(int(value.nvmlReturn)), "recovery action", GpuRef(uuid=uuid))
        return _field_number(value)

    def running_pids(self, uuid: str) -> list[int] | None:
        n = self._nvml
        compute = self._read(uuid, "compute processes", n.nvmlDeviceGetComputeRunningProcesses)
        graphics = self._read(uuid, "graphics processes", n.nvmlDeviceGetGraphicsRunningProcesses)
        if compute is None and graphics is None:
            return None
        return sorted({int(process.pid) for process in (compute or []) + (graphics or [])})

    def register_events(self) -> dict[str, bool]:
        if self._event_set is None:
            self._event_set = self._call("event set", GpuRef(), self._nvml.nvmlEventSetCreate)
            if self._event_set is None:
                return {}
        supported: dict[str, bool] = {}
        for info in self.gpus():
            if info.lost:
                supported[info.uuid] = False
                continue
            handle = self._handle(info.uuid)
            available = self._read(info.uuid, "event types", self._nvml.nvmlDeviceGetSupportedEventTypes)
            mask = _BASE_EVENTS if available is None else _WANTED_EVENTS & int(available)
            try:
                self._nvml.nvmlDeviceRegisterEvents(handle, mask, self._event_set)
            except pynvml.NVMLError as error:
                if error.value not in _UNKNOWN_CODES:
                    raise _translate(error, "register events", info.ref()) from error
                mask = 0  # this GPU delivers no events; the poll and the kernel log still cover it
            supported[info.uuid] = mask != 0
        return supported

    def wait_event(self, timeout_ms: int) -> GpuEvent | None:
        if self._event_set is None:
            raise GpuReadError("no NVML event set: register_events() has not succeeded")
        try:
            data = self._nvml.nvmlEventSetWait_v2(self._event_set, timeout_ms)
        except pynvml.NVMLError as error:
            if error.value == pynvml.NVML_ERROR_TIMEOUT:
                return None
            if error.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                return GpuEvent(GpuEventKind.GPU_LOST, detail="nvmlEventSetWait: GPU is lost")
            raise _translate(error, "event wait", GpuRef()) from error
        address = _handle_address(data.device)
        gpu = self._refs_by_handle.get(address, GpuRef()) if address else GpuRef()
        event_type = int(data.eventType)
        for bit, kind in _EVENT_KINDS:
            if event_type & bit:
                xid = int(data.eventData) if kind is GpuEventKind.XID else None
                return GpuEvent(kind, gpu, xid=xid, detail=f"eventType=0x{event_type:x}")
        return GpuEvent(GpuEventKind.OTHER, gpu, detail=f"eventType=0x{event_type:x}")
