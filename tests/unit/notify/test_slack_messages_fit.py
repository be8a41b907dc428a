"""Whatever a repair, a step or a storm holds, RepairBot's Slack message passes the strict fake Slack's rules.

The rules are the fake's own (:func:`repairbot_sim.slack_blocks.message_problem`,
Slack's Block Kit limits counted as Slack counts them), so a builder that grows
a field past its limit fails here before it fails in a channel.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.model import Action, Finding, GpuRef, HistoryEntry, Phase, Severity
from repairbot.notify.messages import StormView
from repairbot.notify.slack_messages import slack_parent, slack_reply, slack_storm
from repairbot.notify.view import RepairView
from repairbot_sim.slack_blocks import mentions, message_problem

T0 = datetime(2026, 1, 5, 3, 14, 0, tzinfo=UTC)
ON_CALL = "<!subteam^S0GPUONCALL>"
prose = st.text(alphabet=st.sampled_from("ab &<>|*_`~:é😀\n"), max_size=3000)
long_prose = st.one_of(prose, st.integers(0, 12_000).map(lambda n: ("<!channel> & " * (n // 12 + 1))[:n]))
names = st.text(alphabet="abc-&<>0", min_size=1, max_size=260)
urls = st.integers(10, 5000).map(lambda n: "https://grafana.example/d?" + "a=1&" * (n // 4))


def finding(message: str, url: str, index: int) -> Finding:
    return Finding(code="xid-79", message=message, action=Action.REBOOT, severity=Severity.FATAL,
                   gpu=GpuRef(index=index % 8, uuid=f"GPU-{index:08x}", pci="0000:3b:00.0"), xid=79,
                   first_seen=T0, evidence={"dashboardURL": url, "panelURL": url, "generatorURL": url})  # fmt: skip


@st.composite
def views(draw: st.DrawFn) -> RepairView:
    count = draw(st.integers(0, 60))
    message, url = draw(long_prose), draw(urls)
    return RepairView(
        name=draw(names), node=draw(names), phase=draw(st.sampled_from(list(Phase))), reason=draw(names),
        findings=tuple(finding(message, url, i) for i in range(count)), action=Action.REBOOT, attempt=2,
        detected_at=T0, acknowledged_at=T0 + timedelta(seconds=1), resolved_at=T0 + timedelta(hours=1),
        runbook_base_url=draw(st.sampled_from([None, "https://runbooks.example"])),
        jira_key=draw(st.sampled_from([None, "OPS-1"])), jira_url="https://jira.example/browse/OPS-1",
        dry_run=draw(st.booleans()),
    )  # fmt: skip


def assert_accepted(text: str, blocks: tuple[object, ...]) -> None:
    body = {"text": text, "blocks": list(blocks)}
    assert message_problem(body) is None, message_problem(body)
    assert set(mentions(body)) <= {ON_CALL}  # nothing from outside RepairBot pages anyone


@settings(max_examples=60, deadline=None)
@given(views())
def test_every_parent_is_accepted_and_pages_only_on_call(view: RepairView) -> None:
    message = slack_parent(view, on_call=ON_CALL)
    assert_accepted(message.text, message.blocks)


@settings(max_examples=60, deadline=None)
@given(views(), st.sampled_from(["quarantine", "drain", "reboot"]), long_prose)
def test_every_reply_is_accepted_and_pages_only_on_call(view: RepairView, step: str, text: str) -> None:
    message = slack_reply(view, HistoryEntry(step, "failed", text, at=T0), on_call=ON_CALL)
    assert_accepted(message.text, message.blocks)
    assert message.text.startswith(ON_CALL)  # a failure pages, however long its message


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(names, st.sampled_from(["Blocked", "Succeeded"])), max_size=1200), long_prose)
def test_every_storm_is_accepted_and_counts_what_it_does_not_list(members: list[tuple[str, str]], detail: str) -> None:
    storm = StormView.of("storm-1", members, detail=detail, jira_key="OPS-9", jira_url="https://jira.example/browse/OPS-9")
    message = slack_storm(storm, on_call=ON_CALL)
    assert_accepted(message.text, message.blocks)
    nodes_block = message.blocks[1]["text"]["text"]
    shown = nodes_block.count("` (")
    if shown < len(storm.members):
        assert f"and {len(storm.members) - shown} more" in nodes_block
