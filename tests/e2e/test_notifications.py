"""Slack and Jira as an SRE reads them: one thread and one ticket per repair, whatever happens to the operator.

- an alert that resolves mid-repair is said in the repair's history, its thread and its ticket;
- Jira being down never holds back the Slack thread (one delivery lane per target);
- an operator restarted mid-repair (rolling update or SIGKILL) continues the same thread and ticket;
- a quarantine really pages the on-call group: the fake Slack parses the mention as Slack does.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_support import (
    NOTIFYING,
    ON_CALL_GROUP,
    TEST_POLICY,
    SandboxFactory,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject_now,
    merge_policy,
    phase_of,
    repairbot,
    repairs_of,
    start_operator,
)

from repairbot.kube.client import api_client
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.host import ActionTimes

SLOW = ActionTimes(gpu_reset=0.5, driver_reload=0.5, reboot=3.0)


def stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%S}Z"


def grafana_alert(node: str, status: str, *, started: str, ended: str = "") -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "GpuXid", "Hostname": node, "gpu": "2", "xid": "79"},
        "annotations": {"summary": f"Xid 79 on {node} GPU 2"},
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else ended,
        "fingerprint": "c0ffee0123456789",
    }
    return {"receiver": "repairbot", "status": status, "alerts": [alert], "version": "1", "groupKey": "{}"}


def post_alert(sandbox: BackgroundSandbox, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {sandbox.state['webhookToken']}"}
    answer = httpx.post(f"{sandbox.state['webhook']}/webhook/grafana", json=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_an_alert_resolving_mid_repair_is_said_in_the_history_thread_and_ticket(
    make_sandbox: SandboxFactory,
) -> None:
    # Settling holds the repair in Cordoned long enough for the resolution to arrive mid-repair.
    sandbox = make_sandbox(policy={**NOTIFYING, "breaker": {"settleTime": "5s"}})
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)

    now = datetime.now(UTC).replace(microsecond=0)  # recent: the breaker's settle time counts from detection
    started, ended = stamp(now), stamp(now + timedelta(seconds=2))
    opened = post_alert(sandbox, grafana_alert("gpu-node-002", "firing", started=started))
    assert [r["node"] for r in opened["repairs"]] == ["gpu-node-002"]
    eventually(lambda: any(phase_of(r) == "Cordoned" for r in repairs_of(kube, "gpu-node-002")), what="cordoned")
    answer = post_alert(sandbox, grafana_alert("gpu-node-002", "resolved", started=started, ended=ended))
    assert answer == {"repairs": [], "ignored": [{"fingerprint": "c0ffee0123456789", "reason": "resolved"}]}
    repeat = grafana_alert("gpu-node-002", "resolved", started=started, ended=ended)
    post_alert(sandbox, repeat)  # Grafana repeats resolved notifications

    repair = finished_repair(kube, "gpu-node-002", timeout=40)
    assert phase_of(repair) == "Succeeded"  # a resolved alert is noted; it neither stops nor skips the repair
    resolved = [e for e in repair["status"]["history"] if e["step"] == "alert-resolved"]
    assert len(resolved) == 1 and resolved[0]["at"] == ended.replace("Z", ".000Z")  # the alert's endsAt
    assert "GpuXid resolved" in resolved[0]["message"]
    assert any(e["step"] == "request" for e in repair["status"]["history"])  # the reboot still happened

    status = eventually(lambda: delivered(kube, "gpu-node-002", "slack"), timeout=30, what="slack caught up")
    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert sum("GpuXid resolved" in text for text in replies) == 1
    status = eventually(lambda: delivered(kube, "gpu-node-002", "jira"), timeout=30, what="jira caught up")
    assert sum("GpuXid resolved" in c for c in jira.comments_of(status["jira"]["key"])) == 1


def test_jira_down_does_not_hold_back_the_slack_thread(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    jira.down = True

    inject_now(sandbox, [("gpu-node-001", "xid:48", 1)])
    finished_repair(kube, "gpu-node-001", timeout=40)
    # Jira keeps failing (and its client keeps retrying) the whole time; Slack's lane is its own.
    status = eventually(lambda: delivered(kube, "gpu-node-001", "slack"), timeout=15, what="slack while jira is down")
    assert len(slack.thread(status["slack"]["channel"], status["slack"]["ts"])) == len(status["history"])
    assert not jira.issues


def chat_environment(sandbox: BackgroundSandbox) -> dict[str, str]:
    """What the chart puts in the operator's environment from its Secrets, pointing at the fake Slack and Jira."""
    slack, jira = chats(sandbox)
    return {
        "REPAIRBOT_SLACK_TOKEN": slack.token,
        "REPAIRBOT_SLACK_API_URL": slack.api_url,
        "REPAIRBOT_JIRA_URL": sandbox.state["jira"],
        "REPAIRBOT_JIRA_USER": jira.user,
        "REPAIRBOT_JIRA_PASSWORD": jira.password,
    }


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGKILL], ids=["rolling-update", "sigkill"])
def test_a_restarted_operator_continues_the_same_thread_and_ticket(
    make_sandbox: SandboxFactory, tmp_path: Path, stop_with: signal.Signals
) -> None:
    sandbox = make_sandbox(operator=False, action_times=SLOW, pod_termination_seconds=1)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(merge_policy(TEST_POLICY, NOTIFYING)))
    log = tmp_path / "operator.log"

    first = start_operator(sandbox, policy_path, log, chat_environment(sandbox))
    try:
        inject_now(sandbox, [("gpu-node-001", "xid:79", 2)])

        def threaded_and_ticketed() -> bool:
            for r in repairs_of(kube, "gpu-node-001"):
                status = r.get("status") or {}
                marked = status.get("slack", {}).get("ts") and status.get("jira", {}).get("key")
                if marked and phase_of(r) == "Remediating":
                    return True
            return False

        eventually(threaded_and_ticketed, timeout=30, interval=0.05, what="thread and ticket, mid-repair")
        first.send_signal(stop_with)
        first.wait(20)
        second = start_operator(sandbox, policy_path, log, chat_environment(sandbox))
        try:
            finished_repair(kube, "gpu-node-001", timeout=60)
            slack_done = eventually(lambda: delivered(kube, "gpu-node-001", "slack"), timeout=30, what="slack")
            jira_done = eventually(lambda: delivered(kube, "gpu-node-001", "jira"), timeout=30, what="jira")
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()

    parents = [m for m in slack.messages if m.thread_ts is None]
    assert len(parents) == 1, log.read_text()[-3000:]  # the restart opened no second thread
    assert slack_done["slack"]["ts"] == parents[0].ts
    assert len(jira.issues) == 1 and jira_done["jira"]["key"] in jira.issues  # and no second ticket
    steps = len(slack_done["history"])
    replies = slack.thread(parents[0].channel, parents[0].ts)
    comments = jira.comments_of(jira_done["jira"]["key"])
    if stop_with is signal.SIGTERM:
        assert len(replies) == steps  # a graceful stop loses and repeats nothing
    else:
        # SIGKILL between a send and its cursor write may repeat that one step (at least once, never lost).
        assert steps <= len(replies) <= steps + 1
        assert len(comments) >= steps


def test_a_quarantine_pages_the_on_call_group_in_slack_and_links_the_ticket(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, _ = chats(sandbox)
    done = repairbot(sandbox, "repair", "gpu-node-003", "--reason", "handed to hardware", "--action", "quarantine")
    assert done.returncode == 0, done.stderr

    def told_both() -> dict[str, Any] | None:
        for repair in repairs_of(kube, "gpu-node-003"):
            status = repair.get("status") or {}
            cursors = [(status.get("deliveries") or {}).get(t) or {} for t in ("slack", "jira")]
            if phase_of(repair) == "Quarantined" and all(c.get("phase") == "Quarantined" for c in cursors):
                return dict(status)
        return None

    status = eventually(told_both, timeout=40, what="the quarantine told to Slack and Jira")
    channel, ts = status["slack"]["channel"], status["slack"]["ts"]
    parent = slack.find(channel, ts)
    assert parent is not None
    paging = [m for m in [parent, *slack.thread(channel, ts)] if ON_CALL_GROUP in m.mentions]
    assert paging, "no message Slack would notify the on-call group for"
    assert any("quarantine" in (m.text or "") for m in paging)
    assert ON_CALL_GROUP in slack.paged()
    assert not any(r.get("unresolved_mentions") for r in slack.recorded)  # no mention that pages nobody
    # The parent, rewritten once the ticket exists, links it.
    key = status["jira"]["key"]
    eventually(lambda: f"/browse/{key}|{key}>" in str(slack.find(channel, ts).blocks), timeout=20,  # type: ignore[union-attr]
               what="the parent links the Jira ticket")  # fmt: skip
    edits = parent.edits
    time.sleep(2)  # several delivery passes: the parent, once it links the ticket, is not rewritten again
    assert parent.edits == edits
