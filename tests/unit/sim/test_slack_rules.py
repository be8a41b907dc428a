"""The fake Slack holds messages to Slack's published Block Kit and length limits, with Slack's error codes."""

from __future__ import annotations

from typing import Any

import pytest

from repairbot.sim.slack import Refusal, message_problem


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"text": "ok", "blocks": [section("fine")]}, None),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "ok", "blocks": [section("s")] * 51}, "invalid_blocks"),
        ({"text": "ok", "blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"text": "ok", "blocks": [section("")]}, "invalid_blocks"),
        ({"text": "ok", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
         "invalid_blocks"),
        ({"text": "ok", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}]}, "invalid_blocks"),
        ({"text": "ok", "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
         "invalid_blocks"),
        ({"text": "ok", "blocks": [{"type": "context", "elements": []}]}, "invalid_blocks"),
        ({"text": "ok", "blocks": [{"type": "carousel"}]}, "invalid_blocks"),
        ({"text": "ok", "blocks": "[not json"}, "invalid_blocks_format"),
    ],
)  # fmt: skip
def test_slack_limits(body: dict[str, Any], error: str | None) -> None:
    problem = message_problem(body)
    assert (problem[0] if problem else None) == error


def test_a_blocks_refusal_applies_only_to_messages_that_carry_blocks() -> None:
    rule = Refusal("chat.postMessage", "invalid_blocks", containing="start-drain")
    assert rule.applies("chat.postMessage", {"text": "start-drain: done", "blocks": [section("start-drain")]})
    assert not rule.applies("chat.postMessage", {"text": "start-drain: done"})  # the plain form passes
    assert not rule.applies("chat.update", {"text": "start-drain", "blocks": [section("start-drain")]})
    too_long = Refusal("chat.postMessage", "msg_too_long", containing="start-drain")
    assert too_long.applies("chat.postMessage", {"text": "start-drain"})  # any form: the plain one is refused too
