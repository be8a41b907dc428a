"""GPU health rules over any :class:`GpuBackend`, and the polled detector that applies them.

The pushed half, :class:`NvmlEventSource`, lives in :mod:`repairbot.detectors.nvml_events`
and is re-exported here.

The thresholds and the mapping from a reading to a finding follow
REFERENCE.md §2 (NVML) and DCGM's health watches where NVIDIA gives numbers:

* volatile uncorrectable ECC > 0 → ``ecc-dbe`` (reset; DCGM calls it FAIL);
* row remap pending → ``row-remap-pending`` (reset at the next drain: running
  work is unaffected, the spare row is only used after a reset);
* row remap failure → ``row-remap-failure`` (reset first, then the ladder;
  the flag is sticky, so the evidence asks for an RMA evaluation);
* recovery-action field ≠ NONE → ``recovery-action`` with the driver's own verdict;
* PCIe trained below its maximum → ``pcie-degraded``; replays faster than
  DCGM's per-lane budget → ``pcie-replay``;
* hardware slowdown / thermal / power-brake clock reasons → ``thermal``;
* an NVLink that was active and is not → ``nvlink-down``;
* GPU_IS_LOST on any call → ``gpu-lost`` (reboot).

Findings are level-triggered: a condition is reported on every poll while it
holds, and intake folds repeats into one finding. Rate rules (PCIe replays)
need two polls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from repairbot.detectors.base import DetectorReport, SignalHealth, SignalState
from repairbot.detectors.gpu_backend import (
    GpuBackend,
    GpuBackendError,
    GpuInfo,
    GpuLost,
    GpuReadError,
    GpuResetRequired,
    NoGpuDriver,
)
from repairbot.detectors.gpu_findings import (
    FINDING_RESPONSES,
    NO_GPU_DRIVER,
    gpu_finding,
    gpu_lost_finding,
    recovery_finding,
)
from repairbot.detectors.nvml_events import NvmlEventSource, finding_from_event, xid_finding
from repairbot.model import Action, Finding, GpuRef, Severity

__all__ = [
    "FINDING_RESPONSES",
    "NO_GPU_DRIVER",
    "NvmlEventSource",
    "NvmlHealthDetector",
    "NvmlThresholds",
    "finding_from_event",
    "gpu_lost_finding",
    "recovery_finding",
    "xid_finding",
]


# DCGM's PCIe watch: replays per minute per lane tolerated at each generation (1e-12 BER).
DCGM_REPLAYS_PER_LANE_PER_MINUTE = {1: 0.15, 2: 0.3, 3: 0.48, 4: 0.96, 5: 1.92, 6: 3.84}


@dataclass(frozen=True, slots=True)
class NvmlThresholds:
    """Knobs of the polled rules, all with REFERENCE-backed defaults.

    ``pcie_replays_per_minute`` None uses DCGM's budget for the link's current
    gen times width (x16 Gen5 ⇒ 31/min). ``pcie_degraded_polls`` consecutive polls
    must see a downtrained link, and a generation drop only counts while the
    GPU has processes, because idle GPUs lower their PCIe generation to save power.
    ``nvlink_down_action`` is NOTIFY: a dead link with no Xid is often the peer,
    the switch tray or a cable, which a GPU reset does not fix; the Xid 74/149
    path already drives resets when the driver blames the GPU.
    """

    pcie_replays_per_minute: float | None = None
    pcie_degraded_polls: int = 3
    nvlink_down_action: Action = Action.NOTIFY


class NvmlHealthDetector:
    """Polls every GPU's health counters; see the module docstring for the rules."""

    name = "nvml"

    def __init__(
        self,
        backend: GpuBackend,
        *,
        thresholds: NvmlThresholds | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._thresholds = thresholds or NvmlThresholds()
        self._clock = clock
        self._replays: dict[str, tuple[float, int]] = {}  # uuid → (when, counter) at the last poll
        self._degraded_polls: dict[str, int] = {}
        self._links_seen_active: dict[str, set[int]] = {}

    def poll(self) -> DetectorReport:
        report = DetectorReport(self.name)
        try:
            self._backend.init()
            gpus = self._backend.gpus()
        except NoGpuDriver:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, NO_GPU_DRIVER)
            return report
        except GpuBackendError as error:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, str(error))
            return report
        problems: list[str] = []
        for gpu in gpus:
            seen: dict[str, Any] = {"index": gpu.index, "uuid": gpu.uuid, "pci": gpu.pci, "name": gpu.name}
            report.observations[gpu.uuid or gpu.pci or str(gpu.index)] = seen
            if gpu.lost:
                seen["lost"] = True
                report.findings.append(gpu_lost_finding(gpu.ref(), "NVML enumeration answered GPU_IS_LOST"))
                continue
            try:
                report.findings.extend(self._check(gpu, seen, problems))
            except GpuLost as lost:
                seen["lost"] = True
                report.findings.append(gpu_lost_finding(gpu.ref(), str(lost)))
            except GpuResetRequired as error:
                report.findings.append(gpu_finding("reset-required", gpu.ref(), str(error)))
            except NoGpuDriver:
                report.health = SignalHealth(self.name, SignalState.UNKNOWN, NO_GPU_DRIVER)
                return report
        if problems:
            report.health = SignalHealth(self.name, SignalState.UNKNOWN, "; ".join(problems))
        return report

    def _check(self, gpu: GpuInfo, seen: dict[str, Any], problems: list[str]) -> list[Finding]:
        """All readings of one GPU. A reading that fails is recorded and the others still run."""
        ref = gpu.ref()
        findings: list[Finding] = []
        checks: list[tuple[str, Callable[[], Any], Callable[[Any], list[Finding]]]] = [
            ("ecc", lambda: self._backend.ecc_counts(gpu.uuid), lambda ecc: self._ecc(ref, ecc)),
            ("row_remap", lambda: self._backend.row_remap(gpu.uuid), lambda rows: self._rows(ref, rows)),
            ("retired_pages", lambda: self._backend.retired_pages(gpu.uuid), lambda p: self._pages(ref, p)),
            ("recovery_action", lambda: self._backend.recovery_action(gpu.uuid), lambda v: self._recovery(ref, v)),
            ("running_pids", lambda: self._backend.running_pids(gpu.uuid), lambda _: []),
            ("pcie", lambda: self._backend.pcie_link(gpu.uuid), lambda link: self._pcie(ref, link, seen)),
            (
                "clock_event_reasons",
                lambda: self._backend.clock_event_reasons(gpu.uuid),
                lambda reasons: self._clocks(ref, reasons),
            ),
            ("nvlink", lambda: self._backend.nvlink_states(gpu.uuid), lambda s: self._nvlink(ref, s)),
        ]
        for key, read, judge in checks:
            try:
                value = read()
            except GpuReadError as error:
                seen[key] = None
                problems.append(str(error))
                continue
            seen[key] = _observable(value)
            if value is not None:
                findings.extend(judge(value))
        return findings

    def _ecc(self, ref: GpuRef, ecc: Any) -> list[Finding]:
        if not ecc.volatile_uncorrected:
            return []
        return [
            gpu_finding(
                "ecc-dbe",
                ref,
                f"{ecc.volatile_uncorrected} uncorrectable (double-bit) ECC errors since the last reset",
                volatile_uncorrected=ecc.volatile_uncorrected,
                aggregate_uncorrected=ecc.aggregate_uncorrected,
            )
        ]

    def _rows(self, ref: GpuRef, rows: Any) -> list[Finding]:
        found = []
        if rows.failure:
            found.append(
                gpu_finding(
                    "row-remap-failure",
                    ref,
                    "a row remap failed: no spare rows left for a failing memory row",
                    rma="RMA evaluation: row-remap failure counts against NVIDIA's RMA thresholds",
                    ladder="gpu-reset → reboot → quarantine",
                    uncorrectable_rows=rows.unc,
                )
            )
        if rows.pending:
            found.append(
                gpu_finding(
                    "row-remap-pending",
                    ref,
                    "a memory row remap is pending; reset at the next drain to apply it",
                    when="reset at next drain",
                    correctable_rows=rows.corr,
                    uncorrectable_rows=rows.unc,
                )
            )
        return found

    def _pages(self, ref: GpuRef, pages: Any) -> list[Finding]:
        if not pages.pending:
            return []
        return [
            gpu_finding(
                "retired-pages-pending",
                ref,
                "retired memory pages are pending; a reset activates the retirement",
                sbe_pages=pages.sbe,
                dbe_pages=pages.dbe,
            )
        ]

    def _recovery(self, ref: GpuRef, value: int) -> list[Finding]:
        finding = recovery_finding(ref, value)
        return [finding] if finding else []

    def _pcie(self, ref: GpuRef, link: Any, seen: dict[str, Any]) -> list[Finding]:
        uuid = ref.uuid or ""
        found = []
        busy = bool(seen.get("running_pids"))
        counts_as_degraded = link.width_degraded() or (busy and link.degraded())
        polls = self._degraded_polls.get(uuid, 0) + 1 if counts_as_degraded else 0
        self._degraded_polls[uuid] = polls
        if polls >= self._thresholds.pcie_degraded_polls:
            found.append(
                gpu_finding(
                    "pcie-degraded",
                    ref,
                    f"PCIe link trained at Gen{link.cur_gen} x{link.cur_width}, "
                    f"capable of Gen{link.max_gen} x{link.max_width}",
                    current=f"Gen{link.cur_gen} x{link.cur_width}",
                    maximum=f"Gen{link.max_gen} x{link.max_width}",
                    consecutive_polls=polls,
                )
            )
        if link.replay_counter is None:
            return found
        now = self._clock()
        previous = self._replays.get(uuid)
        self._replays[uuid] = (now, link.replay_counter)
        if previous is None or now <= previous[0] or link.replay_counter < previous[1]:
            return found  # first sample, or the counter was reset with the GPU
        rate = (link.replay_counter - previous[1]) / ((now - previous[0]) / 60.0)
        limit = self._replay_limit(link)
        seen["pcie_replays_per_minute"] = round(rate, 2)
        if limit is not None and rate > limit:
            found.append(
                gpu_finding(
                    "pcie-replay",
                    ref,
                    f"PCIe replays at {rate:.1f}/min exceed {limit:.0f}/min",
                    replays_per_minute=round(rate, 2),
                    limit_per_minute=limit,
                    counter=link.replay_counter,
                )
            )
        return found

    def _replay_limit(self, link: Any) -> float | None:
        if self._thresholds.pcie_replays_per_minute is not None:
            return self._thresholds.pcie_replays_per_minute
        per_lane = DCGM_REPLAYS_PER_LANE_PER_MINUTE.get(link.cur_gen or 0)
        if per_lane is None or not link.cur_width:
            return None
        return float(math.ceil(per_lane * link.cur_width))

    def _clocks(self, ref: GpuRef, reasons: Any) -> list[Finding]:
        hardware = reasons.hardware_slowdown()
        if not hardware:
            return []
        return [
            gpu_finding(
                "thermal",
                ref,
                f"hardware clock slowdown active: {', '.join(hardware)}",
                reasons=", ".join(hardware),
                bitmask=f"0x{reasons.bitmask:x}",
            )
        ]

    def _nvlink(self, ref: GpuRef, states: dict[int, bool]) -> list[Finding]:
        seen_active = self._links_seen_active.setdefault(ref.uuid or "", set())
        seen_active.update(link for link, active in states.items() if active)
        down = sorted(link for link in seen_active if not states.get(link, False))
        if not down:
            return []
        action = self._thresholds.nvlink_down_action
        return [
            gpu_finding(
                "nvlink-down",
                ref,
                f"NVLink link(s) {', '.join(map(str, down))} went inactive",
                response=(action, Severity.CRITICAL if action.is_destructive else Severity.WARNING),
                links=",".join(map(str, down)),
                active_links=sum(states.values()),
                total_links=len(states),
            )
        ]


def _observable(value: Any) -> Any:
    """A reading as JSON-friendly data for ``--once`` reports."""
    if value is None or isinstance(value, int | float | str | bool | list | dict):
        return value
    data = asdict(value)
    if hasattr(value, "active"):
        data["active"] = value.active()
    return data
