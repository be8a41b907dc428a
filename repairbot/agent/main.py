"""``repairbot agent``: the DaemonSet's entry point and the SRE's ``--once`` health report."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from repairbot.agent.assemble import AgentConfig, build_agent, kernel_log_findings
from repairbot.agent.host import LinuxHost
from repairbot.agent.server import AgentHttpServer
from repairbot.agent.service import connect_agent
from repairbot.detectors.gpu_backend import GpuBackendError
from repairbot.detectors.kmsg import DEFAULT_FIRST_START_LOOKBACK_S
from repairbot.detectors.nvml import PynvmlBackend
from repairbot.kube.client import api_client
from repairbot.kube.nodes import node_gpu_count

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentOptions:
    node: str
    kubeconfig: str | None = None
    sysfs_root: Path = Path("/sys")
    kmsg_path: Path = Path("/dev/kmsg")
    expected_gpus: int | None = None
    dcgm_url: str | None = None
    interval: float = 10.0
    metrics_port: int = 9402
    ib_ports: tuple[str, ...] | None = None
    ib_rate_gbps: float | None = None
    state_dir: Path | None = None
    kmsg_first_start_lookback: float = DEFAULT_FIRST_START_LOOKBACK_S
    pcie_replays_per_minute: float | None = None
    pcie_degraded_polls: int | None = None
    ib_flap_threshold: int | None = None
    ib_flap_window_s: float | None = None
    kmsg_burst_window_s: float | None = None
    kmsg_report_interval_s: float | None = None
    counted_codes: tuple[str, ...] = ()

    def config(self, expected_gpus: int | None = None) -> AgentConfig:
        return AgentConfig(
            node=self.node,
            sysfs_root=self.sysfs_root,
            kmsg_path=self.kmsg_path,
            expected_gpus=self.expected_gpus if self.expected_gpus is not None else expected_gpus,
            dcgm_url=self.dcgm_url,
            interval=self.interval,
            ib_ports=self.ib_ports,
            ib_rate_gbps=self.ib_rate_gbps,
            state_dir=self.state_dir,
            kmsg_first_start_lookback=self.kmsg_first_start_lookback,
            pcie_replays_per_minute=self.pcie_replays_per_minute,
            pcie_degraded_polls=self.pcie_degraded_polls,
            ib_flap_threshold=self.ib_flap_threshold,
            ib_flap_window_s=self.ib_flap_window_s,
            counted_codes=self.counted_codes,
            **self._kmsg_knobs(),
        )

    def _kmsg_knobs(self) -> dict[str, float]:
        """The kernel log's burst knobs that were set (unset: the detector's defaults)."""
        knobs = {"kmsg_burst_window_s": self.kmsg_burst_window_s, "kmsg_report_interval_s": self.kmsg_report_interval_s}
        return {key: value for key, value in knobs.items() if value is not None}


def run_once(options: AgentOptions, *, as_json: bool, out: TextIO) -> int:
    """Look at every GPU and signal once, print it, exit 1 if a GPU fault was found."""
    backend = PynvmlBackend()
    agent = build_agent(options.config(), backend)
    report = agent.poll_once()
    kernel_findings, kernel_note = kernel_log_findings(options.kmsg_path)
    body = report.to_dict()
    body["kernelLog"] = {"source": kernel_note, "findings": [f.to_dict() for f in kernel_findings]}
    _shutdown(backend)
    faulty = report.condition.status == "False" or any(f.action.value != "none" for f in kernel_findings)
    if as_json:
        out.write(json.dumps(body, indent=2, default=str) + "\n")
    else:
        _print_text(body, out)
    return 1 if faulty else 0


def run_agent(options: AgentOptions) -> int:
    """Run until SIGTERM: detectors, intake, node condition, executor, /metrics."""
    api = api_client(options.kubeconfig)
    expected = options.expected_gpus if options.expected_gpus is not None else node_gpu_count(api, options.node)
    backend = PynvmlBackend()
    agent = build_agent(options.config(expected), backend)
    host = LinuxHost(process_lister=lambda gpu: backend.running_pids(gpu.uuid) or [] if gpu.uuid else [])
    connected = connect_agent(agent, api, host, options.state_dir)
    server = None
    if options.metrics_port:
        stall_after = 6 * options.interval
        server = AgentHttpServer(agent.metrics, host="0.0.0.0", port=options.metrics_port, stall_after=stall_after)
        server.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    connected.start()
    log.info("agent started node=%s expected_gpus=%s interval=%s", options.node, expected, options.interval)
    stop.wait()
    connected.stop()
    if server:
        server.stop()
    _shutdown(backend)
    return 0


def _shutdown(backend: PynvmlBackend) -> None:
    with contextlib.suppress(GpuBackendError):
        backend.shutdown()


def _print_text(body: dict[str, Any], out: TextIO) -> None:
    condition = body["condition"]
    out.write(f"node {body['node']}: GPUHealthy={condition['status']} ({condition['reason']}) {condition['message']}\n")
    for signal_report in body["signals"]:
        message = f" — {signal_report['message']}" if signal_report["message"] else ""
        out.write(f"  {signal_report['detector']:<14} {signal_report['state']}{message}\n")
        for finding in signal_report["findings"]:
            out.write(f"    {finding['code']} action={finding['action']}: {finding['message']}\n")
    kernel = body["kernelLog"]
    out.write(f"  {'kernel log':<14} {kernel['source']}\n")
    for finding in kernel["findings"]:
        out.write(f"    {finding['code']} action={finding['action']}: {finding['message']}\n")
