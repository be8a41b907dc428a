"""Who is in a Slack user group: slack-sdk's WebClient asks the fake Slack, and the answer is cached a while.

``usergroups.users.list`` as Slack's reference gives it: ``{"ok": true,
"users": [...]}``, ``no_such_subteam`` for an unknown group,
``missing_scope`` (with ``needed``) when the bot token lacks
``usergroups:read``. Every failure is an error with Slack's code, counted, and
never cached: the next click asks again.
"""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from repairbot.webhook.slack_groups import GroupLookupError, GroupMembers
from repairbot_sim.slack import SlackSim


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lookups(sim: SlackSim) -> list[str]:
    return [r["path"] for r in sim.recorded if r["path"].endswith("usergroups.users.list")]


def members_of(sim: SlackSim, clock: Clock, errors: list[str], **options: int) -> GroupMembers:
    client = WebClient(token=sim.token, base_url=sim.api_url, timeout=5)
    return GroupMembers(client, clock=clock, on_error=errors.append, **options)


def test_group_members_come_from_slack_and_are_cached_for_the_ttl(slack_sim: SlackSim) -> None:
    clock, errors = Clock(), list[str]()
    groups = members_of(slack_sim, clock, errors, ttl=60)

    assert groups.members("S0SANDBOXSRE") == {"U0SANDBOX1"}
    slack_sim.group_members["S0SANDBOXSRE"].append("U0SRE00001")
    clock.now += 59
    assert groups.members("S0SANDBOXSRE") == {"U0SANDBOX1"}  # cached: one call for a burst of clicks
    assert len(lookups(slack_sim)) == 1
    clock.now += 2
    assert groups.members("S0SANDBOXSRE") == {"U0SANDBOX1", "U0SRE00001"}  # past the TTL: asked again
    assert len(lookups(slack_sim)) == 2 and errors == []


def test_the_cache_holds_at_most_max_groups(slack_sim: SlackSim) -> None:
    slack_sim.user_groups.update({"S0TEAMA": "a", "S0TEAMB": "b"})
    slack_sim.group_members.update({"S0TEAMA": ["U0A"], "S0TEAMB": ["U0B"]})
    clock, errors = Clock(), list[str]()
    groups = members_of(slack_sim, clock, errors, max_groups=2)

    for group in ("S0SANDBOXSRE", "S0TEAMA", "S0TEAMB", "S0SANDBOXSRE"):
        groups.members(group)

    assert len(lookups(slack_sim)) == 4  # the oldest was evicted, so it was asked again


def test_an_unknown_group_is_slacks_no_such_subteam(slack_sim: SlackSim) -> None:
    clock, errors = Clock(), list[str]()
    groups = members_of(slack_sim, clock, errors)

    with pytest.raises(GroupLookupError) as caught:
        groups.members("S0NOSUCHGRP")

    assert caught.value.code == "no_such_subteam" and "no_such_subteam" in str(caught.value)
    assert errors == ["no_such_subteam"]


def test_a_token_without_usergroups_read_is_missing_scope_and_not_cached(slack_sim: SlackSim) -> None:
    slack_sim.scopes.discard("usergroups:read")
    clock, errors = Clock(), list[str]()
    groups = members_of(slack_sim, clock, errors)

    with pytest.raises(GroupLookupError) as caught:
        groups.members("S0SANDBOXSRE")

    assert caught.value.code == "missing_scope" and "needs scope usergroups:read" in str(caught.value)
    slack_sim.scopes.add("usergroups:read")  # the app is reinstalled with the scope: the next click is asked again
    assert groups.members("S0SANDBOXSRE") == {"U0SANDBOX1"}
    assert errors == ["missing_scope"]


def test_a_wrong_token_or_no_token_refuses_every_lookup(slack_sim: SlackSim) -> None:
    errors: list[str] = []
    wrong = GroupMembers(WebClient(token="xoxb-wrong", base_url=slack_sim.api_url), on_error=errors.append)
    none = GroupMembers.from_token(None, on_error=errors.append)

    for groups in (wrong, none):
        with pytest.raises(GroupLookupError):
            groups.members("S0SANDBOXSRE")

    assert errors == ["invalid_auth", "no_token"]


def test_slack_down_is_an_error_not_an_empty_group(slack_sim: SlackSim) -> None:
    slack_sim.fail_for(30)
    errors: list[str] = []
    groups = GroupMembers(WebClient(token=slack_sim.token, base_url=slack_sim.api_url), on_error=errors.append)

    with pytest.raises(GroupLookupError) as caught:
        groups.members("S0SANDBOXSRE")

    assert caught.value.code == "fatal_error" and errors == ["fatal_error"]
