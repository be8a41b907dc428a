"""Least privilege, proven: every permission the chart grants is one a component's code uses.

One sandbox scenario exercises every part of RepairBot (agent reports and answers, drain with a
PodDisruptionBudget in the way, a BMC power cycle through the named Secret, Slack and Jira, the
leader Lease, the storm breaker's ConfigMap, Events, a webhook alert racing an agent and a manual
label so twin repairs are folded). The API server's audit log then says, for each request, every
rule that allowed it; each (rule, verb, resource) the chart grants must have allowed some request
that no other rule would have: remove it, and that request is refused. A few rules are then really
removed from the installed RBAC, and the scenario visibly breaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from e2e_support import (
    NOTIFYING,
    SandboxFactory,
    all_repairs,
    at_once,
    component_denials,
    delivered,
    eventually,
    finished_repair,
    inject_now,
    merge_policy,
    phase_of,
    repairs_of,
    simulated,
)
from kubernetes import client
from test_intake_and_quarantine import CREATES, alert, post_alert

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION, parse_time
from repairbot.operator.leader import LeaderElector
from repairbot_sim.access import SANDBOX_LEASE, load_sandbox_rbac
from repairbot_sim.background import BackgroundSandbox

COMPONENTS = "system:serviceaccount:repairbot:"


def granted_atoms(rbac: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (rule, verb, resource) the installed Roles and ClusterRoles grant, rules named as the audit names them."""
    atoms = set()
    for role in rbac:
        if role["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = f"{role['metadata']['namespace']}/" if role["kind"] == "Role" else ""
        for index, rule in enumerate(role["rules"]):
            rule_id = f"{role['kind']} {scope}{role['metadata']['name']}#{index}"
            atoms |= {(rule_id, verb, resource) for verb in rule["verbs"] for resource in rule["resources"]}
    return atoms


def sole_uses(decisions: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(rule, verb, resource) of each component request exactly one rule allowed."""
    used = set()
    for row in decisions:
        if row["allowed"] and row["user"].startswith(COMPONENTS) and len(row["rules"]) == 1 and row.get("resource"):
            resource = row["resource"] + (f"/{row['subresource']}" if row["subresource"] else "")
            used.add((row["rules"][0], row["verb"], resource))
    return used


def race_three_reporters(sandbox: BackgroundSandbox, kube: client.ApiClient, target: str) -> None:
    """Agent, webhook and a human's label report one node at once; creates are held back so all three create."""
    rule = {"action": "delay", "method": "POST", "path": CREATES, "seconds": 1.0, "count": 3}
    httpx.post(sandbox.state["kubeFaults"], json=rule, timeout=10, verify=sandbox.state["apiCA"]).raise_for_status()
    reporters: list[Callable[[], object]] = [
        lambda: inject_now(sandbox, [(target, "xid:79", 0)]),
        lambda: post_alert(sandbox, alert(target, gpu=2)),
        lambda: client.CoreV1Api(kube).patch_node(target, {"metadata": {"labels": {"repairbot.io/state": "faulty"}}}),
    ]
    at_once(reporters)


def open_twin(kube: client.ApiClient, node_name: str) -> None:
    """A second Pending repair of a node that has one, as two reporters across a second boundary make."""

    def folded() -> list[dict[str, Any]] | None:
        """The racing reporters' own twins are folded first: until then the node has two or three repairs."""
        found = repairs_of(kube, node_name)
        sources = {finding["source"] for repair in found for finding in repair["spec"]["findings"]}
        return found if len(found) == 1 and sources == {"agent", "grafana", "manual"} else None

    (record,) = eventually(folded, 30, what=f"the three racing reporters' repairs of {node_name} folded into one")
    finding = {**record["spec"]["findings"][0], "code": "xid-94", "xid": 94, "source": "agent"}
    twin = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": f"{record['metadata']['name']}-twin", "labels": {"repairbot.io/node": node_name}},
        "spec": {"nodeName": node_name, "source": "agent", "findings": [finding]},
    }
    client.CustomObjectsApi(kube).create_cluster_custom_object(GROUP, VERSION, PLURAL, twin)


def run_scenario(sandbox: BackgroundSandbox) -> client.ApiClient:
    kube = api_client(sandbox.state["kubeconfig"])
    # The operator's leader election, as `repairbot operator` runs it: create the Lease, then renew it.
    elector = LeaderElector(
        api_client(sandbox.state["kubeconfigs"]["operator"]), "repairbot", "least-privilege", lease_name=SANDBOX_LEASE
    )
    assert elector.try_acquire_or_renew() and elector.try_acquire_or_renew()
    policy = client.PolicyV1Api(kube)
    policy.patch_namespaced_pod_disruption_budget("llama", "train", {"spec": {"maxUnavailable": 0}})
    race_three_reporters(sandbox, kube, "gpu-node-001")
    open_twin(kube, "gpu-node-001")  # folded by the operator: merged into the record, then deleted
    # A stuck GPU only a power cycle revives: reboot fails validation, then the BMC (its Secret) cuts power.
    simulated(sandbox, "gpu-node-003").node.inject("fall-off-bus", 6, persistent=True)
    inject_now(sandbox, [("gpu-node-000", "xid:79", 1)])
    post_alert(sandbox, alert("gpu-node-002", gpu=3))  # the webhook opens this one (it writes no node)
    inject_now(sandbox, [("gpu-node-001", "xid:79", 4)])  # merged into the open repair by the agent
    post_alert(sandbox, alert("gpu-node-001", gpu=5))  # and by the webhook
    eventually(lambda: any(phase_of(r) == "Draining" for r in all_repairs(kube)), 20, what="a drain held by the budget")
    time.sleep(1.5)  # the refused evictions are told apart by the budget that refused them
    policy.patch_namespaced_pod_disruption_budget("llama", "train", {"spec": {"maxUnavailable": 1}})
    for name in ("gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"):
        eventually(lambda n=name: delivered(kube, n, "slack", "jira"), 90, what=f"{name} repaired and reported")
    return kube


def run_storm(sandbox: BackgroundSandbox) -> None:
    """A storm trips the breaker (its ConfigMap), a human resumes it from Slack (the webhook's annotation),
    the operator consumes the resume mark."""
    kube = api_client(sandbox.state["kubeconfig"])
    leaf = [f"gpu-node-00{i}" for i in range(4)]
    inject_now(sandbox, [(name, "xid:79", 0) for name in leaf])

    def storm_posted() -> tuple[str, str] | None:
        repairs = all_repairs(kube)
        if len(repairs) != 4 or not all(phase_of(r) == "Blocked" for r in repairs):
            return None
        thread = next(((r["status"]["slack"]["channel"], r["status"]["slack"]["ts"])
                       for r in repairs if (r["status"].get("slack") or {}).get("ts")), None)  # fmt: skip
        slack = sandbox.sandbox.slack
        shown = slack.buttons(*thread) if slack is not None and thread else []
        return thread if any(b["action_id"] == "repairbot:resume-storm" for b in shown) else None

    channel, ts = eventually(storm_posted, 30, what="the storm blocked and its Slack message posted")
    assert sandbox.sandbox.slack is not None
    status, _ = sandbox.call(sandbox.sandbox.slack.click(channel, ts, "repairbot:resume-storm", user="U0SANDBOX1"))
    assert status == 200
    for name in leaf:
        assert phase_of(finished_repair(kube, name, timeout=60)) == "Succeeded"


def test_every_permission_the_chart_grants_is_the_only_one_allowing_a_request_the_scenario_makes(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(nodes=4, policy=NOTIFYING)
    kube = run_scenario(sandbox)
    assert len(repairs_of(kube, "gpu-node-001")) == 1  # the twins were folded into one repair
    storm_policy = {"breaker": {"maxPerDomain": 2, "settleTime": "1s", "halfOpenCanaries": 1},
                    "notifications": {"slack": {"actions": {"allowedUsers": ["U0SANDBOX1"]}}}}  # fmt: skip
    stormy = make_sandbox(nodes=4, policy=merge_policy(NOTIFYING, storm_policy))
    run_storm(stormy)

    used = sole_uses(sandbox.sandbox.api.audit.rows()) | sole_uses(stormy.sandbox.api.audit.rows())
    unused = granted_atoms(load_sandbox_rbac()) - used
    assert sorted(unused) == [], f"granted by the chart, but no request of the scenario needed it: {sorted(unused)}"


def without_rule(kind: str, name: str, resource: str) -> list[dict[str, Any]]:
    """The sandbox's RBAC with the rule of ``kind``/``name`` that grants ``resource`` removed."""
    rbac = load_sandbox_rbac()
    role = next(r for r in rbac if r["kind"] == kind and r["metadata"]["name"] == name)
    kept = [rule for rule in role["rules"] if resource not in rule["resources"]]
    assert len(kept) == len(role["rules"]) - 1, f"{kind} {name} has no single rule for {resource}"
    role["rules"] = kept
    return rbac


def reconcile_error(repair: dict[str, Any]) -> dict[str, Any] | None:
    """The repair's ReconcileError condition while it is set: what ``kubectl describe gpurepair`` shows first."""
    conditions = (repair.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "ReconcileError" and c["status"] == "True"), None)


def test_without_the_eviction_rule_the_repair_says_the_operator_may_not_evict_long_before_the_drain_timeout(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(
        nodes=1,
        rbac=without_rule("ClusterRole", "repairbot-operator", "pods/eviction"),
        policy={"drain": {"timeout": "6s"}},
    )
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, [("gpu-node-000", "xid:79", 1)])

    def refused() -> tuple[dict[str, Any], dict[str, Any]] | None:
        for repair in repairs_of(kube, "gpu-node-000"):
            condition = reconcile_error(repair)
            if condition is not None:
                return repair, condition
        return None

    repair, condition = eventually(refused, 15, what="the refused eviction recorded on the repair")
    # The API server's own words: who may not do what, where. Not a drain that "timed out".
    assert 'cannot create resource "pods/eviction"' in condition["message"], condition
    assert "repairbot-operator" in condition["message"] and "forbidden" in condition["message"], condition
    assert len(condition["message"]) <= 1000
    assert "HTTP response headers" not in condition["message"], condition
    assert "forbidden" in repair["status"]["message"], repair["status"]
    time.sleep(8)  # past the drain timeout: a refusal is not a drain that waits for pods, and says so still
    (repair,) = repairs_of(kube, "gpu-node-000")
    assert phase_of(repair) == "Draining", repair["status"]
    assert reconcile_error(repair) is not None, repair["status"]
    assert not any("timed out" in entry["message"] for entry in repair["status"]["history"]), repair["status"]
    assert simulated(sandbox, "gpu-node-000").node.boot_count == 1  # nothing rebooted under running pods
    assert any("create pods/eviction ns=train" in line for line in component_denials(sandbox))

    # The SRE puts the rule back: the drain goes on by itself, and the condition says the error is over.
    chart_role = next(r for r in load_sandbox_rbac() if r["kind"] == "ClusterRole"
                      and r["metadata"]["name"] == "repairbot-operator")  # fmt: skip
    client.RbacAuthorizationV1Api(kube).replace_cluster_role("repairbot-operator", chart_role)
    repair = finished_repair(kube, "gpu-node-000", timeout=60)
    assert phase_of(repair) == "Succeeded", repair["status"]
    recovered = next(c for c in repair["status"]["conditions"] if c["type"] == "ReconcileError")
    assert recovered["status"] == "False" and recovered["reason"] == "Recovered", recovered


def test_without_the_agent_status_rule_the_operator_never_hears_back(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(nodes=1, rbac=without_rule("ClusterRole", "repairbot-agent", "gpurepairs/status"))
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, [("gpu-node-000", "xid:79", 1)])
    eventually(
        lambda: any("patch gpurepairs/status" in line for line in component_denials(sandbox)),
        30,
        what="the agent's answer refused",
    )
    (repair,) = repairs_of(kube, "gpu-node-000")
    assert not (repair.get("status") or {}).get("agent"), repair["status"]  # no answer reached the repair
    assert phase_of(repair) != "Succeeded"


def test_without_the_bmc_secret_rule_the_repair_says_the_secret_may_not_be_read_not_that_the_node_stayed_down(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(nodes=1, rbac=without_rule("Role", "repairbot-operator", "secrets"))
    kube = api_client(sandbox.state["kubeconfig"])
    simulated(sandbox, "gpu-node-000").node.inject("fall-off-bus", 6, persistent=True)
    repair = finished_repair(kube, "gpu-node-000", timeout=60)
    assert phase_of(repair) == "Quarantined", repair["status"]
    assert sandbox.sandbox.bmc is not None and sandbox.sandbox.bmc.resets_for("gpu-node-000") == []
    assert any("get secrets ns=repairbot name=bmc-credentials" in line for line in component_denials(sandbox))

    history = repair["status"]["history"]
    cause = "BMC Secret repairbot/bmc-credentials may not be read by the operator"
    failed = [e for e in history if e.get("action") == "power-cycle" and e["outcome"] == "failed"]
    assert failed and cause in failed[-1]["message"], history
    assert 'cannot get resource "secrets"' in failed[-1]["message"], failed  # and the API server's own words
    assert cause in repair["status"]["message"], repair["status"]
    quarantined = next(c for c in repair["status"]["conditions"] if c["type"] == "Quarantined")
    assert cause in quarantined["message"], quarantined
    assert not any("did not come back" in e["message"] for e in history), history
    # Recorded at once, not after the power-cycle rung's 10 s timeout.
    started = next(e for e in history if e["step"] == "power-cycle" and e["outcome"] == "started")
    assert (parse_time(failed[-1]["at"]) - parse_time(started["at"])).total_seconds() < 5, history
