"""The worst messages RepairBot can be asked to send are accepted by the strict fake Slack, whole and marked.

Real slack-sdk, real socket: a 50-finding repair, a 10 kB alert description,
a storm of 1,000 nodes, Grafana links long enough to burst a context element.
Each must be accepted as sent (blocks and all, not the plain-text fallback),
cut with a visible marker where a limit binds, and alert text must arrive
escaped so that Slack shows it rather than parses it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.model import Action, Finding, GpuRef, HistoryEntry, Phase, Severity
from repairbot.notify.messages import StormView
from repairbot.notify.slack import SlackNotifier
from repairbot.notify.view import RepairView
from repairbot_sim.slack import SlackSim
from repairbot_sim.slack_blocks import message_problem

T0 = datetime(2026, 1, 5, 3, 14, 0, tzinfo=UTC)
MARK = "(truncated)"
HOSTILE = "temp > 90C & rising <!channel> <https://evil.example|click> <@U0SRE00001>"
LONG_URL = "https://grafana.example/d/gpu?" + "&".join(f"var-node=gpu-{i:04d}" for i in range(150))


def notifier(sim: SlackSim) -> SlackNotifier:
    return SlackNotifier(sim.token, "#gpu-repairs", base_url=sim.api_url, on_call="S0GPUONCALL")


def finding(index: int, message: str, **evidence: str) -> Finding:
    return Finding(code="xid-79", message=message, action=Action.REBOOT, severity=Severity.FATAL,
                   gpu=GpuRef(index=index % 8, uuid=f"GPU-{index:08x}-0000-1111-2222-333344445555",
                              pci=f"0000:{index % 256:02x}:00.0"),
                   xid=79, count=index + 1, first_seen=T0, evidence=dict(evidence))  # fmt: skip


def worst_view(**changes: Any) -> RepairView:
    """50 findings with 10 kB descriptions, long Grafana links, a long node name and an alert's hostile text."""
    description = (HOSTILE + " ") * 140  # ~10 kB
    links = {"dashboardURL": LONG_URL, "panelURL": LONG_URL + "&viewPanel=2", "generatorURL": LONG_URL + "&r=1",
             "silenceURL": LONG_URL + "&s=1"}
    findings = tuple(finding(i, description, **links) for i in range(50))
    view = RepairView(
        name="gpu-" + "n" * 200 + "-20260105031400", node="gpu-" + "n" * 200, phase=Phase.QUARANTINED,
        reason="alert " + HOSTILE * 40, findings=findings, action=Action.REBOOT, attempt=3, detected_at=T0,
        acknowledged_at=T0 + timedelta(seconds=1), resolved_at=T0 + timedelta(hours=2),
        runbook_base_url="https://runbooks.example/gpu", jira_key="OPS-1", jira_url="https://jira.example/browse/OPS-1",
    )  # fmt: skip
    return dataclasses.replace(view, **changes)


def posted(sim: SlackSim) -> list[dict[str, Any]]:
    return [r for r in sim.recorded if r["path"].startswith("/api/chat.")]


def accepted_with_blocks(sim: SlackSim) -> dict[str, Any]:
    """The last call, which the fake accepted as RepairBot sent it (its blocks, not the plain fallback)."""
    call = posted(sim)[-1]
    assert call["status"] == 200 and message_problem(call["body"]) is None
    assert call["body"].get("blocks"), "sent without blocks"
    return dict(call["body"])


def texts(body: dict[str, Any]) -> list[str]:
    out = [str(body.get("text") or "")]
    for block in body.get("blocks") or []:
        for obj in [block.get("text"), *(block.get("fields") or []), *(block.get("elements") or [])]:
            if isinstance(obj, dict):
                out.append(str(obj.get("text")))
    return out


def test_a_50_finding_repair_with_10kb_descriptions_opens_and_updates_its_thread(slack_sim: SlackSim) -> None:
    slack, view = notifier(slack_sim), worst_view()
    thread = slack.open_thread(view)
    body = accepted_with_blocks(slack_sim)
    assert any(MARK in t for t in texts(body))  # cut where a limit binds, visibly
    slack.update_parent(thread.channel, thread.ts, dataclasses.replace(view, phase=Phase.FAILED))
    accepted_with_blocks(slack_sim)


def test_a_context_of_long_grafana_links_stays_within_slacks_3000(slack_sim: SlackSim) -> None:
    notifier(slack_sim).open_thread(worst_view(findings=worst_view().findings[:1]))
    body = accepted_with_blocks(slack_sim)
    context = next(b for b in body["blocks"] if b["type"] == "context")
    assert all(len(e["text"]) <= 3000 for e in context["elements"])


def test_a_reply_for_a_10kb_step_message_is_accepted(slack_sim: SlackSim) -> None:
    slack, view = notifier(slack_sim), worst_view()
    thread = slack.open_thread(view)
    slack.reply_step(thread, view, HistoryEntry("quarantine", "quarantined", (HOSTILE + " ") * 140, at=T0))
    body = accepted_with_blocks(slack_sim)
    assert MARK in body["text"]


def test_a_storm_of_1000_nodes_is_one_accepted_message_that_counts_them_all(slack_sim: SlackSim) -> None:
    nodes = [(f"gpu-{'n' * 200}-{i:04d}", "Blocked") for i in range(1000)]
    storm = StormView.of("storm-1", nodes, detail=HOSTILE * 100, jira_key="OPS-9")
    slack = notifier(slack_sim)
    thread = slack.post_storm(storm)
    body = accepted_with_blocks(slack_sim)
    assert "1000 nodes" in body["text"] and "more" in body["text"]
    slack.update_storm(thread.channel, thread.ts, storm)
    accepted_with_blocks(slack_sim)


@pytest.mark.parametrize("phase", [Phase.QUARANTINED, Phase.FAILED])
def test_alert_text_is_shown_not_parsed_and_only_on_call_is_paged(slack_sim: SlackSim, phase: Phase) -> None:
    notifier(slack_sim).open_thread(worst_view(phase=phase))
    call = posted(slack_sim)[-1]
    assert call["mentions"] == ["<!subteam^S0GPUONCALL>"]  # not the alert's <!channel> nor its <@U…>
    assert "&amp; rising &lt;!channel&gt;" in call["body"]["text"]
    assert "<https://evil.example|click>" not in str(call["body"])


def test_the_jira_key_is_a_link_to_the_ticket(slack_sim: SlackSim) -> None:
    slack = notifier(slack_sim)
    view = worst_view(findings=worst_view().findings[:1])
    thread = slack.open_thread(view)
    assert "<https://jira.example/browse/OPS-1|OPS-1>" in str(accepted_with_blocks(slack_sim)["blocks"])
    slack.reply_step(thread, view, HistoryEntry("quarantine", "quarantined", "ladder exhausted", at=T0))
    assert "<https://jira.example/browse/OPS-1|OPS-1>" in accepted_with_blocks(slack_sim)["text"]
    storm = StormView.of("storm-1", [("gpu-1", "Blocked")], jira_key="OPS-9",
                         jira_url="https://jira.example/browse/OPS-9")  # fmt: skip
    slack.post_storm(storm)
    assert "<https://jira.example/browse/OPS-9|OPS-9>" in accepted_with_blocks(slack_sim)["text"]
