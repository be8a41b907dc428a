"""The fake Slack holds messages to Slack's published Block Kit and length limits, with Slack's error codes.

Limits from Slack's Block Kit reference (blocks: 50 per message; header 150;
section text 3,000, fields 10 of 2,000; context 10 elements; text objects 3,000;
block_id 255; markdown 12,000) and chat.postMessage (text 40,000,
``msg_too_long``); the cumulative ``msg_blocks_too_long`` under the 12,000 of
slackapi/bolt-js#2509 and the 11,341 of #2867. Mentions are parsed as Slack parses mrkdwn.
"""

from __future__ import annotations

from typing import Any

import pytest

from repairbot_sim.slack import Refusal
from repairbot_sim.slack_blocks import mentions, message_problem


def section(text: str, kind: str = "mrkdwn") -> dict[str, Any]:
    return {"type": "section", "text": {"type": kind, "text": text}}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def fields(*texts: str) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": t} for t in texts]}


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def error_of(body: dict[str, Any]) -> str | None:
    problem = message_problem(body)
    return problem.error if problem else None


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([section("fine"), header("h" * 150), fields(*["f" * 500] * 10), context(*["c" * 1000] * 3)], None),
        ([fields("f" * 2000, "g" * 2000)], None),
        ([section("s")] * 50, None),
        ([section("s")] * 51, "invalid_blocks"),
        ([section("x" * 3001)], "invalid_blocks"),
        ([section("")], "invalid_blocks"),
        ([header("h" * 151)], "invalid_blocks"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}], "invalid_blocks"),
        ([fields(*["f"] * 11)], "invalid_blocks"),
        ([fields("f" * 2001)], "invalid_blocks"),
        ([context()], "invalid_blocks"),
        ([context(*["c"] * 11)], "invalid_blocks"),
        ([context("c" * 3001)], "invalid_blocks"),
        ([{"type": "section"}], "invalid_blocks"),
        ([{"type": "carousel"}], "invalid_blocks"),
        ([{"type": "divider", "block_id": "d" * 256}], "invalid_blocks"),
        ([{"type": "divider", "block_id": "d" * 255}], None),
        ([{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}], "invalid_blocks"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x", "emoji": True}}], "invalid_blocks"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "accessory": {"type": "button"}}],
         "invalid_blocks"),
        ([{"type": "markdown", "text": "m" * 12_001}], "invalid_blocks"),
        ([section("x" * 3000)] * 3 + [section("y" * 2000)], None),  # 11,000 characters of block text: the limit
        ([section("x" * 3000)] * 3 + [section("y" * 2001)], "msg_blocks_too_long"),
    ],
)  # fmt: skip
def test_block_kit_limits(blocks: list[Any], error: str | None) -> None:
    assert error_of({"text": "ok", "blocks": blocks}) == error


def test_message_text_limit_is_40000_characters() -> None:
    assert error_of({"text": "x" * 40_000}) is None
    assert error_of({"text": "x" * 40_001}) == "msg_too_long"
    assert error_of({"text": "é" * 40_000}) is None  # characters, not bytes


def test_malformed_blocks_are_a_format_error() -> None:
    assert error_of({"text": "ok", "blocks": "[not json"}) == "invalid_blocks_format"
    assert error_of({"text": "ok", "blocks": {"type": "section"}}) == "invalid_blocks_format"


def test_lengths_count_the_text_as_sent_so_entities_count_in_full() -> None:
    assert error_of({"text": "ok", "blocks": [section("&amp;" * 600)]}) is None  # 3,000 characters
    assert error_of({"text": "ok", "blocks": [section("&amp;" * 600 + "x")]}) == "invalid_blocks"


def test_every_broken_rule_is_named_with_its_json_pointer_as_slack_does() -> None:
    problem = message_problem({"text": "ok", "blocks": [header("h" * 151), section("ok"), fields(*["f"] * 11)]})
    assert problem is not None
    assert problem.messages == (
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        "no more than 10 items allowed [json-pointer:/blocks/2/fields]",
    )


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        ({"text": "<!subteam^S0GPUONCALL> node down"}, ["<!subteam^S0GPUONCALL>"]),
        ({"text": "<!subteam^S0GPUONCALL|@gpu-oncall> node down"}, ["<!subteam^S0GPUONCALL>"]),
        ({"text": "<@U0SRE00001> and <@W0SRE00002>, <!here> <!channel>"},
         ["<@U0SRE00001>", "<@W0SRE00002>", "<!here>", "<!channel>"]),
        ({"text": "@gpu-oncall node down"}, []),  # plain text notifies nobody
        ({"text": "&lt;!channel&gt; from an alert"}, []),  # escaped: shown, not parsed
        ({"text": "<!here>", "mrkdwn": False}, []),
        ({"text": "x", "blocks": [section("<!here>", kind="plain_text")]}, []),  # plain_text is not parsed
        ({"text": "x", "blocks": [context("<@U0SRE00001>"), fields("<!subteam^S1234567>")]},
         ["<@U0SRE00001>", "<!subteam^S1234567>"]),
        ({"text": "<!here> twice <!here>"}, ["<!here>"]),
    ],
)  # fmt: skip
def test_mentions_are_parsed_as_slack_parses_mrkdwn(body: dict[str, Any], parsed: list[str]) -> None:
    assert mentions(body) == parsed


def test_a_blocks_refusal_applies_only_to_messages_that_carry_blocks() -> None:
    rule = Refusal("chat.postMessage", "invalid_blocks", containing="start-drain")
    assert rule.applies("chat.postMessage", {"text": "start-drain: done", "blocks": [section("start-drain")]})
    assert not rule.applies("chat.postMessage", {"text": "start-drain: done"})  # the plain form passes
    assert not rule.applies("chat.update", {"text": "start-drain", "blocks": [section("start-drain")]})
    too_long = Refusal("chat.postMessage", "msg_too_long", containing="start-drain")
    assert too_long.applies("chat.postMessage", {"text": "start-drain"})  # any form: the plain one is refused too


def button(**change: Any) -> dict[str, Any]:
    out = {"type": "button", "action_id": "repairbot:resume", "value": "gpu-node-001",
           "text": {"type": "plain_text", "text": "Resume"}}  # fmt: skip
    out.update(change)
    return {k: v for k, v in out.items() if v is not None}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": "repairbot-actions", "elements": list(elements)}


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (actions(button(), button(action_id="repairbot:cancel", style="danger")), None),
        (actions(*[button(action_id=f"a{i}") for i in range(25)]), None),
        (actions(*[button(action_id=f"a{i}") for i in range(26)]), "invalid_blocks"),
        (actions(), "invalid_blocks"),
        (actions(button(action_id="a" * 255)), None),
        (actions(button(action_id="a" * 256)), "invalid_blocks"),
        (actions(button(value="v" * 2000)), None),
        (actions(button(value="v" * 2001)), "invalid_blocks"),
        (actions(button(text={"type": "plain_text", "text": "t" * 75})), None),
        (actions(button(text={"type": "plain_text", "text": "t" * 76})), "invalid_blocks"),
        (actions(button(text={"type": "mrkdwn", "text": "*Resume*"})), "invalid_blocks"),
        (actions(button(style="warning")), "invalid_blocks"),
        (actions(button(), button()), "invalid_blocks"),  # the same action_id twice in one block
        (actions({"type": "static_select", "action_id": "x"}), "invalid_blocks"),
        (actions(button(colour="red")), "invalid_blocks"),
    ],
)  # fmt: skip
def test_actions_blocks_and_buttons_are_held_to_block_kit_limits(block: dict[str, Any], error: str | None) -> None:
    assert error_of({"text": "t", "blocks": [block]}) == error


def test_the_buttons_of_a_message_are_read_back_with_their_block() -> None:
    from repairbot_sim.slack_blocks import buttons

    found = buttons([section("s"), actions(button(), button(action_id="repairbot:cancel"))])
    assert [b["action_id"] for b in found] == ["repairbot:resume", "repairbot:cancel"]
    assert {b["block_id"] for b in found} == {"repairbot-actions"}
