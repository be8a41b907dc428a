"""A Jira Cloud setup (the account e-mail + an API token, no PAT) starts, and the operator logs in with it."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_support import NOTIFYING, container, name, render

from repairbot.operator.chat import ChatEndpoints, build_notifiers
from repairbot.policy import parse_policy

# What an SRE on Jira Cloud writes: the chart's default tokenKey left alone, no PAT in the Secret.
CLOUD_JIRA = {"enabled": True, "url": "https://example.atlassian.net", "existingSecret": "repairbot-jira",
              "userKey": "email", "passwordKey": "api-token", "project": "GPUOPS"}  # fmt: skip
CLOUD = {**NOTIFYING, "jira": CLOUD_JIRA}
CLOUD_SECRET = {"email": "sre-bot@example.com", "api-token": "ATATT3x-example"}


def resolved_env(env: list[dict[str, Any]], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: a non-optional secretKeyRef to a key the Secret
    lacks stops the container from starting (CreateContainerConfigError)."""
    out: dict[str, str] = {}
    for entry in env:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            if "value" in entry:
                out[entry["name"]] = str(entry["value"])
            continue
        data = secrets.get(ref["name"], {})
        if ref["key"] not in data:
            if ref.get("optional"):
                continue
            raise AssertionError(f"CreateContainerConfigError: couldn't find key {ref['key']} in Secret {ref['name']}")
        out[entry["name"]] = data[ref["key"]]
    return out


def operator_env(chart: Any, values: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    operator = container(render(chart, values).get("Deployment", name("operator")), "operator")
    secrets = {"repairbot-jira": secret, "repairbot-slack": {"bot-token": "xoxb-example"}}
    return resolved_env(operator.get("env") or [], secrets)


def test_a_cloud_setup_with_email_and_api_token_and_no_pat_starts_and_logs_in_with_them(chart: Any) -> None:
    env = operator_env(chart, CLOUD, CLOUD_SECRET)  # raises, as the kubelet would refuse, on a missing key
    endpoints = ChatEndpoints.from_environment(env)
    assert (endpoints.jira_user, endpoints.jira_password) == ("sre-bot@example.com", "ATATT3x-example")
    policy = parse_policy({"notifications": {"jira": {"project": "GPUOPS"}}})
    _, jira = build_notifiers(policy, endpoints)
    assert jira is not None and jira.login == "basic"


def test_a_data_center_setup_with_a_pat_still_logs_in_with_the_token(chart: Any) -> None:
    values = {**NOTIFYING, "jira": {**NOTIFYING["jira"], "tokenKey": "pat", "userKey": "", "passwordKey": ""}}
    env = operator_env(chart, values, {"pat": "NjM0..."})
    policy = parse_policy({"notifications": {"jira": {"project": "GPUOPS"}}})
    _, jira = build_notifiers(policy, ChatEndpoints.from_environment(env))
    assert jira is not None and jira.login == "token"


def test_a_user_without_its_password_is_refused_at_install_and_at_start(chart: Any) -> None:
    half = {**NOTIFYING, "jira": {**CLOUD["jira"], "passwordKey": ""}}
    with pytest.raises(helm.HelmValuesError, match=r"/jira/passwordKey"):
        render(chart, half)
    with pytest.raises(ValueError, match="REPAIRBOT_JIRA_PASSWORD"):
        ChatEndpoints.from_environment({"REPAIRBOT_JIRA_URL": "https://example.atlassian.net",
                                        "REPAIRBOT_JIRA_USER": "sre-bot@example.com"})  # fmt: skip
