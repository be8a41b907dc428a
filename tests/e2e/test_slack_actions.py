"""Acting from Slack, end to end: the fake Slack clicks the buttons RepairBot posted, as Slack does.

Each click is the real thing: a signed ``block_actions`` POST to the
webhook's ``/slack/actions`` built from the message the fake Slack holds,
answered on its ``response_url``; the webhook acts through the CLI's own
commands under the chart's RBAC, and the operator records who clicked.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    all_repairs,
    chats,
    eventually,
    inject_now,
    merge_policy,
    node,
    phase_of,
    repairbot,
    repairs_of,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.slack import SlackSim

SRE = "U0SANDBOX1"
"""The one Slack user the policy lets act."""
ALICE = "U0SRE00001"
"""A workspace member the policy does not name."""
ALLOWED = merge_policy(NOTIFYING, {"notifications": {"slack": {"actions": {"allowedUsers": [SRE]}}}})
SRE_GROUP = "S0SANDBOXSRE"
"""The fake workspace's user group holding ``SRE`` (and not alice)."""
BY_GROUP = merge_policy(NOTIFYING, {"notifications": {"slack": {"actions": {"allowedGroups": [SRE_GROUP]}}}})
HELD_NODE = "gpu-node-001"


def held_repair(
    make_sandbox: SandboxFactory, policy: dict[str, Any] = ALLOWED
) -> tuple[BackgroundSandbox, client.ApiClient, dict[str, Any]]:
    """A sandbox whose ``HELD_NODE`` is held cordoned for a human (an InfiniBand port down: notify), posted."""
    sandbox = make_sandbox(policy=policy)
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, [(HELD_NODE, "ib-port-down", 0)])
    slack, _ = chats(sandbox)

    def held() -> dict[str, Any] | None:
        found = repairs_of(kube, HELD_NODE)
        repair = found[0] if found else None
        status = (repair or {}).get("status") or {}
        if repair and status.get("action") == "notify" and (status.get("slack") or {}).get("ts"):
            return repair if _button(slack, repair, "repairbot:resume") else None
        return None

    return sandbox, kube, eventually(held, timeout=30, what=f"{HELD_NODE} held for a human with a Resume button")


def _thread(repair: dict[str, Any]) -> tuple[str, str]:
    thread = repair["status"]["slack"]
    return str(thread["channel"]), str(thread["ts"])


def _button(slack: SlackSim, repair: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    return next((b for b in slack.buttons(*_thread(repair)) if b["action_id"] == action_id), None)


def click(sandbox: BackgroundSandbox, repair: dict[str, Any], action_id: str, **how: Any) -> tuple[int, str]:
    slack, _ = chats(sandbox)
    return sandbox.call(slack.click(*_thread(repair), action_id, **{"user": SRE, **how}))


def fresh(kube: client.ApiClient, name: str) -> dict[str, Any]:
    return next(r for r in all_repairs(kube) if r["metadata"]["name"] == name)


def until_phase(kube: client.ApiClient, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        repair = fresh(kube, name)
        return repair if phase_of(repair) == phase else None

    return eventually(probe, timeout=timeout, what=f"{name} {phase}")


def entries_by_slack(repair: dict[str, Any]) -> list[str]:
    return [e["message"] for e in repair["status"].get("history") or [] if "from Slack" in e["message"]]


def test_resume_from_slack_moves_a_held_repair_on_and_records_the_user(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)
    slack, jira = chats(sandbox)

    status, _ = click(sandbox, repair, "repairbot:resume")

    assert status == 200
    # Resumed at its last rung, the hold validates the node; the port is still down, so it goes to hardware.
    done = until_phase(kube, repair["metadata"]["name"], "Quarantined", timeout=40)
    assert entries_by_slack(done) == [f"resumed by <@{SRE}> from Slack"]
    assert ("validate", "started") in [(e["step"], e["outcome"]) for e in done["status"]["history"]]
    assert slack.responses and slack.responses[-1]["body"]["response_type"] == "ephemeral"
    assert "Resuming" in slack.responses[-1]["body"]["text"]
    parent = eventually(lambda: (m := slack.find(*_thread(done))) and "Resumed by" in str(m.blocks) and m,
                        what="the parent saying who resumed")  # fmt: skip
    assert f"Resumed by <@{SRE}>" in str(parent.blocks)
    buttons = eventually(lambda: [b["action_id"] for b in slack.buttons(*_thread(done))] == ["repairbot:release"],
                         what="the buttons following the phase: Release only")  # fmt: skip
    assert buttons
    key = done["status"]["jira"]["key"]
    eventually(lambda: any("from Slack" in c and SRE in c for c in jira.comments_of(key)) or None,
               timeout=20, what="the Jira ticket mirroring the resume")  # fmt: skip


def test_cancel_from_slack_stops_the_repair_and_leaves_the_node_cordoned(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)

    status, _ = click(sandbox, repair, "repairbot:cancel")

    assert status == 200
    done = until_phase(kube, repair["metadata"]["name"], "Cancelled", timeout=20)
    assert any(c["reason"] == "CancelledByHuman" for c in done["status"]["conditions"])
    assert any(m.startswith(f"cancelled by <@{SRE}> from Slack") for m in entries_by_slack(done))
    assert node(kube, HELD_NODE)["spec"].get("unschedulable") is True  # left cordoned for the human


def test_quarantine_then_release_from_slack(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)
    slack, _ = chats(sandbox)
    name = repair["metadata"]["name"]

    assert click(sandbox, repair, "repairbot:quarantine")[0] == 200
    held = until_phase(kube, name, "Quarantined", timeout=20)
    assert any(f"quarantined by <@{SRE}> from Slack" in m for m in entries_by_slack(held))
    eventually(lambda: _button(slack, held, "repairbot:release"), what="the parent offering Release")
    assert _button(slack, held, "repairbot:resume") is None

    assert click(sandbox, held, "repairbot:release")[0] == 200
    def released_now() -> dict[str, Any] | None:
        repair = fresh(kube, name)
        conditions = repair["status"].get("conditions") or []
        return repair if any(c["type"] == "Released" and c["status"] == "True" for c in conditions) else None

    released = eventually(released_now, timeout=20, what="the quarantine released")
    assert any(f"released by <@{SRE}> from Slack" in m for m in entries_by_slack(released))


def test_resume_storm_from_slack_half_opens_the_breaker_one_canary_first(make_sandbox: SandboxFactory) -> None:
    leaf = ["gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"]
    storm_policy = {"breaker": {"maxPerDomain": 3, "domainWindow": "5m", "settleTime": "2s"}}
    sandbox = make_sandbox(policy=merge_policy(ALLOWED, storm_policy))
    kube = api_client(sandbox.state["kubeconfig"])
    slack, _ = chats(sandbox)
    inject_now(sandbox, [(name, "xid:79", 1) for name in leaf])

    def storm_posted() -> list[dict[str, Any]] | None:
        found = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        if len(found) < 4 or not all(phase_of(r) == "Blocked" for r in found):
            return None
        posted = [r for r in found if (r["status"].get("slack") or {}).get("ts")]
        return found if posted and _button(slack, posted[0], "repairbot:resume-storm") else None

    members = eventually(storm_posted, timeout=40, what="the storm's message with Resume storm")
    anchor = next(r for r in members if (r["status"].get("slack") or {}).get("ts"))
    incident = anchor["status"]["incident"]
    assert _button(slack, anchor, "repairbot:resume-storm")["value"] == incident

    assert click(sandbox, anchor, "repairbot:resume-storm")[0] == 200
    # A double click (or Slack's retry) right after does nothing more.
    assert click(sandbox, anchor, "repairbot:resume-storm", retry=1)[0] == 200

    def moving() -> list[dict[str, Any]] | None:
        now = [r for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        return now if any(phase_of(r) != "Blocked" for r in now) else None

    now = eventually(moving, timeout=30, what="a canary leaving Blocked")
    assert sum(phase_of(r) != "Blocked" for r in now) == 1  # one canary first

    def each_recorded() -> list[list[str]] | None:
        per_member = [entries_by_slack(r) for r in all_repairs(kube) if r["spec"]["nodeName"] in leaf]
        return per_member if all(per_member) else None

    per_member = eventually(each_recorded, timeout=20, what="every member saying who resumed it")
    time.sleep(1.0)
    assert per_member == [[f"resumed by <@{SRE}> from Slack"]] * 4  # one entry each, whatever the clicks
    assert "already resumed" in slack.responses[-1]["body"]["text"]


def test_an_unsigned_click_is_refused_with_401_and_changes_nothing(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)

    status, body = click(sandbox, repair, "repairbot:cancel", signed=False)

    assert status == 401, body
    time.sleep(1.0)
    assert phase_of(fresh(kube, repair["metadata"]["name"])) not in ("Cancelled",)
    assert chats(sandbox)[0].responses == []


def test_a_click_with_a_stale_timestamp_is_refused_with_401(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)

    status, _ = click(sandbox, repair, "repairbot:cancel", timestamp=time.time() - 6 * 60)  # signed, replayed

    assert status == 401
    time.sleep(1.0)
    assert phase_of(fresh(kube, repair["metadata"]["name"])) != "Cancelled"


def test_a_user_the_policy_does_not_name_is_told_so_and_nothing_changes(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)
    slack, _ = chats(sandbox)

    status, _ = click(sandbox, repair, "repairbot:cancel", user=ALICE)

    assert status == 200
    answer = slack.responses[-1]["body"]
    assert answer["response_type"] == "ephemeral" and "not allowed" in answer["text"]
    time.sleep(1.5)
    now = fresh(kube, repair["metadata"]["name"])
    assert phase_of(now) != "Cancelled" and entries_by_slack(now) == []
    assert not (now["metadata"].get("annotations") or {}).get("repairbot.io/cancel-requested-by")


def test_a_repeated_resume_click_writes_one_history_entry(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)
    slack, _ = chats(sandbox)

    first = click(sandbox, repair, "repairbot:resume")
    again = click(sandbox, repair, "repairbot:resume", retry=1)  # Slack's redelivery of the same click
    assert first[0] == again[0] == 200

    done = until_phase(kube, repair["metadata"]["name"], "Quarantined", timeout=40)
    assert entries_by_slack(fresh(kube, done["metadata"]["name"])) == [f"resumed by <@{SRE}> from Slack"]
    assert "already resumed" in slack.responses[-1]["body"]["text"]


def test_repairbot_cancel_on_the_command_line_takes_the_same_path_as_the_button(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox)
    name = repair["metadata"]["name"]

    done = repairbot(sandbox, "cancel", name, "--by", "alice (repairbot cancel)")

    assert done.returncode == 0, done.stderr
    cancelled = until_phase(kube, name, "Cancelled", timeout=20)
    assert any(e["message"].startswith("cancelled by alice (repairbot cancel)") for e in cancelled["status"]["history"])
    assert node(kube, HELD_NODE)["spec"].get("unschedulable") is True
    again = repairbot(sandbox, "cancel", name)
    assert again.returncode == 1 and "no active GPURepair" in again.stderr


def test_a_member_of_an_allowed_user_group_resumes_from_slack(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox, BY_GROUP)
    slack, _ = chats(sandbox)

    assert click(sandbox, repair, "repairbot:resume")[0] == 200

    done = until_phase(kube, repair["metadata"]["name"], "Quarantined", timeout=40)
    assert entries_by_slack(done) == [f"resumed by <@{SRE}> from Slack"]
    assert "Resuming" in slack.responses[-1]["body"]["text"]
    asked = [r for r in slack.recorded if r["path"].endswith("/usergroups.users.list")]
    assert len(asked) == 1 and "error" not in asked[0]


def test_a_user_in_no_allowed_group_is_refused(make_sandbox: SandboxFactory) -> None:
    sandbox, kube, repair = held_repair(make_sandbox, BY_GROUP)
    slack, _ = chats(sandbox)

    assert click(sandbox, repair, "repairbot:cancel", user=ALICE)[0] == 200

    assert "not allowed" in slack.responses[-1]["body"]["text"]
    time.sleep(1.0)
    assert entries_by_slack(fresh(kube, repair["metadata"]["name"])) == []


def test_when_slack_cannot_say_who_is_in_the_group_the_click_is_refused_with_the_reason(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox, kube, repair = held_repair(make_sandbox, BY_GROUP)
    slack, _ = chats(sandbox)
    slack.scopes.discard("usergroups:read")  # the app was installed without the scope

    assert click(sandbox, repair, "repairbot:cancel")[0] == 200

    said = slack.responses[-1]["body"]["text"]
    assert "could not check" in said and "missing_scope" in said and "usergroups:read" in said
    assert slack.responses[-1]["body"]["response_type"] == "ephemeral"
    metrics = httpx.get(f"{sandbox.state['webhook']}/metrics", timeout=5).text
    assert 'repairbot_webhook_slack_group_lookup_errors_total{code="missing_scope"} 1.0' in metrics
    assert 'repairbot_webhook_slack_actions_total{outcome="unverified"} 1.0' in metrics
    time.sleep(1.0)
    assert phase_of(fresh(kube, repair["metadata"]["name"])) != "Cancelled"
    assert entries_by_slack(fresh(kube, repair["metadata"]["name"])) == []
