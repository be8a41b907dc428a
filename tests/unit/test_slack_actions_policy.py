"""Who may act from Slack, as the policy says: user ids and user group ids, checked at startup by field."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.signature import SignatureVerifier

from repairbot.notify.slack_buttons import SlackAction
from repairbot.policy import PolicyError, parse_policy
from repairbot.policy.slack_actions import MAX_GROUPS, SlackActionsPolicy
from repairbot.webhook.metrics import WebhookMetrics
from repairbot.webhook.slack_actions import Click, SlackActions
from repairbot.webhook.slack_groups import GroupMembers


def actions(section: dict[str, object]) -> SlackActionsPolicy:
    return parse_policy({"notifications": {"slack": {"actions": section}}}).notifications.slack.actions


def test_a_policy_may_allow_slack_user_groups_beside_users() -> None:
    policy = actions({"allowedUsers": ["U0SANDBOX1"], "allowedGroups": ["S0SANDBOXSRE", "S0SANDBOXSRE"]})

    assert policy.allowed_users == ("U0SANDBOX1",)
    assert policy.allowed_groups == ("S0SANDBOXSRE",)
    assert policy.to_dict() == {"allowedUsers": ["U0SANDBOX1"], "allowedGroups": ["S0SANDBOXSRE"]}


def test_a_policy_with_only_allowed_users_still_works() -> None:
    policy = actions({"allowedUsers": ["U0SANDBOX1"]})

    assert policy.allows("U0SANDBOX1") and not policy.allows("U0SRE00001")
    assert policy.allowed_groups == ()


@pytest.mark.parametrize("bad", [["@gpu-sre"], ["gpu-sre"], ["U0SANDBOX1"], "S0SANDBOXSRE", [42]])
def test_a_group_named_by_handle_or_user_id_fails_at_startup_naming_the_field(bad: object) -> None:
    with pytest.raises(PolicyError) as caught:
        actions({"allowedGroups": bad})

    assert "policy.notifications.slack.actions.allowedGroups" in str(caught.value)
    assert "user group ids (S…" in str(caught.value)


def test_too_many_allowed_groups_fail_at_startup() -> None:
    with pytest.raises(PolicyError) as caught:
        actions({"allowedGroups": [f"S0GROUP{i:03d}" for i in range(MAX_GROUPS + 1)]})

    assert "allowedGroups" in str(caught.value) and f"at most {MAX_GROUPS}" in str(caught.value)


def _endpoint(groups: GroupMembers | None, metrics: WebhookMetrics) -> SlackActions:
    policy = actions({"allowedGroups": ["S0SANDBOXSRE"]})
    return SlackActions(SignatureVerifier("secret"), policy, lambda click: "done", groups=groups, metrics=metrics)


def test_a_group_click_without_a_bot_token_is_refused_saying_why_and_counted() -> None:
    metrics = WebhookMetrics()
    endpoint = _endpoint(GroupMembers.from_token(None, on_error=lambda c: metrics.slack_group_errors.labels(c).inc()),
                         metrics)  # fmt: skip
    click = Click("U0SANDBOX1", SlackAction.RESUME, "gpurepair-x", None)

    said = asyncio.run(endpoint.handle(click, None))

    assert "could not check that you may act" in said and "no Slack bot token" in said
    assert metrics.slack_group_errors.labels("no_token")._value.get() == 1
    assert metrics.slack_actions.labels("unverified")._value.get() == 1
    assert metrics.slack_actions.labels("done")._value.get() == 0
