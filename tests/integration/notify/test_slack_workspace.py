"""The fake Slack's workspace answers the real slack-sdk as Slack does: channels, edits, authorship, mentions.

Error codes from Slack's chat.postMessage and chat.update references: a post to
an unknown channel is ``channel_not_found``, to one the bot left
``not_in_channel``, to an archived one ``is_archived`` (an edit there
``is_inactive``); an edit of no such message is ``message_not_found``, of
someone else's ``cant_update_message``, past the edit window
``edit_window_closed``. RepairBot's notifier sorts each as permanent.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from repairbot.notify import NotifyError
from repairbot.notify.slack import SlackNotifier
from repairbot.notify.view import RepairView
from repairbot_sim.slack import SlackSim


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(sim: SlackSim) -> WebClient:
    return WebClient(token=sim.token, base_url=sim.api_url)


def refusal(call: object) -> tuple[str, dict[str, object]]:
    with pytest.raises(SlackApiError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["error"]), dict(caught.value.response.data)  # type: ignore[arg-type]


def notifier(sim: SlackSim, channel: str = "#gpu-repairs") -> SlackNotifier:
    return SlackNotifier(sim.token, channel, base_url=sim.api_url, on_call="S0GPUONCALL")


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda sim: None, "channel_not_found"),
        (lambda sim: sim.add_channel("hidden", "G0HIDDEN01", member=False, private=True), "channel_not_found"),
        (lambda sim: sim.add_channel("hidden", "C0PUBLIC01", member=False), "not_in_channel"),
        (lambda sim: (sim.add_channel("hidden", "C0OLD00001"), sim.archive("hidden")), "is_archived"),
    ],
    ids=["unknown", "private-without-the-bot", "bot-not-a-member", "archived"],
)  # fmt: skip
def test_a_channel_slack_will_not_post_to_is_a_permanent_refusal(
    slack_sim: SlackSim, view: RepairView, setup: object, code: str
) -> None:
    setup(slack_sim)  # type: ignore[operator]
    with pytest.raises(NotifyError) as caught:
        notifier(slack_sim, "#hidden").open_thread(view)
    assert (caught.value.code, caught.value.retryable, caught.value.reducible) == (code, False, False)
    assert slack_sim.messages == []


def test_an_archived_channels_messages_cannot_be_edited(slack_sim: SlackSim, view: RepairView) -> None:
    slack = notifier(slack_sim)
    thread = slack.open_thread(view)
    slack_sim.archive("gpu-repairs")
    with pytest.raises(NotifyError) as caught:
        slack.update_parent(thread.channel, thread.ts, view)
    assert (caught.value.code, caught.value.retryable) == ("is_inactive", False)


def test_an_edit_past_the_workspaces_edit_window_is_refused(sim_loop: object, view: RepairView) -> None:
    clock = Clock()
    sim = SlackSim(edit_window=60, clock=clock)
    sim_loop.run(sim.start())  # type: ignore[attr-defined]
    try:
        slack = notifier(sim)
        thread = slack.open_thread(view)
        clock.now += 59
        slack.update_parent(thread.channel, thread.ts, view)  # inside the window
        clock.now += 2
        with pytest.raises(NotifyError) as caught:
            slack.update_parent(thread.channel, thread.ts, view)
        assert (caught.value.code, caught.value.retryable) == ("edit_window_closed", False)
        assert sim.find(thread.channel, thread.ts).edits == 1  # type: ignore[union-attr]
    finally:
        sim_loop.run(sim.stop())  # type: ignore[attr-defined]


def test_only_the_bots_own_existing_messages_can_be_edited(slack_sim: SlackSim) -> None:
    web = client(slack_sim)
    assert refusal(lambda: web.chat_update(channel="C0GPUREPAIR", ts="1.000001", text="x"))[0] == "message_not_found"
    theirs = slack_sim.post_as("U0SRE00001", "gpu-repairs", "looking at gpu-17")
    assert refusal(lambda: web.chat_update(channel="C0GPUREPAIR", ts=theirs, text="x"))[0] == "cant_update_message"
    assert refusal(lambda: web.chat_update(channel="#gpu-repairs", ts=theirs, text="x"))[0] == "channel_not_found"


def test_invalid_blocks_name_each_rule_and_pointer_in_the_response_metadata(slack_sim: SlackSim) -> None:
    web = client(slack_sim)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    code, data = refusal(lambda: web.chat_postMessage(channel="#gpu-repairs", text="x", blocks=blocks))
    assert code == "invalid_blocks"
    assert data["response_metadata"] == {
        "messages": ["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
    }


def test_mentions_are_recorded_as_slack_parses_them_and_plain_handles_are_not(slack_sim: SlackSim) -> None:
    web = client(slack_sim)
    web.chat_postMessage(channel="#gpu-repairs", text="<!subteam^S0GPUONCALL> gpu-17 quarantined")
    web.chat_postMessage(channel="#gpu-repairs", text="@gpu-oncall gpu-18 quarantined")
    web.chat_postMessage(channel="#gpu-repairs", text="<!subteam^S0NOSUCHGRP> gpu-19 quarantined")
    with urllib.request.urlopen(f"{slack_sim.url}/_recorded", timeout=5) as response:
        recorded = json.load(response)
    assert [r["mentions"] for r in recorded] == [["<!subteam^S0GPUONCALL>"], [], []]
    assert recorded[2]["unresolved_mentions"] == ["<!subteam^S0NOSUCHGRP>"]  # no such group: nobody is paged
    assert slack_sim.paged() == ["<!subteam^S0GPUONCALL>"]
