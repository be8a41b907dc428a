"""Where Slack and Jira answer and how to log in, and the notifiers the policy asks for.

Apart from the dispatcher because the operator's start-up, the sandbox and the
demo all build notifiers from credentials, while only the operator dispatches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from repairbot.notify.jira import JiraNotifier
from repairbot.notify.slack import SlackNotifier
from repairbot.policy import Policy


@dataclass(frozen=True, slots=True)
class ChatEndpoints:
    """Where Slack and Jira answer and how to log in; from the environment (Secrets) or the sandbox."""

    slack_token: str | None = None
    slack_api_url: str | None = None
    jira_url: str | None = None
    jira_token: str | None = None
    jira_user: str | None = None
    jira_password: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ChatEndpoints:
        """The Secrets' values as the chart passes them; a Jira user without its password (or the reverse) is an
        error, not a silent fall-back to the token."""
        if bool(env.get("REPAIRBOT_JIRA_USER")) != bool(env.get("REPAIRBOT_JIRA_PASSWORD")):
            raise ValueError(
                "Jira login: REPAIRBOT_JIRA_USER and REPAIRBOT_JIRA_PASSWORD go together (Jira Cloud: the account "
                "e-mail and an API token); set both, or neither and REPAIRBOT_JIRA_TOKEN (a Data Center PAT)"
            )
        return cls(
            slack_token=env.get("REPAIRBOT_SLACK_TOKEN") or env.get("SLACK_BOT_TOKEN"),
            slack_api_url=env.get("REPAIRBOT_SLACK_API_URL"),
            jira_url=env.get("REPAIRBOT_JIRA_URL"),
            jira_token=env.get("REPAIRBOT_JIRA_TOKEN"),
            jira_user=env.get("REPAIRBOT_JIRA_USER"),
            jira_password=env.get("REPAIRBOT_JIRA_PASSWORD"),
        )


def build_notifiers(policy: Policy, endpoints: ChatEndpoints) -> tuple[SlackNotifier | None, JiraNotifier | None]:
    """Slack when the policy names a channel and a token is there; Jira when it names a project and a server."""
    slack_policy, jira_policy = policy.notifications.slack, policy.notifications.jira
    slack = None
    if slack_policy.channel and endpoints.slack_token:
        slack = SlackNotifier(
            endpoints.slack_token, slack_policy.channel, base_url=endpoints.slack_api_url, on_call=slack_policy.on_call
        )
    jira = None
    if jira_policy.project and endpoints.jira_url:
        basic = (
            (endpoints.jira_user, endpoints.jira_password) if endpoints.jira_user and endpoints.jira_password else None
        )
        jira = JiraNotifier(
            endpoints.jira_url,
            project=jira_policy.project,
            issue_type=jira_policy.issue_type,
            labels=jira_policy.labels,
            done_transition=jira_policy.done_transition,
            hardware_assignee=jira_policy.hardware_assignee,
            catalog=policy.xid.catalog(),
            token=None if basic else endpoints.jira_token,
            basic=basic,
        )
    return slack, jira
