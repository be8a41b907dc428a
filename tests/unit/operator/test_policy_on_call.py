"""``notifications.slack.onCall`` accepts exactly the forms Slack notifies on, and refuses a handle at startup.

Slack pages nobody for plain text ``@gpu-oncall``: only ``<!subteam^S…>`` (a
user group), ``<@U…>`` (a user), ``<!here>`` and ``<!channel>`` notify. A bare
group or user id is written in that syntax for convenience.
"""

from __future__ import annotations

import pytest

from repairbot.policy import PolicyError, parse_policy


def on_call(value: object) -> str | None:
    policy = parse_policy({"notifications": {"slack": {"channel": "#gpu-repairs", "onCall": value}}})
    return policy.notifications.slack.on_call


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("<!subteam^S0123ABCD>", "<!subteam^S0123ABCD>"),
        ("<!subteam^S0123ABCD|@gpu-oncall>", "<!subteam^S0123ABCD|@gpu-oncall>"),
        ("<@U0123ABCD>", "<@U0123ABCD>"),
        ("<@W0123ABCD>", "<@W0123ABCD>"),
        ("<!here>", "<!here>"),
        ("<!channel>", "<!channel>"),
        ("S0123ABCD", "<!subteam^S0123ABCD>"),
        ("U0123ABCD", "<@U0123ABCD>"),
        ("W0123ABCD", "<@W0123ABCD>"),
    ],
)
def test_every_form_slack_notifies_on_is_accepted_in_its_mention_syntax(configured: str, sent: str) -> None:
    assert on_call(configured) == sent


def test_no_on_call_means_no_mention() -> None:
    assert parse_policy({"notifications": {"slack": {"channel": "#gpu-repairs"}}}).notifications.slack.on_call is None


def test_a_plain_handle_is_refused_at_startup_naming_the_form_that_pages() -> None:
    with pytest.raises(PolicyError) as caught:
        on_call("@gpu-oncall")
    message = str(caught.value)
    assert "policy.notifications.slack.onCall" in message and "@gpu-oncall" in message
    assert "<!subteam^" in message and "notifies nobody" in message


@pytest.mark.parametrize("bad", ["gpu-oncall", "<!subteam^gpu-oncall>", "<@gpu-oncall>", "<!everyone>", "<#C0123ABCD>",
                                 "<!subteam^S0123ABCD> extra", "s0123abcd"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(PolicyError, match="onCall"):
        on_call(bad)
