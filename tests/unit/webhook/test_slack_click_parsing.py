"""``POST /slack/actions``: Slack's signature checked as Slack signs, the ``block_actions`` payload read."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from repairbot.notify.slack_buttons import SlackAction
from repairbot.webhook.slack_actions import ClickError, parse_click, verify
from repairbot_sim.slack_interactions import block_actions_payload, form_body, slack_signature

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def payload(**change: Any) -> dict[str, Any]:
    button = {"action_id": "repairbot:resume", "block_id": "repairbot-actions", "value": "gpu-node-001-2026",
              "text": {"type": "plain_text", "text": "Resume"}, "style": "primary"}  # fmt: skip
    out = block_actions_payload(user="U0SANDBOX1", user_name="sre", channel="C0GPUREPAIR", message_ts="1.000001",
                                message={"type": "message"}, button=button,
                                response_url="https://hooks.slack.com/actions/T0/1/abc")  # fmt: skip
    out.update(change)
    return out


def signed(body: bytes, *, stamp: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if stamp is None else stamp))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(SECRET, ts, body)}


def test_a_click_signed_with_the_secret_verifies() -> None:
    body = form_body(payload())
    assert verify(SignatureVerifier(SECRET), signed(body), body)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "not-a-time", "X-Slack-Signature": "v0=00"},
    ],
)
def test_unsigned_or_malformed_signatures_fail(headers: dict[str, str]) -> None:
    assert not verify(SignatureVerifier(SECRET), headers, form_body(payload()))


def test_a_stale_timestamp_fails_even_when_correctly_signed() -> None:
    body = form_body(payload())
    assert not verify(SignatureVerifier(SECRET), signed(body, stamp=time.time() - 301), body)


def test_a_body_changed_after_signing_fails() -> None:
    body = form_body(payload())
    headers = signed(body)
    assert not verify(SignatureVerifier(SECRET), headers, form_body(payload(response_url="https://evil.example/")))


def test_the_block_actions_payload_is_read_into_a_click() -> None:
    click = parse_click(form_body(payload()))
    assert click.user == "U0SANDBOX1" and click.action is SlackAction.RESUME
    assert click.value == "gpu-node-001-2026" and click.response_url == "https://hooks.slack.com/actions/T0/1/abc"
    assert click.who == "<@U0SANDBOX1> from Slack"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not a form", "form-encoded"),
        (urlencode({"payload": "{"}).encode(), "form-encoded"),
        (form_body(payload(type="view_submission")), "block_actions"),
        (form_body(payload(user={"id": "<!channel>"})), "user id"),
        (form_body(payload(actions=[])), "one clicked"),
        (form_body(payload(actions=[{"action_id": "other:thing", "value": "x"}])), "not a RepairBot button"),
        (form_body(payload(actions=[{"action_id": "repairbot:cancel", "value": ""}])), "value"),
    ],
)
def test_what_is_not_a_repairbot_click_is_refused_with_the_reason(body: bytes, why: str) -> None:
    with pytest.raises(ClickError, match=why):
        parse_click(body)
