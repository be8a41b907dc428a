"""The human screen of ``repairbot status``: sections an on-call reads top to bottom, commands last.

Apart from :mod:`repairbot.operator.status` because the facts are one thing
(and ``--json`` prints them as they are) and how they fit a terminal another:
aligned columns, ages as ``3m`` or ``2h05m``, long operator messages cut to a
line (``--json`` keeps them whole).
"""

from __future__ import annotations

from collections.abc import Sequence

from repairbot.operator.status import FleetStatus

MAX_CELL = 72
"""A message wider than this is cut with an ellipsis: the screen stays one line per repair."""


def render(status: FleetStatus) -> str:
    """The whole screen, ending with a newline."""
    leader = f"operator leader: {status.leader}" if status.leader else "operator leader: none (no Lease)"
    if status.leader and status.leader_renewed:
        leader += f" (renewed {status.leader_renewed})"
    lines = [f"RepairBot status at {status.time}    {leader}", ""]
    lines += [*_repairs(status), "", *_breakers(status), "", *_budget(status), ""]
    lines += [*_incidents(status), "", *_human(status)]
    if status.unreadable:
        lines += ["", "NOT READABLE (shown as unknown)", *(f"  {what}" for what in status.unreadable)]
    return "\n".join(lines) + "\n"


def duration(seconds: float) -> str:
    """``45s``, ``3m``, ``2h05m``, ``3d04h``: as wide as it needs, no wider."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _repairs(status: FleetStatus) -> list[str]:
    if not status.repairs:
        return ["REPAIRS: none active"]
    counts = ", ".join(f"{n} {phase}" for phase, n in sorted(status.by_phase.items()))
    rows = [
        [r.name, r.node, r.phase + (" (dry run)" if r.dry_run else ""), r.reason, r.action or "-",
         duration(r.age_seconds), duration(r.in_phase_seconds), _cut(r.waiting_for or "-")]
        for r in status.repairs
    ]  # fmt: skip
    header = ["NAME", "NODE", "PHASE", "REASON", "ACTION", "AGE", "IN PHASE", "WAITING FOR"]
    return [f"REPAIRS ({len(status.repairs)} active: {counts})", *_table(header, rows)]


def _breakers(status: FleetStatus) -> list[str]:
    rows = []
    for line in status.breakers:
        where = "fleet" if line.scope == "fleet" else f"domain {line.domain}"
        detail = []
        if line.opened_at and line.state != "closed":
            detail.append(f"since {line.opened_at}")
        if line.incident and line.state != "closed":
            detail.append(f"incident {line.incident}")
        if line.canaries and line.state == "half-open":
            detail.append(f"canaries {', '.join(line.canaries)} ({line.canaries_passed} passed)")
        if line.message and line.state != "closed":
            detail.append(_cut(line.message))
        rows.append([where, line.state, "; ".join(detail) or "-"])
    return ["STORM BREAKER", *_table(["SCOPE", "STATE", "DETAIL"], rows)]


def _budget(status: FleetStatus) -> list[str]:
    budget = status.budget
    if budget.max_unavailable is None:
        title = "BUDGET (no policy read: counts only; pass --policy FILE for the cap)"
    else:
        title = f"BUDGET (maxUnavailable {budget.max_unavailable}, policy from {budget.policy_source})"
    rows = [
        [p.pool, str(p.size), str(p.cordoned), str(p.out_by_repairbot),
         "?" if p.cap is None else str(p.cap), "?" if p.cap is None else str(max(p.cap - p.cordoned, 0))]
        for p in budget.pools
    ]  # fmt: skip
    if not rows:
        return [title, "  no GPU nodes (label nvidia.com/gpu.present=true)"]
    return [title, *_table(["POOL", "GPU NODES", "CORDONED", "BY REPAIRBOT", "CAP", "FREE"], rows)]


def _incidents(status: FleetStatus) -> list[str]:
    if not status.incidents:
        return ["INCIDENTS: none open"]
    rows = [[i.id, str(len(i.repairs)), _cut(", ".join(i.nodes))] for i in status.incidents]
    return ["INCIDENTS", *_table(["INCIDENT", "REPAIRS", "NODES"], rows)]


def _human(status: FleetStatus) -> list[str]:
    if not status.waiting_for_human:
        return ["WAITING FOR A HUMAN: nothing"]
    lines = ["WAITING FOR A HUMAN"]
    for wait in status.waiting_for_human:
        lines.append(f"  {wait.what} {wait.subject}: {_cut(wait.why)}")
        lines += [f"      $ {command}" for command in wait.commands]
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        ("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))).rstrip()
        for row in (header, *rows)
    ]


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_CELL else flat[: MAX_CELL - 1] + "…"
