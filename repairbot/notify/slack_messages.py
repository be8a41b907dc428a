"""What Slack says about a repair and a storm, as pure functions of a view, within every Block Kit limit.

Slack gets Block Kit blocks *and* a ``text``: the text is what notifications,
screen readers and clients without blocks show, and where the on-call
mention pages. Everything that comes from outside RepairBot (alert prose,
finding messages, node names, history) is escaped (:mod:`repairbot.notify.mrkdwn`),
so an alert that says ``<!channel>`` shows it instead of paging the channel;
only RepairBot's own mention and links are markup. Every text is cut to its
block's limit with a visible marker, and the message's blocks together stay
within :data:`~repairbot.notify.mrkdwn.BLOCKS_TEXT_BUDGET`, so a 50-finding
repair, a 10 kB alert description or a storm of 1,000 nodes is still one
message Slack accepts with its blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.model import HistoryEntry, Phase
from repairbot.notify.messages import (
    MAX_STORM_NODES_LISTED,
    StormView,
    _action_summary,
    _gpu_summary,
    describe_finding,
    describe_step,
    format_duration,
    is_failure,
)
from repairbot.notify.mrkdwn import (
    CONTEXT_LIMIT,
    FIELD_LIMIT,
    HEADER_LIMIT,
    MAX_CONTEXT_ELEMENTS,
    SECTION_LIMIT,
    cut,
    escape,
    link,
    text_object,
    within_budget,
)
from repairbot.notify.slack_buttons import actions_block, last_slack_action, repair_actions, storm_actions
from repairbot.notify.view import GRAFANA_EVIDENCE_KEYS, RepairView

PHASE_EMOJI = {
    Phase.PENDING: ":hourglass_flowing_sand:",
    Phase.CORDONED: ":construction:",
    Phase.DRAINING: ":construction:",
    Phase.REMEDIATING: ":wrench:",
    Phase.VALIDATING: ":mag:",
    Phase.SUCCEEDED: ":white_check_mark:",
    Phase.FAILED: ":x:",
    Phase.QUARANTINED: ":no_entry:",
    Phase.BLOCKED: ":double_vertical_bar:",
    Phase.CANCELLED: ":heavy_minus_sign:",
}
TEXT_LIMIT = 3000
"""The ``text`` RepairBot sends (Slack allows 40,000; a notification shows far less)."""
FINDING_LINE_LIMIT = 300
"""One finding's line in the parent; the rest of a long alert description is in the ticket."""
STORM_DETAIL_LIMIT = 500
_LINK_NAMES = {"dashboardURL": "Grafana dashboard", "panelURL": "Grafana panel", "generatorURL": "Alert rule",
               "silenceURL": "Silence"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A Slack message: the fallback ``text`` and the Block Kit ``blocks`` (may be empty)."""

    text: str
    blocks: tuple[dict[str, Any], ...] = ()

    def blocks_list(self) -> list[dict[str, Any]] | None:
        return list(self.blocks) if self.blocks else None


def slack_parent(view: RepairView, *, catalog: XidCatalog | None = None, on_call: str | None = None) -> SlackMessage:
    """The thread's first message, rewritten with ``chat.update`` as the repair moves on.

    Everything an SRE needs to decide "do I care?" without opening the thread:
    node, fault, GPU, phase, what RepairBot is doing, MTTA, and links.
    """
    catalog = catalog or default_catalog()
    dry = " [dry run]" if view.dry_run else ""
    title = f"{PHASE_EMOJI.get(view.phase, '')} {view.node}: {view.reason} — {view.phase.value}{dry}"  # plain_text
    status = escape(_status_line(view))
    ping = _mention(on_call) if _needs_human(view) else ""
    fields = [("Node", f"`{escape(view.node)}`"), ("Phase", view.phase.value), ("Reason", escape(view.reason)),
              ("GPU", escape(_gpu_summary(view))), ("Action", escape(_action_summary(view))),
              ("MTTA", format_duration(view.mtta))]  # fmt: skip
    if view.mttr is not None:
        fields.append(("MTTR", format_duration(view.mttr)))
    context = [f"GPURepair `{escape(view.name)}`", *_links(view)][:MAX_CONTEXT_ELEMENTS]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": text_object(title, HEADER_LIMIT, plain=True)},
        {"type": "section", "text": text_object(f"{ping}{status}", SECTION_LIMIT)},
        {"type": "section", "fields": [text_object(f"*{k}*\n{v}", FIELD_LIMIT) for k, v in fields]},
        {"type": "section", "text": text_object(f"*Findings*\n{_findings(view, catalog)}", SECTION_LIMIT)},
        {"type": "context", "elements": [text_object(t, CONTEXT_LIMIT) for t in context]},
    ]
    by_slack = last_slack_action(view.history)  # "Resumed by <@U…>": a mention RepairBot built from a checked id
    if by_slack:
        blocks.insert(2, {"type": "section", "text": text_object(by_slack, SECTION_LIMIT)})
    buttons = actions_block(repair_actions(view.phase, view.action, dry_run=view.dry_run), view.name)
    if buttons:
        blocks.append(buttons)
    text = (
        f"{ping}{escape(view.node)}: {escape(view.reason)} on {escape(_gpu_summary(view))} — {view.phase.value}{dry}. "
        f"{status} Action: {escape(_action_summary(view))}. MTTA {format_duration(view.mtta)}. "
        f"GPURepair {escape(view.name)}."
    )
    if view.jira_key:
        text += f" Jira {_ticket(view.jira_key, view.jira_url)}."
    if view.runbook_url:
        text += f" Runbook: {link(view.runbook_url, 'runbook')}"
    return SlackMessage(text=cut(text, TEXT_LIMIT), blocks=tuple(within_budget(blocks)))


def slack_reply(view: RepairView, entry: HistoryEntry, *, on_call: str | None = None) -> SlackMessage:
    """A thread reply for one step; a failure or a quarantine pages on-call, success says how long it took."""
    ping = _mention(on_call) if is_failure(entry) else ""
    icon = ":rotating_light:" if is_failure(entry) else ":small_blue_diamond:"
    tail = ""
    if view.phase is Phase.SUCCEEDED and entry.outcome.lower() in ("succeeded", "returned", "uncordoned"):
        tail += f" Returned to service in {format_duration(view.mttr)}."
    if entry.step.lower() in ("quarantine", "quarantined") and view.jira_key:
        tail += f" Hardware follows up in {_ticket(view.jira_key, view.jira_url)}."
    head = f"{ping}{icon} "
    step = cut(escape(describe_step(entry)), SECTION_LIMIT - len(head) - len(tail))  # the mention and link survive
    text = f"{head}{step}{tail}"
    return SlackMessage(text=text, blocks=({"type": "section", "text": text_object(text, SECTION_LIMIT)},))


def slack_storm(storm: StormView, *, on_call: str | None = None) -> SlackMessage:
    """One message for a storm: every affected node in one place, automatic drains stopped, a human needed.

    A storm is a fabric, power or driver problem, not N bad GPUs; N messages
    would bury the one thing that matters (someone must look and resume). The
    message is rewritten as members join and end, so its count is the storm's,
    and the node list always ends with how many it did not show.
    """
    head = f"{_mention(on_call)}:thunder_cloud_and_rain: Fault storm: {len(storm.members)} nodes at once " \
           f"({escape(storm.incident)})."  # fmt: skip
    action = (
        "Automatic drains and repairs are stopped; the nodes are cordoned and their repairs are Blocked "
        "until someone resumes them."
    )
    ticket = f" Incident: {_ticket(storm.jira_key, storm.jira_url)}." if storm.jira_key else ""
    phases = f"Now: {escape(storm.phase_counts())}.\n" if storm.members else ""
    body = f"{cut(escape(storm.detail), STORM_DETAIL_LIMIT)}\n" if storm.detail else ""
    intro = cut(f"*{head}*\n{action}{ticket}", SECTION_LIMIT)
    state = f"{phases}{body}*Nodes*: "
    nodes = f"{state}{_nodes(storm.members, SECTION_LIMIT - len(state))}"
    text = f"{head} {action}{ticket}\n{phases}{body}Nodes: "
    text += _nodes(storm.members, TEXT_LIMIT - len(text))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": text_object(intro, SECTION_LIMIT)},
              {"type": "section", "text": text_object(nodes, SECTION_LIMIT)}]  # fmt: skip
    buttons = actions_block(storm_actions([phase for _, phase in storm.members]), storm.incident)
    if buttons:
        blocks.append(buttons)
    return SlackMessage(text=cut(text, TEXT_LIMIT), blocks=tuple(within_budget(blocks)))


def plain_form(message: SlackMessage, limit: int) -> SlackMessage:
    """The reduced form of a message Slack refused for its blocks or length: the fallback text alone, cut."""
    return SlackMessage(text=cut(message.text, limit) or "(RepairBot: message refused by Slack)")


# ---------------------------------------------------------------- parts


def _status_line(view: RepairView) -> str:
    """The sentence that says where the repair stands, kept current on the parent message."""
    phase = view.phase
    if phase is Phase.SUCCEEDED:
        return f"Back in service after {format_duration(view.mttr)}."
    if phase is Phase.QUARANTINED:
        return "Quarantined: the node stays cordoned and goes to hardware for replacement."
    if phase is Phase.FAILED:
        return "Repair failed; the node stays cordoned until a human looks."
    if phase is Phase.BLOCKED:
        return "Blocked: waiting for a human to resume (storm breaker or drain timeout)."
    if phase is Phase.CANCELLED:
        return "Cancelled; RepairBot is no longer acting on this node."
    if phase is Phase.PENDING:
        return "Waiting for a slot in the repair budget."
    return f"{phase.value}: current action {_action_summary(view)}."


def _needs_human(view: RepairView) -> bool:
    return view.phase in (Phase.FAILED, Phase.QUARANTINED, Phase.BLOCKED)


def _mention(on_call: str | None) -> str:
    """The on-call mention as the notifier holds it: already Slack's syntax (``<!subteam^S…>``, ``<@U…>``)."""
    return f"{on_call} " if on_call else ""


def _ticket(key: str | None, url: str | None) -> str:
    """The Jira key, linked to the ticket when its URL is known."""
    return link(url, key or "") if url else escape(key or "")


def _links(view: RepairView) -> list[str]:
    """One context element per link (Jira, runbook, Grafana), each whole or, when too long to link, its label."""
    out = [f"Jira {_ticket(view.jira_key, view.jira_url)}"] if view.jira_key else []
    pairs: list[tuple[str, str]] = [(view.runbook_url, "Runbook")] if view.runbook_url else []
    evidence = view.links()
    pairs += [(evidence[key], _LINK_NAMES[key]) for key in GRAFANA_EVIDENCE_KEYS if key in evidence]
    pairs += [(url, key) for key, url in evidence.items() if key not in _LINK_NAMES]
    for url, label in pairs:
        linked = link(url, label)
        out.append(linked if len(linked) <= CONTEXT_LIMIT else cut(escape(label), CONTEXT_LIMIT))
    return [cut(element, CONTEXT_LIMIT) for element in out]


def _findings(view: RepairView, catalog: XidCatalog) -> str:
    """A bullet per finding, each at most FINDING_LINE_LIMIT, as many as the section holds, then how many more."""
    if not view.findings:
        return "• (no findings recorded)"
    room = SECTION_LIMIT - len("*Findings*\n") - len("\n… and 9999 more findings")
    lines: list[str] = []
    for finding in view.findings:
        line = "• " + cut(escape(describe_finding(finding, catalog)), FINDING_LINE_LIMIT)
        if sum(len(x) + 1 for x in lines) + len(line) > room:
            break
        lines.append(line)
    more = len(view.findings) - len(lines)
    return "\n".join(lines) + (f"\n… and {more} more findings" if more else "")


def _nodes(members: Sequence[tuple[str, str]], room: int) -> str:
    """``gpu-1`` (Blocked), … at most MAX_STORM_NODES_LISTED, as many as ``room`` holds, then ``and N more``."""
    reserve = len(f" and {len(members)} more")
    shown: list[str] = []
    used = 0
    for node, phase in members[:MAX_STORM_NODES_LISTED]:
        item = f"`{cut(escape(node), 300)}` ({escape(phase)})"
        if used + len(item) + 2 > room - reserve:
            break
        shown.append(item)
        used += len(item) + 2
    more = len(members) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")
