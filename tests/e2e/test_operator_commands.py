"""What an SRE does by hand, end to end: ``repairbot repair``, a faulty label, ``repairbot resume``."""

from __future__ import annotations

from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    all_repairs,
    chats,
    delivered,
    eventually,
    finished_repair,
    inject_now,
    node,
    phase_of,
    repairbot,
    repairs_of,
    simulated,
)
from kubernetes import client

from repairbot.kube.client import api_client


def test_repair_command_reboots_the_node_a_human_names(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    boots = simulated(sandbox, "gpu-node-001").node.boot_count

    done = repairbot(
        sandbox, "repair", "gpu-node-001", "--reason", "NCCL all-reduce hangs on this node", "--action", "reboot"
    )
    assert done.returncode == 0, done.stderr
    assert "opened gpu-node-001-" in done.stdout

    repair = finished_repair(kube, "gpu-node-001")
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["spec"]["source"] == "manual" and repair["spec"]["requestedAction"] == "reboot"
    assert repair["spec"]["reason"] == "NCCL all-reduce hangs on this node"
    assert simulated(sandbox, "gpu-node-001").node.boot_count == boots + 1


def test_repair_command_names_an_unknown_node_clearly(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(operator=False)
    done = repairbot(sandbox, "repair", "gpu-node-999", "--reason", "typo")
    assert done.returncode == 1
    assert "gpu-node-999" in done.stderr and "404" in done.stderr
    assert all_repairs(api_client(sandbox.state["kubeconfig"])) == []


def test_a_faulty_label_by_hand_takes_the_node_out_and_waits_for_a_human(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    client.CoreV1Api(kube).patch_node(
        "gpu-node-003",
        {"metadata": {"labels": {"repairbot.io/state": "faulty"}, "annotations": {"repairbot.io/reason": "fans loud"}}},
    )

    def holding() -> dict | None:
        return next((r for r in repairs_of(kube, "gpu-node-003") if phase_of(r) == "Remediating"), None)

    repair = eventually(holding, what="a manual repair holding the node")
    assert repair["spec"]["source"] == "manual"
    assert "fans loud" in repair["spec"]["findings"][0]["message"]
    held = node(kube, "gpu-node-003")
    assert held["spec"]["unschedulable"] is True  # out of service, not drained, waiting for a human
    assert held["metadata"]["labels"]["repairbot.io/state"] == "repairing"


def test_a_faulty_label_with_an_action_annotation_runs_that_action(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    boots = simulated(sandbox, "gpu-node-002").node.boot_count
    annotations = {"repairbot.io/reason": "NCCL hangs on this node", "repairbot.io/action": "reboot"}
    client.CoreV1Api(kube).patch_node(
        "gpu-node-002", {"metadata": {"labels": {"repairbot.io/state": "faulty"}, "annotations": annotations}}
    )
    repair = finished_repair(kube, "gpu-node-002", timeout=40)
    assert phase_of(repair) == "Succeeded" and repair["spec"]["requestedAction"] == "reboot"
    assert simulated(sandbox, "gpu-node-002").node.boot_count == boots + 1


def test_resume_after_a_storm_lets_one_canary_go_first_then_the_rest(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(nodes=4, policy={"breaker": {"maxPerDomain": 2, "settleTime": "2s", "halfOpenCanaries": 1}})
    kube = api_client(sandbox.state["kubeconfig"])
    leaf = ["gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"]
    inject_now(sandbox, [(name, "xid:79", 0) for name in leaf])
    eventually(
        lambda: len(all_repairs(kube)) == 4 and all(phase_of(r) == "Blocked" for r in all_repairs(kube)),
        what="storm blocked",
    )

    done = repairbot(sandbox, "resume", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming ") == 4

    for name in leaf:
        assert phase_of(finished_repair(kube, name, timeout=60)) == "Succeeded"
    resumed_at = sorted(
        next(e["at"] for e in r["status"]["history"] if e["step"] == "request") for r in all_repairs(kube)
    )
    canary_done = min(r["status"]["resolvedAt"] for r in all_repairs(kube))
    assert resumed_at[0] <= canary_done <= resumed_at[1]  # the canary finished before anyone else acted
    breaker = client.CoreV1Api(kube).read_namespaced_config_map("repairbot-breaker", "repairbot")
    assert breaker.data["state"] == "closed"


def test_a_grafana_alert_posted_to_the_webhook_gets_the_node_repaired(make_sandbox: SandboxFactory) -> None:
    import httpx

    sandbox = make_sandbox()
    kube = api_client(sandbox.state["kubeconfig"])
    boots = simulated(sandbox, "gpu-node-002").node.boot_count
    alert = {
        "status": "firing",
        "labels": {"alertname": "GpuXid", "Hostname": "gpu-node-002", "gpu": "5", "xid": "79"},
        "annotations": {"summary": "Xid 79 on gpu-node-002 GPU 5"},
        "startsAt": "2026-11-22T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
        "fingerprint": "1a2b3c4d5e6f7a8b",
    }
    payload = {"receiver": "repairbot", "status": "firing", "alerts": [alert], "version": "1", "groupKey": "{}"}
    headers = {"Authorization": f"Bearer {sandbox.state['webhookToken']}"}

    denied = httpx.post(f"{sandbox.state['webhook']}/webhook/grafana", json=payload, timeout=10)
    assert denied.status_code == 401 and all_repairs(kube) == []
    answer = httpx.post(f"{sandbox.state['webhook']}/webhook/grafana", json=payload, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    assert [r["node"] for r in answer.json()["repairs"]] == ["gpu-node-002"]

    repair = finished_repair(kube, "gpu-node-002", timeout=40)
    assert phase_of(repair) == "Succeeded", repair["status"]
    assert repair["spec"]["source"] == "grafana"
    finding = repair["spec"]["findings"][0]
    assert finding["code"] == "xid-79" and finding["evidence"]["generatorURL"].startswith("https://grafana.example")
    assert simulated(sandbox, "gpu-node-002").node.boot_count == boots + 1
    assert "repairbot.io/state" not in node(kube, "gpu-node-002")["metadata"]["labels"]



def test_every_step_reaches_one_slack_thread_and_one_jira_ticket(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    slack.rate_limit(2, retry_after=1)  # Slack throttles at first: nothing may be lost or doubled

    inject_now(sandbox, [("gpu-node-001", "xid:79", 4)])
    repair = finished_repair(kube, "gpu-node-001", timeout=40)
    assert phase_of(repair) == "Succeeded"
    steps = len(repair["status"]["history"])

    status = eventually(lambda: delivered(kube, "gpu-node-001", "slack", "jira"), timeout=30, what="every step")
    thread = status["slack"]
    posts = [m for m in slack.messages if m.thread_ts == thread["ts"]]
    assert len(posts) == steps  # one reply per step, in the parent's thread, none twice
    assert status["jira"]["key"].startswith("OPS-")
    (issue,) = jira.issues.values()
    assert len(jira.comments_of(status["jira"]["key"])) >= steps
    assert "gpu-node-001" in issue.fields["summary"]
    assert issue.status.lower() == "done"  # resolved through the workflow's Done transition


def test_jira_down_for_the_whole_repair_gets_the_ticket_afterwards_with_every_step(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    jira = sandbox.sandbox.jira
    assert jira is not None
    jira.down = True  # 503 for everything, all repair long

    inject_now(sandbox, [("gpu-node-003", "xid:48", 2)])
    repair = finished_repair(kube, "gpu-node-003", timeout=40)
    assert phase_of(repair) == "Succeeded"  # Jira being down never slowed or failed the repair
    assert not (repair["status"].get("jira") or {}).get("key") and not jira.issues

    jira.down = False
    steps = len(repair["status"]["history"])

    status = eventually(lambda: delivered(kube, "gpu-node-003", "jira"), timeout=40, what="the ticket caught up")
    assert len(status["history"]) == steps
    (issue,) = jira.issues.values()
    assert issue.key == status["jira"]["key"]
    assert len(jira.comments_of(issue.key)) >= steps and issue.status.lower() == "done"
