"""NVML events as findings, as they happen: the pushed half of GPU health.

Kept apart from :mod:`repairbot.detectors.gpu_health` (the polled rules) because
it is a different kind of loop: it blocks in the driver for events, re-registers
when the driver comes and goes, and rate-limits a lost GPU that NVML reports on
every wait. A burst of the same event (same GPU, same Xid) is folded by the
kernel log's :class:`~repairbot.detectors.bursts.Debouncer`, with its window: one
finding at once, the repeats as a counted delta, so NVML and the kernel log tell
intake the same story about one failing GPU. It reuses the polled rules' finding builders, so an event and a poll
of the same fault produce the same finding. :mod:`~repairbot.detectors.gpu_health`
re-exports :class:`NvmlEventSource` lazily, so it never imports this module while
it loads and the two never form an import cycle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.detectors.base import SignalHealth, SignalState
from repairbot.detectors.bursts import DEFAULT_REPORT_INTERVAL_S, DEFAULT_WINDOW_S, BurstBoundary, Debouncer
from repairbot.detectors.gpu_backend import GpuBackend, GpuBackendError, GpuEvent, GpuEventKind, GpuLost, NoGpuDriver
from repairbot.detectors.gpu_findings import NO_GPU_DRIVER, gpu_finding, gpu_lost_finding, recovery_finding
from repairbot.model import Finding, GpuRef

_GPU_LOST = "gpu-lost"


def xid_finding(catalog: XidCatalog, gpu: GpuRef, xid: int, source: str) -> Finding:
    """An Xid as a finding with the catalog's response (NVML events carry no message to decode)."""
    assessment = catalog.assess(xid)
    entry = assessment.entry
    finding = gpu_finding(
        entry.finding_code,
        gpu,
        f"Xid {xid} {entry.mnemonic}: {entry.meaning}",
        response=(assessment.action, assessment.severity),
        source=source,
        mnemonic=entry.mnemonic,
        reason=assessment.reason,
        application_class=entry.application_class,
    )
    finding.xid = xid
    return finding


def finding_from_event(event: GpuEvent, catalog: XidCatalog, backend: GpuBackend) -> Finding | None:
    """An NVML event as a finding; ``None`` for events that need no action.

    A recovery-action event carries no value, so the field is read from the backend.
    """
    gpu = event.gpu
    if event.kind is GpuEventKind.XID and event.xid is not None:
        return xid_finding(catalog, gpu, event.xid, "nvml-event")
    if event.kind is GpuEventKind.GPU_LOST:
        return gpu_lost_finding(gpu, event.detail or "NVML event: GPU lost")
    if event.kind is GpuEventKind.DOUBLE_BIT_ECC:
        message = "uncorrectable (double-bit) ECC error event"
        return gpu_finding("ecc-dbe", gpu, message, source="nvml-event")
    if event.kind is GpuEventKind.ROW_REMAP_FAILURE:
        return gpu_finding(
            "row-remap-failure",
            gpu,
            "DRAM retirement (row remap) failure event",
            source="nvml-event",
            rma="RMA evaluation: row-remap failure",
        )
    if event.kind is GpuEventKind.RECOVERY_ACTION and gpu.uuid:
        try:
            value = backend.recovery_action(gpu.uuid)
        except GpuLost as lost:
            return gpu_lost_finding(gpu, str(lost))
        except GpuBackendError:
            return None  # the next poll reads the field again
        return None if value is None else recovery_finding(gpu, value)
    return None


@dataclass
class NvmlEventSource:
    """NVML events (Xid, DBE, remap failure, recovery action, GPU lost) as findings, as they happen.

    Runs in the caller's thread: ``wait_event`` blocks in C for at most
    ``wait_ms``, then ``stop`` is checked. Without a GPU driver it reports
    ``unknown`` and retries every ``retry_s``, because on GPU nodes the driver
    container often starts after the agent. A lost GPU makes NVML answer
    GPU_IS_LOST at once on every wait, so the same loss is reported again
    only after ``lost_repeat_s``. Every other event goes through a
    :class:`~repairbot.detectors.bursts.Debouncer` (``burst_window_s`` of
    silence ends a burst; ``burst_clock`` is wall-clock seconds, as the
    finding's ``first_seen`` is).
    """

    backend: GpuBackend
    catalog: XidCatalog = field(default_factory=default_catalog)
    wait_ms: int = 1000
    retry_s: float = 30.0
    lost_repeat_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    burst_window_s: float = DEFAULT_WINDOW_S
    burst_report_interval_s: float = DEFAULT_REPORT_INTERVAL_S
    burst_clock: Callable[[], float] = time.time
    burst_boundary: BurstBoundary | None = None  # the agent's: a repair ends every burst
    name: str = "nvml-events"
    health: SignalHealth = field(init=False)
    _lost_reported: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.health = SignalHealth(self.name, SignalState.UNKNOWN, "not started")

    def events(self, stop: threading.Event) -> Iterator[Finding]:
        """Yield findings until ``stop`` is set: a burst's first event at once, its repeats as counted deltas."""
        debouncer = Debouncer(
            window_s=self.burst_window_s,
            report_interval_s=self.burst_report_interval_s,
            clock=self.burst_clock,
            boundary=self.burst_boundary,
        )
        for finding in self._raw_events(stop):
            if finding is not None:
                # A lost GPU keeps its own repeat rule (``lost_repeat_s``): each report keeps the loss alive.
                emitted = finding if finding.code == _GPU_LOST else debouncer.observe(finding)
                if emitted is not None:
                    yield emitted
            yield from debouncer.due_reports()
        yield from debouncer.due_reports()

    def _raw_events(self, stop: threading.Event) -> Iterator[Finding | None]:
        """Every event's finding as NVML hands it out; None after each wait, so bursts are looked at between."""
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    self.backend.init()
                    support = self.backend.register_events()
                    registered = True
                    unsupported = sorted(uuid for uuid, ok in support.items() if not ok)
                    message = f"events registered on {len(support) - len(unsupported)} of {len(support)} GPUs"
                    if unsupported:
                        message += f"; no event support on {', '.join(unsupported)}"
                    self.health = SignalHealth(self.name, SignalState.OK, message)
                event = self.backend.wait_event(self.wait_ms)
            except NoGpuDriver:
                registered = False
                self.health = SignalHealth(self.name, SignalState.UNKNOWN, NO_GPU_DRIVER)
                stop.wait(self.retry_s)
                continue
            except GpuBackendError as error:
                registered = False
                self.health = SignalHealth(self.name, SignalState.UNKNOWN, str(error))
                stop.wait(min(self.retry_s, 1.0))
                continue
            if event is None:
                yield None
                continue
            yield self._finding(event)
            if event.kind is GpuEventKind.GPU_LOST:
                stop.wait(min(self.wait_ms / 1000.0, 1.0))

    def _finding(self, event: GpuEvent) -> Finding | None:
        if event.kind is GpuEventKind.GPU_LOST:
            key, now = event.gpu.identity(), self.clock()
            last = self._lost_reported.get(key)
            if last is not None and now - last < self.lost_repeat_s:
                return None
            self._lost_reported[key] = now
        return finding_from_event(event, self.catalog, self.backend)
