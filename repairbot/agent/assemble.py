"""Build a node agent from real signals: NVML, /dev/kmsg, sysfs, optionally dcgm-exporter.

This is the only place that names the production detectors; the sandbox
builds the same :class:`NodeAgent` from simulated backends instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repairbot.agent.host import BOOT_ID_PATH
from repairbot.agent.runner import NodeAgent
from repairbot.agent.tracker import FindingTracker
from repairbot.detectors.base import Detector, EventSource
from repairbot.detectors.bursts import DEFAULT_REPORT_INTERVAL_S, BurstBoundary
from repairbot.detectors.bursts import DEFAULT_WINDOW_S as DEFAULT_BURST_WINDOW_S
from repairbot.detectors.dcgm import DcgmExporterDetector
from repairbot.detectors.gpu_backend import GpuBackend
from repairbot.detectors.gpu_health import NvmlEventSource, NvmlHealthDetector, NvmlThresholds
from repairbot.detectors.gpucount import GpuCountDetector
from repairbot.detectors.infiniband import InfinibandDetector
from repairbot.detectors.kmsg import DEFAULT_FIRST_START_LOOKBACK_S, KmsgDetector, KmsgParser
from repairbot.model import Finding


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node: str
    sysfs_root: Path = Path("/sys")
    kmsg_path: Path = Path("/dev/kmsg")
    expected_gpus: int | None = None
    dcgm_url: str | None = None
    interval: float = 10.0
    ib_ports: tuple[str, ...] | None = None  # ``mlx5_0/1``…: only these; None = every port found
    ib_rate_gbps: float | None = None  # the link rate a healthy port runs at; None = no rate check
    state_dir: Path | None = None  # host directory for the kernel-log cursor (a hostPath); None = none kept
    # A first start without a cursor reports only kernel-log records this recent (seconds before the agent started).
    kmsg_first_start_lookback: float = DEFAULT_FIRST_START_LOOKBACK_S
    # Detector thresholds (the chart's agent.thresholds): None keeps each detector's own default.
    pcie_replays_per_minute: float | None = None  # None: DCGM's budget for the link's gen and width
    pcie_degraded_polls: int | None = None
    ib_flap_threshold: int | None = None
    ib_flap_window_s: float | None = None
    kmsg_burst_window_s: float = DEFAULT_BURST_WINDOW_S  # identical Xid lines closer than this are one burst
    kmsg_report_interval_s: float = DEFAULT_REPORT_INTERVAL_S  # how often a burst's repeats are reported
    # Finding classes an escalation rule of the operator's policy counts (globs): reported to intake even
    # when their own action is none (an application Xid 13), so the operator sees every repeat.
    counted_codes: tuple[str, ...] = ()

    def nvml_thresholds(self) -> NvmlThresholds:
        default = NvmlThresholds()
        return NvmlThresholds(
            pcie_replays_per_minute=self.pcie_replays_per_minute,
            pcie_degraded_polls=self.pcie_degraded_polls or default.pcie_degraded_polls,
            nvlink_down_action=default.nvlink_down_action,
        )

    def infiniband_knobs(self) -> dict[str, Any]:
        knobs: dict[str, Any] = {}
        if self.ib_flap_threshold is not None:
            knobs["flap_threshold"] = self.ib_flap_threshold
        if self.ib_flap_window_s is not None:
            knobs["flap_window_s"] = self.ib_flap_window_s
        return knobs


UPTIME_PATH = Path("/proc/uptime")  # the agent runs hostPID; a container's /proc/uptime is the host's anyway


def polled_detectors(config: AgentConfig, backend: GpuBackend) -> list[Detector]:
    detectors: list[Detector] = [
        NvmlHealthDetector(backend, thresholds=config.nvml_thresholds()),
        GpuCountDetector(backend, expected=config.expected_gpus, sysfs_root=config.sysfs_root),
        InfinibandDetector(
            config.sysfs_root,
            ports=config.ib_ports,
            expected_rate_gbps=config.ib_rate_gbps,
            **config.infiniband_knobs(),
        ),
    ]
    if config.dcgm_url:
        detectors.append(DcgmExporterDetector(config.dcgm_url, hostname=config.node))
    return detectors


def event_sources(
    config: AgentConfig,
    backend: GpuBackend,
    boot_id: Callable[[], str] | None = None,
    uptime: Callable[[], float] | None = None,
    bursts: BurstBoundary | None = None,
) -> list[EventSource]:
    """NVML events and the kernel log.

    ``bursts`` is the agent's boundary: a repair it performed ends both sources' bursts.
    ``boot_id`` names the boot the kernel log's sequence numbers belong to; ``uptime`` is the seconds since
    that boot, the timebase of a record's ``usec`` (how old a record is, for a first start without a cursor).
    """

    def pci_to_index(pci: str) -> int | None:
        return next((gpu.index for gpu in backend.gpus() if gpu.pci == pci), None)

    kmsg = KmsgDetector(
        config.kmsg_path,
        pci_to_index=pci_to_index,
        boot_id=boot_id or _host_boot_id,
        uptime=uptime or _host_uptime,
        first_start_lookback=config.kmsg_first_start_lookback,
        bursts=bursts,
        window_s=config.kmsg_burst_window_s,
        report_interval_s=config.kmsg_report_interval_s,
    )
    return [NvmlEventSource(backend=backend, burst_boundary=bursts), kmsg]


def _host_boot_id() -> str:
    return BOOT_ID_PATH.read_text(encoding="utf-8").strip()


def _host_uptime() -> float:
    """Seconds since boot: the first field of ``/proc/uptime`` (CLOCK_BOOTTIME, as a kmsg record's usec)."""
    return float(UPTIME_PATH.read_text(encoding="utf-8").split()[0])


def build_agent(config: AgentConfig, backend: GpuBackend) -> NodeAgent:
    bursts = BurstBoundary()
    return NodeAgent(
        node=config.node,
        detectors=polled_detectors(config, backend),
        event_sources=event_sources(config, backend, bursts=bursts),
        interval=config.interval,
        bursts=bursts,
        tracker=FindingTracker(counted_codes=config.counted_codes),
    )


def kernel_log_findings(path: Path) -> tuple[list[Finding], str]:
    """Every GPU finding in the kernel log as it stands now (for ``agent --once``).

    ``/dev/kmsg`` is read non-blocking from the start of the ring buffer
    until it has nothing more; a regular file is read whole. Returns the
    findings and a note on what could be read.
    """
    parser = KmsgParser()
    detector = KmsgDetector(path)
    findings: list[Finding] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return [], f"{path}: {error.strerror}"
    try:
        lines = _read_all(fd)
    finally:
        os.close(fd)
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            findings.append(detector.finding_from_event(event))
    return findings, f"{path}: {len(lines)} lines read"


def _read_all(fd: int) -> list[str]:
    lines: list[str] = []
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError as error:
            if error.errno == errno.EPIPE:  # /dev/kmsg: records were overwritten while we read; go on
                continue
            break
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        lines.extend(part.decode("utf-8", "replace") for part in complete)
    if pending:
        lines.append(pending.decode("utf-8", "replace"))
    return lines
