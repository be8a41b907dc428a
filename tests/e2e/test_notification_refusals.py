"""A message Slack or Jira refuses for good is recorded and skipped; the messages after it still arrive.

And a storm's one Slack message and one Jira ticket keep counting every member as nodes join.
Real kopf, the real slack-sdk and jira clients, the emulated API server and the fake Slack and Jira,
which refuse messages with the services' own error codes.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import (
    NOTIFYING,
    ON_CALL_GROUP,
    SandboxFactory,
    all_repairs,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject_now,
    phase_of,
    repairbot,
    repairs_of,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot_sim.jira_project import EDIT_SCREEN

REFUSED_STEP = "start-drain"  # a step in the middle of every repair: steps before and after it must arrive


def settled(kube: client.ApiClient, node: str, *targets: str) -> dict[str, Any] | None:
    """Every target caught up, and every refusal line let go by the cursor because the history keeps it."""
    status = delivered(kube, node, *targets)
    if status is None or any(status["deliveries"][t].get("unrecorded") for t in targets):
        return None
    return status


def refusals(status: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [e for e in status.get("history") or [] if e["step"] == f"{target}-refused"]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [("invalid_blocks", "sent-plain"), ("msg_too_long", "skipped")],
    ids=["invalid_blocks-sent-as-plain-text", "msg_too_long-skipped"],
)
def test_one_slack_message_refused_is_recorded_and_the_repairs_later_messages_still_arrive(
    make_sandbox: SandboxFactory, error: str, outcome: str
) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    # Slack refuses the replies for one step (a blocks error only while they carry blocks, as Slack does).
    slack.refuse("chat.postMessage", error, containing=REFUSED_STEP)

    inject_now(sandbox, [("gpu-node-001", "xid:48", 1)])
    finished_repair(kube, "gpu-node-001", timeout=40)
    status = eventually(lambda: settled(kube, "gpu-node-001", "slack", "jira"), timeout=30, what="both caught up")

    refused = refusals(status, "slack")
    assert refused and all(e["outcome"] == outcome and error in e["message"] for e in refused), refused
    replies = slack.thread(status["slack"]["channel"], status["slack"]["ts"])
    texts = [m.text or "" for m in replies]
    later = [e["step"] for e in status["history"] if not e["step"].endswith("-refused")][-1]
    assert any(later in text for text in texts)  # the repair's last step still reached the thread
    plain = [m for m in replies if REFUSED_STEP in (m.text or "")]
    if outcome == "sent-plain":
        assert plain and all(m.blocks is None for m in plain)  # the reduced form: text without blocks
    else:
        assert not plain
    # Every step but Slack's own refusal lines is in the thread, once; Jira was told Slack refused.
    sendable = [e for e in status["history"] if e["step"] != "slack-refused"]
    assert len(replies) == len(sendable) - (0 if outcome == "sent-plain" else len(refused))
    assert any("slack refused" in c for c in jira.comments_of(status["jira"]["key"]))


@pytest.mark.parametrize("change", ["archive", "leave"])
def test_a_channel_slack_will_not_post_to_is_recorded_on_the_repair_and_the_repair_goes_on(
    make_sandbox: SandboxFactory, change: str
) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    getattr(slack, change)("gpu-repairs")  # archived, or the bot removed from it

    inject_now(sandbox, [("gpu-node-001", "xid:48", 1)])
    repair = finished_repair(kube, "gpu-node-001", timeout=40)
    assert repair["status"]["phase"] == "Succeeded"  # Slack's refusal never holds back the repair
    status = eventually(lambda: settled(kube, "gpu-node-001", "slack", "jira"), timeout=30, what="both caught up")
    code = "is_archived" if change == "archive" else "not_in_channel"
    refused = refusals(status, "slack")
    assert refused and all(code in e["message"] and e["outcome"] == "skipped" for e in refused), refused
    assert slack.messages == [] and not status.get("slack")
    assert any("slack refused" in c and code in c for c in jira.comments_of(status["jira"]["key"]))


def test_one_jira_comment_refused_with_a_400_is_recorded_and_the_repairs_later_comments_still_arrive(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    jira.refuse("comment", 400, "Field 'comment' cannot be set. It is not on the appropriate screen, or unknown.",
                containing=REFUSED_STEP)  # fmt: skip

    inject_now(sandbox, [("gpu-node-002", "xid:48", 0)])
    finished_repair(kube, "gpu-node-002", timeout=40)
    status = eventually(lambda: settled(kube, "gpu-node-002", "slack", "jira"), timeout=30, what="both caught up")

    refused = refusals(status, "jira")
    assert refused and all(e["outcome"] == "skipped" and "http-400" in e["message"] for e in refused), refused
    issue = jira.issues[status["jira"]["key"]]
    comments = jira.comments_of(issue.key)
    assert not any(REFUSED_STEP in c for c in comments)
    assert any("return-to-service" in c for c in comments)  # the comments after the refused one arrived
    assert issue.status == "Done"  # and the ticket was still resolved
    replies = slack.thread(status["slack"]["channel"], status["slack"]["ts"])
    assert any("jira refused" in (m.text or "") for m in replies)  # Slack was told Jira refused


def test_a_jira_workflow_without_done_is_recorded_and_the_lane_moves_on(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    jira = sandbox.sandbox.jira
    assert jira is not None
    # The project's workflow has no "Done" (a team that closes tickets through review): resolve cannot work.
    jira.workflow = {"To Do": [("11", "Start Progress", "In Progress")],
                     "In Progress": [("51", "Send to review", "In Progress")]}  # fmt: skip

    inject_now(sandbox, [("gpu-node-003", "xid:48", 0)])
    finished_repair(kube, "gpu-node-003", timeout=40)
    status = eventually(lambda: settled(kube, "gpu-node-003", "jira"), timeout=30, what="jira caught up")

    refused = refusals(status, "jira")
    assert len(refused) == 1 and "no-such-transition" in refused[0]["message"], refused
    assert jira.issues[status["jira"]["key"]].status == "To Do"
    # The next repair's messages are not held back by the first one's refusal.
    inject_now(sandbox, [("gpu-node-000", "xid:48", 0)])
    finished_repair(kube, "gpu-node-000", timeout=40)
    eventually(lambda: settled(kube, "gpu-node-000", "jira"), timeout=30, what="the next repair's ticket")


def test_a_quarantine_on_a_project_whose_edit_screen_lacks_priority_is_commented_and_the_refusal_recorded(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy={**NOTIFYING, "notifications": {**NOTIFYING["notifications"],
                                   "jira": {"project": "OPS", "hardwareAssignee": "dc-hardware"}}})  # fmt: skip
    kube = api_client(sandbox.state["kubeconfig"])
    jira = sandbox.sandbox.jira
    assert jira is not None
    jira.project.edit_screen = EDIT_SCREEN - {"priority"}  # a project whose edit screen has no Priority

    done = repairbot(sandbox, "repair", "gpu-node-002", "--reason", "handed to hardware", "--action", "quarantine")
    assert done.returncode == 0, done.stderr
    eventually(lambda: next((r for r in repairs_of(kube, "gpu-node-002") if phase_of(r) == "Quarantined"), None),
               timeout=30, what="gpu-node-002 quarantined")  # fmt: skip

    def escalated() -> dict[str, Any] | None:
        [repair] = repairs_of(kube, "gpu-node-002")
        status = repair.get("status") or {}
        cursor = (status.get("deliveries") or {}).get("jira") or {}
        return dict(status) if cursor.get("phase") == "Quarantined" and refusals(status, "jira") else None

    status = eventually(escalated, timeout=30, what="the quarantine told to jira and its refusal recorded")
    refused = refusals(status, "jira")
    assert len(refused) == 1 and "priority" in refused[0]["message"] and "http-400" in refused[0]["message"], refused
    issue = jira.issues[status["jira"]["key"]]
    assert issue.fields["assignee"] == {"name": "dc-hardware"}  # the other edit went through
    assert any("is quarantined" in c for c in jira.comments_of(issue.key))  # and hardware was told what to do


def storm_members(kube: client.ApiClient, incident: str) -> list[dict[str, Any]]:
    return [r for r in all_repairs(kube) if (r.get("status") or {}).get("incident") == incident]


def test_a_storms_slack_message_and_jira_description_count_every_member_as_nodes_join(
    make_sandbox: SandboxFactory,
) -> None:
    # More than 3 faults fleet-wide within the window trips the breaker; the settle time holds the first
    # repairs in Cordoned long enough for the storm to be seen before any reboot.
    sandbox = make_sandbox(
        nodes=8, policy={**NOTIFYING, "budget": {"maxUnavailable": 8}, "breaker": {"maxFaults": 3, "settleTime": "3s"}},
    )
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    first = [f"gpu-node-00{i}" for i in range(4)]
    joining = [f"gpu-node-00{i}" for i in range(4, 7)]

    inject_now(sandbox, [(name, "xid:79", 0) for name in first])

    def incident_of(names: list[str]) -> str | None:
        repairs = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in names]
        found = {(r.get("status") or {}).get("incident") for r in repairs if (r.get("status") or {}).get("phase")
                 == "Blocked"}  # fmt: skip
        return found.pop() if len(repairs) == len(names) and len(found) == 1 and None not in found else None

    incident = eventually(lambda: incident_of(first), timeout=30, what="the first four blocked in one incident")
    parent = eventually(lambda: next((m for m in slack.messages if m.thread_ts is None), None), timeout=20,
                        what="the storm's message")  # fmt: skip

    inject_now(sandbox, [(name, "xid:79", 0) for name in joining])
    eventually(lambda: incident_of(first + joining) == incident, timeout=30, what="three more joined the storm")

    def slack_says_seven() -> bool:
        return "Fault storm: 7 nodes" in (parent.text or "") and all(n in (parent.text or "") for n in first + joining)

    eventually(slack_says_seven, timeout=30, what=f"the storm's message counts 7: {parent.text!r}")
    assert len([m for m in slack.messages if m.thread_ts is None]) == 1  # still one message, rewritten
    assert "7 Blocked" in (parent.text or "")
    assert ON_CALL_GROUP in parent.mentions  # the storm really pages on-call, as Slack parses the message

    def ticket_says_seven() -> bool:
        issues = list(jira.issues.values())
        if len(issues) != 1:
            return False
        fields = issues[0].fields
        return "Nodes (7)" in fields.get("description", "") and ": 7 nodes" in fields.get("summary", "")

    eventually(ticket_says_seven, timeout=30, what="the storm's ticket counts 7")
    [issue] = jira.issues.values()
    assert all(name in issue.fields["description"] for name in first + joining)
    eventually(lambda: f"/browse/{issue.key}|{issue.key}>" in (parent.text or ""), timeout=30,
               what="the storm's message links its ticket")  # fmt: skip
    assert len(storm_members(kube, incident)) == 7
