"""The demo's closing screen: one row per repair, the expectations ✓/✗, and how to explore further.

Per repair it shows what an SRE pastes into a hand-over — node, reason, the
actions taken, MTTA (detected → cordoned), MTTR (detected → back in service),
the outcome — plus what the humans saw: the Slack thread (from the fake
Slack's ``/_recorded``) and the Jira ticket (from the fake Jira).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from repairbot.model import parse_time
from repairbot_sim.demo_expectations import Verdict, phase_of, rungs_tried, status_of
from repairbot_sim.demo_feed import slack_headline

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SummaryRow:
    node: str
    reason: str
    actions: str
    mtta: str
    mttr: str
    outcome: str
    slack: str
    jira: str


def between(status: Obj, start: str, end: str) -> str:
    """The time from ``status[start]`` to ``status[end]``: ``17 ms``, ``4.1 s``, or ``-`` when either is missing."""
    if not status.get(start) or not status.get(end):
        return "-"
    seconds = (parse_time(str(status[end])) - parse_time(str(status[start]))).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _posts(recorded: Sequence[Obj], method: str) -> list[Obj]:
    return [r.get("body") or {} for r in recorded if str(r.get("path", "")).endswith(method) and r.get("status") == 200]


def slack_excerpt(repair: Obj, recorded: Sequence[Obj]) -> str:
    """The thread's parent as it reads now (its last edit), and how many replies it holds."""
    status = status_of(repair)
    ts = (status.get("slack") or {}).get("ts")
    if not ts:
        return "-"
    edits = [str(b.get("text") or "") for b in _posts(recorded, "chat.update") if b.get("ts") == ts]
    replies = [str(b.get("text") or "") for b in _posts(recorded, "chat.postMessage") if b.get("thread_ts") == ts]
    incident = status.get("incident")
    parents = [
        str(b.get("text") or "") for b in _posts(recorded, "chat.postMessage")
        if not b.get("thread_ts") and incident and str(incident) in str(b.get("text"))
    ]  # fmt: skip
    parent = edits[-1] if edits else parents[0] if parents else replies[-1] if replies else ""
    return f"{slack_headline(parent, sentences=1)} [{len(replies)} in thread]"


def summary_rows(repairs: Sequence[Obj], recorded: Sequence[Obj], tickets: Mapping[str, str]) -> list[SummaryRow]:
    """One row per repair, by node; ``tickets`` maps a Jira key to its status in Jira."""
    rows = []
    for repair in sorted(repairs, key=lambda r: (r["spec"]["nodeName"], r["metadata"]["name"])):
        status = status_of(repair)
        key = (status.get("jira") or {}).get("key")
        rows.append(
            SummaryRow(
                node=str(repair["spec"]["nodeName"]),
                reason=str(status.get("reason") or "?"),
                actions=" → ".join(rungs_tried(repair)) or str(status.get("action") or "none"),
                mtta=between(status, "detectedAt", "acknowledgedAt"),
                mttr=between(status, "detectedAt", "resolvedAt"),
                outcome=phase_of(repair),
                slack=slack_excerpt(repair, recorded),
                jira=f"{key} ({tickets[key]})" if key and key in tickets else str(key or "-"),
            )
        )
    return rows


def _beside_python(name: str) -> str:
    """``.venv/bin/kubectl`` when the tool sits beside this Python (relative when under the cwd), else its name."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


def explore_commands(state_dir: Path, *, kept: bool, slack_url: str | None = None, quarantined: str = "") -> list[str]:
    kubectl = f"{_beside_python('kubectl')} --kubeconfig {state_dir / 'kubeconfig'}"
    repairbot = _beside_python("repairbot")
    lines = [
        f"{kubectl} get gpurepairs",
        f"{kubectl} get nodes -L repairbot.io/state,repairbot.io/failure-domain",
        f"{kubectl} get gpurepair {quarantined or '<name>'} -o yaml   # a quarantine's evidence",
        f"{kubectl} get events -A",
        f"{repairbot} resume --all --kubeconfig {state_dir / 'kubeconfig'}   # end the storm: a canary goes first",
        f"{repairbot} inject --state-dir {state_dir} gpu-node-007 xid:79 --gpu 2",
    ]
    if slack_url:
        lines.append(f"curl -s {slack_url}/_recorded   # every call the fake Slack received")
    return lines


def render_summary(
    console: Console, rows: Sequence[SummaryRow], verdicts: Sequence[Verdict], explore: Sequence[str], *, kept: bool
) -> None:
    utf8 = console.encoding.lower().startswith("utf")
    good, bad = ("✓", "✗") if utf8 else ("OK", "FAIL")
    repairs = Table(title="Repairs", title_justify="left", box=box.SIMPLE_HEAD, show_lines=False)
    for header in ("NODE", "REASON", "ACTIONS TAKEN", "MTTA", "MTTR", "OUTCOME", "SLACK THREAD", "JIRA"):
        repairs.add_column(header, overflow="fold", no_wrap=header in ("NODE", "MTTA", "MTTR", "OUTCOME"))
    for row in rows:
        repairs.add_row(row.node, row.reason, row.actions, row.mtta, row.mttr, row.outcome, Text(row.slack), row.jira)
    console.print(repairs)

    expectations = Table(title="Expectations", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("", "SCENARIO", "NODES", "EXPECTED", "OBSERVED"):
        expectations.add_column(header, overflow="fold")
    for verdict in verdicts:
        nodes = verdict.scenario.nodes
        where = nodes[0] if len(nodes) == 1 else f"{nodes[0]} … {nodes[-1]}"
        expectations.add_row(
            Text(good if verdict.ok else bad, style="bold green" if verdict.ok else "bold red"),
            verdict.scenario.title, where, verdict.scenario.expected, Text(verdict.observed),
        )  # fmt: skip
    console.print(expectations)

    failed = [v for v in verdicts if not v.ok]
    if failed:
        console.print(Text(f"{bad} {len(failed)} of {len(verdicts)} scenarios did not end as expected", "bold red"))
    else:
        console.print(Text(f"{good} all {len(verdicts)} scenarios ended as expected", "bold green"))
    console.print()
    if kept:
        console.print(Text("The sandbox is still running (Ctrl-C stops it). In another terminal:", "bold"))
    else:
        console.print(Text("Explore further: `repairbot demo --keep` leaves the sandbox running; then:", "bold"))
    for line in explore:
        console.print(Text(f"  {line}"), soft_wrap=True)
