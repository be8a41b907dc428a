"""The real slack-sdk against the fake Slack over a real socket: one thread per repair, nothing lost or doubled."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from datetime import timedelta

import pytest

from repairbot.model import Action, HistoryEntry, Phase
from repairbot.notify import NotifyError
from repairbot.notify.messages import StormView
from repairbot.notify.slack import SlackNotifier
from repairbot.notify.view import RepairView
from repairbot_sim.slack import SlackSim


def notifier(sim: SlackSim, **kwargs: object) -> SlackNotifier:
    return SlackNotifier("xoxb-test-token", "#gpu-repairs", base_url=sim.api_url, on_call="<!subteam^S0ONCALL>",
                         **kwargs)  # type: ignore[arg-type]


def steps(view: RepairView) -> list[HistoryEntry]:
    at = view.detected_at
    assert at is not None
    return [
        HistoryEntry("cordon", "done", "node cordoned and tainted", at=at + timedelta(seconds=1)),
        HistoryEntry("drain", "done", "3 pods evicted", at=at + timedelta(minutes=2)),
        HistoryEntry("reboot", "requested", "reboot requested via agent", at=at + timedelta(minutes=3),
                     action=Action.REBOOT, attempt=1),
    ]


def test_parent_and_replies_share_the_parents_ts(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    thread = slack.open_thread(view)
    assert thread.channel == "C0GPUREPAIR"
    reply_ts = [slack.reply_step(thread, view, entry) for entry in steps(view)]

    replies = slack_sim.thread(thread.channel, thread.ts)
    assert [r.ts for r in replies] == reply_ts
    assert all(r.thread_ts == thread.ts for r in replies)
    assert "drain: done — 3 pods evicted" in (replies[1].text or "")
    posts = [c for c in slack_sim.recorded if c["path"] == "/api/chat.postMessage"]
    assert [c["body"].get("thread_ts") for c in posts] == [None, thread.ts, thread.ts, thread.ts]
    parent = slack_sim.find(thread.channel, thread.ts)
    assert parent is not None and parent.blocks and "gpu-17" in (parent.text or "")


def test_chat_update_keeps_the_parent_current(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    thread = slack.open_thread(view)
    done = dataclasses.replace(view, phase=Phase.SUCCEEDED, resolved_at=view.detected_at + timedelta(minutes=14),
                               jira_key="OPS-7")  # type: ignore[operator]
    slack.update_parent(thread.channel, thread.ts, done)

    parent = slack_sim.find(thread.channel, thread.ts)
    assert parent is not None and parent.edits == 1
    assert "Succeeded" in (parent.text or "") and "14m" in (parent.text or "") and "OPS-7" in (parent.text or "")
    assert parent.blocks, "chat.update must resend blocks or Slack drops them"
    assert len([m for m in slack_sim.messages if m.thread_ts is None]) == 1


def test_rate_limited_then_recovers_every_message_once(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    thread = slack.open_thread(view)
    slack_sim.rate_limit(2, retry_after=0)
    started = time.monotonic()
    for entry in steps(view):
        slack.reply_step(thread, view, entry)
    assert time.monotonic() - started < 5

    statuses = [c["status"] for c in slack_sim.recorded]
    assert statuses.count(429) == 2
    texts = [m.text for m in slack_sim.thread(thread.channel, thread.ts)]
    assert len(texts) == 3 and len(set(texts)) == 3, texts


def test_rate_limit_beyond_retries_raises_typed_error(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim, rate_limit_retries=1)
    slack_sim.rate_limit(5, retry_after=0)
    with pytest.raises(NotifyError) as caught:
        slack.open_thread(view)
    assert caught.value.code == "ratelimited" and caught.value.retryable
    assert slack_sim.messages == []


def test_server_errors_are_retried_then_surface(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim, server_error_retries=1)
    slack_sim.fail_for(30)
    with pytest.raises(NotifyError) as caught:
        slack.open_thread(view)
    assert caught.value.code == "fatal_error"
    assert len(slack_sim.recorded) == 2


def test_bad_token_and_unknown_channel_are_not_retryable(slack_sim: SlackSim, view: RepairView) -> None:
    bad = SlackNotifier("xoxb-wrong", "#gpu-repairs", base_url=slack_sim.api_url)
    with pytest.raises(NotifyError) as caught:
        bad.check_auth()
    assert (caught.value.code, caught.value.retryable) == ("invalid_auth", False)
    lost = SlackNotifier("xoxb-test-token", "#nowhere", base_url=slack_sim.api_url)
    with pytest.raises(NotifyError) as caught:
        lost.open_thread(view)
    assert (caught.value.code, caught.value.retryable) == ("channel_not_found", False)


def test_storm_is_one_message_naming_every_node(slack_sim: SlackSim) -> None:
    slack = notifier(slack_sim)
    nodes = [f"gpu-{i:03d}" for i in range(12)]
    slack.post_storm(StormView.of("storm-1", [(n, "Blocked") for n in nodes], detail="12 faults in 3m on ls-4"))
    assert len(slack_sim.messages) == 1
    text = slack_sim.messages[0].text or ""
    assert all(n in text for n in nodes) and "<!subteam^S0ONCALL>" in text


def test_quarantine_reply_pings_on_call(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    thread = slack.open_thread(view)
    slack.reply_step(thread, view, HistoryEntry("quarantine", "quarantined", "ladder exhausted"))
    assert "<!subteam^S0ONCALL>" in (slack_sim.thread(thread.channel, thread.ts)[0].text or "")


def test_recorded_is_served_over_http(slack_sim: SlackSim, view: RepairView) -> None:
    notifier(slack_sim).open_thread(view)
    with urllib.request.urlopen(f"{slack_sim.url}/_recorded", timeout=5) as response:
        calls = json.load(response)
    assert calls[0]["method"] == "POST" and calls[0]["path"] == "/api/chat.postMessage"
    assert calls[0]["body"]["channel"] == "#gpu-repairs"


def test_a_rate_limit_beyond_retries_says_how_long_slack_asked_to_wait(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim, rate_limit_retries=0)
    slack_sim.rate_limit(5, retry_after=7)
    with pytest.raises(NotifyError) as caught:
        slack.open_thread(view)
    assert (caught.value.code, caught.value.retryable, caught.value.retry_after) == ("ratelimited", True, 7.0)


def test_refused_blocks_are_permanent_and_the_plain_form_passes(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    slack_sim.refuse("chat.postMessage", "invalid_blocks", containing=view.node)
    with pytest.raises(NotifyError) as caught:
        slack.open_thread(view)
    assert (caught.value.code, caught.value.retryable, caught.value.reducible) == ("invalid_blocks", False, True)
    thread = slack.open_thread(view, plain=True)
    message = slack_sim.find(thread.channel, thread.ts)
    assert message is not None and message.blocks is None and view.node in (message.text or "")
