"""The words: what Jira says about a repair, and the phrases Slack and Jira share, as pure functions of a view.

The shared phrases (a step, a finding, a GPU, a duration) make a step read the
same in the thread, the ticket and the log. Messages are written for an SRE
glancing at a phone: the node and what is wrong first, what RepairBot is doing
about it next, links last. Slack's messages, with Block Kit and its limits,
are in :mod:`repairbot.notify.slack_messages`. Jira gets v2 wiki markup (plain
strings; the library talks REST v2 to Cloud and Server).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.model import Action, Finding, GpuRef, HistoryEntry
from repairbot.notify.view import RepairView

FAILURE_OUTCOMES = frozenset({"failed", "failure", "error", "timeout", "timed-out", "blocked", "quarantined"})
"""History outcomes that need a human: their replies mention the on-call handle."""

MAX_STORM_NODES_LISTED = 40
"""A storm message lists this many nodes and counts the rest: Slack caps a section at 3,000 characters."""
MAX_STORM_NODES_IN_TICKET = 400
"""The storm ticket lists this many nodes with their phase and counts the rest; the full list is attached."""


# ---------------------------------------------------------------- shared phrases


def format_duration(delta: timedelta | None) -> str:
    """``850ms``, ``42s``, ``12m 5s``, ``3h 4m``: precise when short (MTTA), coarse when long (MTTR)."""
    if delta is None:
        return "n/a"
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if minutes else f"{hours}h"


def describe_gpu(gpu: GpuRef) -> str:
    """``GPU 3 (serial 1650…, GPU-8f2c…, 0000:3b:00.0)``; ``whole node`` when no GPU is named.

    A MIG slice is named too (``…, GPU instance 5, compute instance 1``): its workloads are the ones hit.
    """
    return gpu.describe() or "whole node"


def describe_finding(finding: Finding, catalog: XidCatalog) -> str:
    """``Xid 79 (GPU has fallen off the bus) on GPU 3 (…), seen 2x``: the class, its meaning and where."""
    what = finding.code
    if finding.xid is not None:
        what = f"Xid {finding.xid} ({catalog.lookup(finding.xid).meaning})"
    times = f", seen {finding.count}x" if finding.count > 1 else ""
    return f"{what} on {describe_gpu(finding.gpu)}{times}"


def _gpu_summary(view: RepairView) -> str:
    gpus = view.gpus
    return ", ".join(describe_gpu(g) for g in gpus) if gpus else "whole node"


def _action_summary(view: RepairView) -> str:
    if view.action is None:
        return "none yet"
    attempt = f" (attempt {view.attempt})" if view.attempt else ""
    return f"{view.action.value}{attempt}"


def _link_labels(view: RepairView) -> list[tuple[str, str]]:
    names = {"dashboardURL": "Grafana dashboard", "panelURL": "Grafana panel", "generatorURL": "Alert rule",
             "silenceURL": "Silence"}
    out: list[tuple[str, str]] = []
    if view.jira_key:
        out.append((view.jira_url or "", f"Jira {view.jira_key}"))
    if view.runbook_url:
        out.append((view.runbook_url, "Runbook"))
    out.extend((url, names.get(key, key)) for key, url in view.links().items())
    return out


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_step(entry: HistoryEntry) -> str:
    """One history step as a sentence: ``drain: blocked — PDB ml/train allows 0 disruptions``."""
    parts = [entry.step]
    if entry.action is not None and entry.action.value not in entry.step:
        parts.append(f"({entry.action.value}{f', attempt {entry.attempt}' if entry.attempt else ''})")
    head = " ".join(parts)
    outcome = f": {entry.outcome}" if entry.outcome else ""
    message = f" — {entry.message}" if entry.message else ""
    return f"{head}{outcome}{message}"


def is_failure(entry: HistoryEntry) -> bool:
    return entry.outcome.lower() in FAILURE_OUTCOMES or entry.step.lower() in ("quarantine", "quarantined")


@dataclass(frozen=True, slots=True)
class StormView:
    """A storm as Slack and Jira see it: its incident, why it opened, and every member repair's node and phase.

    Built from the incident's GPURepairs each time a member joins or moves on,
    so the storm's one message and one ticket say how many nodes it holds *now*.
    """

    incident: str
    members: tuple[tuple[str, str], ...] = ()
    detail: str = ""
    jira_key: str | None = None
    jira_url: str | None = None

    @classmethod
    def of(
        cls,
        incident: str,
        members: Iterable[tuple[str, str]],
        *,
        detail: str = "",
        jira_key: str | None = None,
        jira_url: str | None = None,
    ) -> StormView:
        """One entry per node (its latest phase wins), sorted by node, so equal storms render equal text."""
        latest = dict(members)
        return cls(incident, tuple(sorted(latest.items())), detail, jira_key, jira_url)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(node for node, _ in self.members)

    def phase_counts(self) -> str:
        """``5 Blocked · 2 Succeeded``, phases in first-seen order of the sorted members."""
        counts = Counter(phase for _, phase in self.members)
        return " · ".join(f"{n} {phase}" for phase, n in counts.items())


def _listed(members: Sequence[tuple[str, str]], limit: int, *, code: bool) -> str:
    """The first ``limit`` members with their phase, then ``and N more``: bounded for Slack and Jira alike."""
    shown = [f"`{node}` ({phase})" if code else f"{node} ({phase})" for node, phase in members[:limit]]
    more = len(members) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


# ---------------------------------------------------------------- Jira


def jira_summary(view: RepairView) -> str:
    """``gpu-17: xid-79 on GPU 3 (…) [gpu-17-20260101120000]``; Jira caps summaries at 255 characters."""
    return _truncate(f"{view.node}: {view.reason} on {_gpu_summary(view)} [{view.name}]", 255)


def jira_description(view: RepairView, *, catalog: XidCatalog | None = None) -> str:
    """The evidence a hardware engineer needs without opening Grafana: findings, what the catalog says, IDs, links."""
    catalog = catalog or default_catalog()
    lines = [
        f"RepairBot opened this ticket for node *{view.node}* (GPURepair {{{{{view.name}}}}}).",
        "",
        f"*Reason:* {view.reason}",
        f"*Phase:* {view.phase.value}",
        f"*Current action:* {_action_summary(view)}",
    ]
    if view.detected_at is not None:
        lines.append(f"*Detected:* {view.detected_at:%Y-%m-%d %H:%M:%S} UTC (MTTA {format_duration(view.mtta)})")
    lines += ["", "h3. Findings", "||Class||GPU||Seen||Source||Message||"]
    for f in view.findings:
        lines.append(f"|{f.code}|{describe_gpu(f.gpu)}|{f.count}x|{f.source.value}|{_cell(f.message)}|")
    xids = [f for f in view.findings if f.xid is not None]
    if xids:
        lines += ["", "h3. What the Xid catalog says"]
        for f in xids:
            assert f.xid is not None
            entry = catalog.lookup(f.xid)
            ladder = " → ".join(a.value for a in entry.default_ladder)
            lines.append(
                f"* Xid {f.xid} ({entry.mnemonic}): {entry.meaning}. NVIDIA's immediate action: "
                f"{entry.immediate_bucket}. RepairBot's ladder: {ladder}."
            )
    lines += ["", "h3. Hardware identifiers"]
    for gpu in view.gpus:
        lines.append(f"* {describe_gpu(gpu)}")
    named = {gpu.serial for gpu in view.gpus}
    for serial in view.serials:
        if serial not in named:  # a serial only the evidence knew; one on a GPU is in its line above
            lines.append(f"* Serial: {serial}")
    if not view.gpus and not view.serials:
        lines.append("* No GPU named by the findings (node-level fault).")
    links = [(url, label) for url, label in _link_labels(view) if url and not label.startswith("Jira")]
    if links:
        lines += ["", "h3. Links"] + [f"* [{label}|{url}]" for url, label in links]
    lines += ["", "Every step RepairBot takes is added below as a comment."]
    return "\n".join(lines)


def jira_comment(view: RepairView, entry: HistoryEntry, *, name_node: bool = False) -> str:
    """One step as a ticket comment, with its time so the ticket alone tells the timeline.

    ``name_node`` for an incident's shared ticket, where several nodes' steps interleave.
    """
    who = f"{view.node}: " if name_node else ""
    return f"{entry.at:%Y-%m-%d %H:%M:%S} UTC — {who}{describe_step(entry)}"


def jira_incident_summary(storm: StormView) -> str:
    """``Fault storm storm-…: 4 nodes (gpu-12, gpu-13, …)``, within Jira's 255 characters."""
    nodes = storm.nodes
    listed = ", ".join(nodes[:MAX_STORM_NODES_LISTED]) + (" …" if len(nodes) > MAX_STORM_NODES_LISTED else "")
    return _truncate(f"Fault storm {storm.incident}: {len(nodes)} nodes ({listed})", 255)


def jira_incident_description(storm: StormView) -> str:
    """The storm ticket: what tripped the breaker, which nodes now and in what phase, what a human must do.

    Rewritten as members join and end; the node list is bounded (``and N more``);
    the notifier fits it to Jira's 32,767-character field and attaches the full list
    (:mod:`repairbot.notify.jira_limits`), so nothing is cut here.
    """
    lines = [
        f"RepairBot's storm breaker opened incident *{storm.incident}*: too many GPU faults at once to be N bad GPUs.",
        "",
        f"*Why:* {_truncate(storm.detail, 2000) or 'see the GPURepairs of this incident'}",
        f"*Nodes ({len(storm.members)}):* {storm.phase_counts() or 'none yet'}",
        _listed(storm.members, MAX_STORM_NODES_IN_TICKET, code=False),
        "",
        "Every node is cordoned and tainted; nothing is drained, reset or rebooted while the breaker is open.",
        "Find the shared cause (leaf switch, PDU, driver rollout), fix it, then run `repairbot resume --all`:",
        "one canary repair goes first, then the rest. Each node's steps are added below as comments.",
        "RepairBot does not close this ticket: close it when the incident is over.",
    ]
    return "\n".join(lines)


def jira_resolution(view: RepairView) -> str:
    """The closing comment: how the node was fixed and the MTTR on-call reports on."""
    action = view.action.value if view.action else "no action"
    return (
        f"Node {view.node} passed validation and is back in service. Fixed by {action}"
        f"{f' (attempt {view.attempt})' if view.attempt else ''}. MTTR {format_duration(view.mttr)}, "
        f"MTTA {format_duration(view.mtta)}."
    )


def replacement_advice(view: RepairView, *, catalog: XidCatalog | None = None) -> str:
    """What hardware should replace, from the findings: a GPU board, an IB cable/HCA, or the whole node."""
    catalog = catalog or default_catalog()
    parts: list[str] = []
    for f in view.findings:
        where = describe_gpu(f.gpu)
        if f.code.startswith("ib-"):
            parts.append(f"check/replace the InfiniBand cable or HCA ({f.message or f.code})")
        elif f.gpu.identity():
            serial = f" serial {f.evidence['serial']}" if f.evidence.get("serial") and not f.gpu.serial else ""
            parts.append(f"replace {where}{serial} ({f.code})")
        elif f.xid is not None and catalog.lookup(f.xid).known:
            parts.append(f"inspect the node's GPUs for Xid {f.xid}")
    unique = list(dict.fromkeys(parts))
    return "; ".join(unique) if unique else "inspect the node; the findings name no single part"


def jira_quarantine(view: RepairView, *, catalog: XidCatalog | None = None) -> str:
    """The escalation comment: why the ladder ended, what to replace, and that the node stays out."""
    tried = [e.action.value for e in view.history if e.action is not None and e.action is not Action.QUARANTINE]
    tried_text = ", ".join(dict.fromkeys(tried)) or "nothing automatic (lemon node or GPU, or catalog says replace)"
    why = next((e.message for e in reversed(view.history) if e.step == "quarantine" and e.message), "")
    return (
        f"Node {view.node} is quarantined: it stays cordoned and tainted (repairbot.io/unhealthy) and out of "
        "service until a human releases it; new findings are recorded here and start nothing. "
        f"{f'Why: {why}. ' if why else ''}"
        f"Tried: {tried_text}. Please {replacement_advice(view, catalog=catalog)}. "
        f"Once the part is replaced, run `repairbot release {view.node}` (or remove the repairbot.io/state label), "
        f"then, to prove it healthy, `repairbot repair {view.node} --action gpu-reset` (see the quarantine runbook)."
    )


def _cell(text: str) -> str:
    """Table cells cannot hold ``|`` or newlines in wiki markup."""
    return _truncate(text.replace("|", "/").replace("\n", " "), 200) or " "
