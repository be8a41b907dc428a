"""The chart's Slack allow-list: users and user groups reach the policy, the webhook gets the bot token for groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_support import name, render

from repairbot.policy import load_policy

GROUPS: dict[str, Any] = {
    "slack": {"enabled": True, "existingSecret": "slack-bot", "tokenKey": "bot-token", "channel": "#gpu-repairs",
              "allowedUsers": ["U0123ABCD"], "allowedGroups": ["S0SRE00001"]},
    "webhook": {"auth": {"existingSecret": "webhook-auth", "slackSigningSecretKey": "signing-secret"}},
}  # fmt: skip


def webhook_env(chart: Any, values: dict[str, Any]) -> dict[str, Any]:
    deployment = render(chart, values).get("Deployment", name("webhook"))
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or ()}


def test_allowed_users_and_groups_reach_the_policy_and_the_webhook_reads_the_bot_token_from_its_secret(
    chart: Any, tmp_path: Path
) -> None:
    out = render(chart, GROUPS)
    path = tmp_path / "policy.yaml"
    path.write_text(out.get("ConfigMap", name("policy"))["data"]["policy.yaml"], encoding="utf-8")

    actions = load_policy(path).notifications.slack.actions
    assert actions.allowed_users == ("U0123ABCD",) and actions.allowed_groups == ("S0SRE00001",)
    env = webhook_env(chart, GROUPS)
    assert env["REPAIRBOT_SLACK_TOKEN"] == {"secretKeyRef": {"name": "slack-bot", "key": "bot-token"}}
    kubernetes_validate.validate(out.get("Deployment", name("webhook")), kubernetes_validate.latest_version(),
                                 strict=True)  # fmt: skip


def test_without_allowed_groups_the_webhook_gets_no_bot_token(chart: Any) -> None:
    values = {**GROUPS, "slack": {**GROUPS["slack"], "allowedGroups": []}}

    assert "REPAIRBOT_SLACK_TOKEN" not in webhook_env(chart, values)


@pytest.mark.parametrize("bad", [["@gpu-sre"], ["U0123ABCD"]])
def test_a_group_named_by_handle_is_refused_by_the_values_schema(chart: Any, bad: list[str]) -> None:
    with pytest.raises(Exception, match="allowedGroups"):
        render(chart, {**GROUPS, "slack": {**GROUPS["slack"], "allowedGroups": bad}})
