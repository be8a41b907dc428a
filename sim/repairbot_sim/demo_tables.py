"""The two tables the demo keeps on screen, as plain rows: the nodes, and the GPURepairs as kubectl shows them.

The GPURepair columns are read from the chart's CRD (``additionalPrinterColumns``),
so the demo shows what ``kubectl get gpurepairs`` shows even when the columns
change. Pure: the live view and the plain view render these rows their own way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from repairbot.model import CONDITION_GPU_HEALTHY, LABEL_FAILURE_DOMAIN, LABEL_STATE, parse_time
from repairbot_sim.crd import load_crd
from repairbot_sim.kube.tables import human_duration, jsonpath_values

Obj = Mapping[str, Any]

READY_WORDS = {"True": "Ready", "False": "NotReady", "Unknown": "Unknown"}
NODE_HEADERS = ("NAME", "READY", "STATE", "CORDONED", "GPUS", "GPU HEALTH", "FAILURE DOMAIN")


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def lines(self) -> list[str]:
        """Left-aligned columns two spaces apart, like kubectl's output."""
        widths = [max([len(h), *(len(r[i]) for r in self.rows)]) for i, h in enumerate(self.headers)]
        out = [self.headers, *self.rows]
        return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in out]


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    name: str
    kind: str
    json_path: str


@lru_cache(maxsize=1)
def printer_columns() -> tuple[PrinterColumn, ...]:
    """The GPURepair's ``additionalPrinterColumns`` from the chart's CRD (its served version)."""
    versions = load_crd()["spec"]["versions"]
    served = next((v for v in versions if v.get("storage")), versions[0])
    return tuple(
        PrinterColumn(str(c["name"]), str(c.get("type", "string")), str(c["jsonPath"]))
        for c in served.get("additionalPrinterColumns") or []
    )


def _cell(column: PrinterColumn, obj: Obj, now: datetime) -> str:
    values = jsonpath_values(obj, column.json_path)
    if not values or values[0] is None:
        return ""
    value = values[0]
    if column.kind == "date":
        try:
            return human_duration((now - parse_time(str(value))).total_seconds())
        except ValueError:
            return "<invalid>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def repair_table(repairs: Sequence[Obj], *, now: datetime | None = None) -> Table:
    """``kubectl get gpurepairs``: NAME, then the CRD's printer columns, sorted by name."""
    moment = now or datetime.now(UTC)
    columns = printer_columns()
    rows = tuple(
        (str(r["metadata"]["name"]), *(_cell(c, r, moment) for c in columns))
        for r in sorted(repairs, key=lambda r: str(r["metadata"]["name"]))
    )
    return Table(("NAME", *(c.name.upper() for c in columns)), rows)


def _condition(node: Obj, kind: str) -> Obj:
    return next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == kind), {})


def node_row(node: Obj) -> tuple[str, ...]:
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    labels = meta.get("labels") or {}
    ready = READY_WORDS.get(str(_condition(node, "Ready").get("status")), "?")
    health = _condition(node, CONDITION_GPU_HEALTHY)
    gpu_health = (
        "healthy" if health.get("status") == "True" else str(health.get("reason") or "unhealthy") if health else "-"
    )
    gpus = (status.get("capacity") or {}).get("nvidia.com/gpu") or labels.get("nvidia.com/gpu.count") or "-"
    return (
        str(meta.get("name", "")), ready, str(labels.get(LABEL_STATE) or "-"),
        "yes" if spec.get("unschedulable") else "", str(gpus), gpu_health, str(labels.get(LABEL_FAILURE_DOMAIN) or "-"),
    )  # fmt: skip


def node_table(nodes: Sequence[Obj]) -> Table:
    return Table(NODE_HEADERS, tuple(node_row(n) for n in sorted(nodes, key=lambda n: n["metadata"]["name"])))
