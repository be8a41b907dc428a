"""A dcgm-exporter for simulated nodes: ``/metrics`` in dcgm-exporter's names and labels, read from the fake GPUs.

Real Prometheus scrapes it and evaluates the chart's alert rules against it, so
the alert path (exporter → Prometheus → Alertmanager → RepairBot's webhook)
runs on the same simulated hardware as the agent path. What it mimics
(REFERENCE.md §3.3, default counters CSV plus the Xid count and DBE fields a
GPU fleet turns on):

- per-GPU series carry ``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
  ``modelName`` and ``Hostname``; a GPU that fell off the bus or vanished from
  the PCI bus has no series at all, as the exporter stops reporting it;
- ``DCGM_FI_DEV_XID_ERRORS`` is the *last* Xid, with ``err_code`` (0 before any);
- ``DCGM_EXP_XID_ERRORS_COUNT{xid}`` counts Xids in a sliding window (5 min default).

One :class:`DcgmExporterSim` serves any number of nodes, each on its own port,
because Prometheus targets are host:port and each node runs its own exporter.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from repairbot_sim.fake_nvml import FakeGpu
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.serving import serve

XID_COUNT_WINDOW = 300.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    kind: str
    help: str
    read: Callable[[FakeGpu], float]


_FAMILIES: tuple[_Family, ...] = (
    _Family("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda gpu: 34.0),
    _Family("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda gpu: 71.5),
    _Family("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
            lambda gpu: float(gpu.pcie_replays)),
    _Family("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
            lambda gpu: float(gpu.volatile_sbe)),
    _Family("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
            lambda gpu: float(gpu.volatile_dbe)),
    _Family("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors",
            lambda gpu: float(gpu.remapped_unc)),
    _Family("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors",
            lambda gpu: float(gpu.remapped_corr)),
    _Family("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
            lambda gpu: 1.0 if gpu.remap_failure else 0.0),
)  # fmt: skip


def _labels(node: str, gpu: FakeGpu, **extra: str) -> str:
    pairs = {
        "gpu": str(gpu.index), "UUID": gpu.uuid, "pci_bus_id": gpu.pci.upper(), "device": f"nvidia{gpu.index}",
        "modelName": gpu.name, "Hostname": node, **extra,
    }  # fmt: skip
    return ",".join(f'{key}="{value}"' for key, value in pairs.items())


def exposition(node: SimulatedGpuNode, *, now: float | None = None, window: float = XID_COUNT_WINDOW) -> str:
    """The node's exporter page, in the Prometheus text format."""
    at = time.monotonic() if now is None else now
    gpus = [gpu for gpu in node.backend.devices if gpu.visible and not gpu.lost]
    lines: list[str] = []
    for family in _FAMILIES:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        lines += [f"{family.name}{{{_labels(node.name, gpu)}}} {family.read(gpu)}" for gpu in gpus]
    lines += ["# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.",
              "# TYPE DCGM_FI_DEV_XID_ERRORS gauge"]  # fmt: skip
    for gpu in gpus:
        last = gpu.xids[-1][1] if gpu.xids else 0
        lines.append(f"DCGM_FI_DEV_XID_ERRORS{{{_labels(node.name, gpu, err_code=str(last))}}} {float(last)}")
    lines += ["# HELP DCGM_EXP_XID_ERRORS_COUNT Count of XID Errors within user-specified time window.",
              "# TYPE DCGM_EXP_XID_ERRORS_COUNT counter"]  # fmt: skip
    for gpu in gpus:
        for code, count in sorted(_recent_counts(gpu.xids, at - window).items()):
            lines.append(f"DCGM_EXP_XID_ERRORS_COUNT{{{_labels(node.name, gpu, xid=str(code))}}} {float(count)}")
    return "\n".join(lines) + "\n"


def _recent_counts(xids: Iterable[tuple[float, int]], since: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for at, code in xids:
        if at >= since:
            counts[code] = counts.get(code, 0) + 1
    return counts


class DcgmExporterSim:
    """One HTTP listener per node, each answering ``GET /metrics`` like that node's dcgm-exporter."""

    def __init__(self, nodes: Iterable[SimulatedGpuNode], *, window: float = XID_COUNT_WINDOW) -> None:
        self._nodes = {node.name: node for node in nodes}
        self._window = window
        self._runners: list[web.AppRunner] = []
        self.urls: dict[str, str] = {}

    async def start(self, host: str = "127.0.0.1") -> dict[str, str]:
        """Start every node's exporter; node name → ``host:port`` (a Prometheus target)."""
        for name, node in self._nodes.items():
            app = web.Application()
            app.router.add_get("/metrics", self._handler(node))
            served = await serve(app, host)
            self._runners.append(served.runner)
            self.urls[name] = served.address
        return dict(self.urls)

    def _handler(self, node: SimulatedGpuNode) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def metrics(request: web.Request) -> web.Response:
            body = exposition(node, window=self._window).encode()
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

        return metrics

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        self.urls.clear()
