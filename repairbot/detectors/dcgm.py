"""Optional: findings from a node-local dcgm-exporter's ``/metrics`` (REFERENCE §3.3).

Where the GPU Operator already runs dcgm-exporter, its view is a second
opinion next to our own NVML reads (DCGM's health watches judge a few things
we don't). It is strictly optional: an exporter that is down, slow or
unparseable makes this detector ``unknown``, never a finding, because a dead
exporter says nothing about the GPUs.

Read:

* ``DCGM_EXP_XID_ERRORS_COUNT{xid=…}`` > 0 — Xids in the exporter's window → ``xid-<n>``;
* ``DCGM_FI_DEV_XID_ERRORS`` (4.6: ``…_XID_ERROR``) — the *last* Xid, which stays
  non-zero forever, so only a change between scrapes counts;
* ``DCGM_FI_DEV_ECC_DBE_VOL_TOTAL`` > 0 → ``ecc-dbe``;
* ``DCGM_FI_DEV_ROW_REMAP_FAILURE`` (4.6: ``…_FAILED``) > 0 → ``row-remap-failure``;
* ``DCGM_EXP_GPU_HEALTH_STATUS`` = 10 (WARN) / 20 (FAIL) → ``dcgm-health-warn`` / ``-fail``.

Series are filtered to this node by either spelling of the host label
(``Hostname`` in released exporters, ``hostname`` on main since May 2026).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.detectors.base import DetectorReport, SignalHealth, SignalState
from repairbot.detectors.kernel_log import normalize_pci
from repairbot.model import Action, Finding, GpuRef, Severity

DEFAULT_URL = "http://127.0.0.1:9400/metrics"
HOST_LABELS = ("Hostname", "hostname")
XID_COUNT = "DCGM_EXP_XID_ERRORS_COUNT"
LAST_XID = ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_XID_ERROR")
ECC_DBE_VOLATILE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
ROW_REMAP_FAILURE = ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_ROW_REMAP_FAILED")
HEALTH_STATUS = "DCGM_EXP_GPU_HEALTH_STATUS"
HEALTH_WARN, HEALTH_FAIL = 10, 20

Sample = tuple[str, dict[str, str], float]


def gpu_from_labels(labels: dict[str, str]) -> GpuRef:
    """The GPU a series is about, from ``gpu``, ``UUID``/``uuid`` and ``pci_bus_id``."""
    index = labels.get("gpu")
    try:
        pci = normalize_pci(labels["pci_bus_id"]) if labels.get("pci_bus_id") else None
    except ValueError:
        pci = None
    return GpuRef(
        index=int(index) if index and index.isdigit() else None,
        uuid=labels.get("UUID") or labels.get("uuid") or None,
        pci=pci,
    )


def parse_exposition(text: str) -> Iterator[Sample]:
    """Every sample as ``(metric name, labels, value)``; counter names lose the parser's ``_total``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if family.type == "counter" and name.endswith("_total"):
                name = name[: -len("_total")]
            yield name, dict(sample.labels), float(sample.value)


class DcgmExporterDetector:
    """Scrapes one dcgm-exporter and reports what its metrics say about this node's GPUs."""

    name = "dcgm-exporter"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        hostname: str | None = None,
        timeout_s: float = 2.0,
        catalog: XidCatalog | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        """``hostname`` keeps only series for this node (an exporter behind a Service may mix nodes)."""
        self._url = url
        self._hostname = hostname
        self._timeout_s = timeout_s
        self._catalog = catalog or default_catalog()
        self._client = client
        self._last_xid: dict[str, int] = {}

    def _scrape(self) -> str:
        if self._client is not None:
            response = self._client.get(self._url, timeout=self._timeout_s)
        else:
            response = httpx.get(self._url, timeout=self._timeout_s)
        response.raise_for_status()
        return response.text

    def poll(self) -> DetectorReport:
        report = DetectorReport(self.name)
        try:
            samples = list(parse_exposition(self._scrape()))
        except (httpx.HTTPError, ValueError) as error:
            report.health = SignalHealth(
                self.name, SignalState.UNKNOWN, f"dcgm-exporter at {self._url} unreadable: {error}"
            )
            return report
        mine = [sample for sample in samples if self._is_this_node(sample[1])]
        report.observations = {"url": self._url, "series": len(mine)}
        for name, labels, value in mine:
            report.findings.extend(self._judge(name, labels, value, report.observations))
        return report

    def _is_this_node(self, labels: dict[str, str]) -> bool:
        if self._hostname is None:
            return True
        hosts = [labels[label] for label in HOST_LABELS if label in labels]
        return not hosts or self._hostname in hosts

    def _judge(self, name: str, labels: dict[str, str], value: float, seen: dict[str, Any]) -> list[Finding]:
        gpu = gpu_from_labels(labels)
        if name == XID_COUNT and value > 0 and labels.get("xid", "").isdigit():
            return [self._xid(gpu, int(labels["xid"]), f"{value:g} in the exporter's window")]
        if name in LAST_XID:
            key = gpu.identity()
            previous = self._last_xid.get(key)
            self._last_xid[key] = int(value)
            seen.setdefault("last_xid", {})[key] = int(value)
            if previous is not None and int(value) not in (0, previous):
                return [self._xid(gpu, int(value), f"last Xid changed from {previous}")]
            return []
        if name == ECC_DBE_VOLATILE and value > 0:
            return [
                self._finding(
                    "ecc-dbe",
                    gpu,
                    Action.GPU_RESET,
                    Severity.CRITICAL,
                    f"{value:g} volatile uncorrectable ECC errors (dcgm-exporter)",
                    {name: f"{value:g}"},
                )
            ]
        if name in ROW_REMAP_FAILURE and value > 0:
            return [
                self._finding(
                    "row-remap-failure",
                    gpu,
                    Action.GPU_RESET,
                    Severity.CRITICAL,
                    "row remap failure (dcgm-exporter)",
                    {name: f"{value:g}", "rma": "RMA evaluation: row-remap failure"},
                )
            ]
        if name == HEALTH_STATUS and value >= HEALTH_WARN:
            failed = value >= HEALTH_FAIL
            watch = labels.get("health_watch", "unknown")
            return [
                self._finding(
                    "dcgm-health-fail" if failed else "dcgm-health-warn",
                    gpu,
                    Action.NOTIFY,
                    Severity.CRITICAL if failed else Severity.WARNING,
                    f"DCGM health watch {watch}: {'FAIL' if failed else 'WARN'}",
                    {"health_watch": watch, "health_error_code": labels.get("health_error_code", "")},
                )
            ]
        return []

    def _xid(self, gpu: GpuRef, xid: int, why: str) -> Finding:
        assessment = self._catalog.assess(xid)
        entry = assessment.entry
        finding = self._finding(
            entry.finding_code,
            gpu,
            assessment.action,
            assessment.severity,
            f"Xid {xid} {entry.mnemonic}: {entry.meaning}",
            {"dcgm": why, "mnemonic": entry.mnemonic},
        )
        finding.xid = xid
        return finding

    @staticmethod
    def _finding(
        code: str, gpu: GpuRef, action: Action, severity: Severity, message: str, evidence: dict[str, str]
    ) -> Finding:
        label = gpu.identity() or "unknown"
        return Finding(
            code=code,
            message=f"GPU {label}: {message}",
            action=action,
            severity=severity,
            gpu=gpu,
            evidence={"source": "dcgm-exporter", **evidence},
        )
