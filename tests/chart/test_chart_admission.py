"""The chart's ValidatingAdmissionPolicies, installed on the emulated API server and evaluated on real requests.

Each test renders the chart, stores its CRD and policies in an emulated cluster with nodes A and B,
and writes as the identity a stolen token would carry: the agent's pod-bound ServiceAccount token
(whose ``authentication.kubernetes.io/node-name`` extra names the agent's node) or the webhook's.
What a user would notice is the refusal itself: a 403 naming the policy and saying why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chart_support import NAMESPACE, crds, name, render

from repairbot_sim.kube.api import KubeApi, WriteOptions
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import UserInfo, service_account
from repairbot_sim.kube.resources import Registry, ResourceInfo
from repairbot_sim.kube.store import Store

MERGE = "application/merge-patch+json"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
AGENT_POLICY = name("agent-own-node")
WEBHOOK_POLICY = name("webhook-node-labels")


class Cluster:
    """An emulated API server holding what ``helm install`` would put there, written to in-process."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.api = KubeApi(Store(), Registry())
        for obj in objects:
            self.create(obj)

    def info(self, api_version: str, kind: str) -> ResourceInfo:
        info = self.api.registry.by_kind(api_version, kind)
        assert info is not None, (api_version, kind)
        return info

    def create(self, obj: dict[str, Any], user: UserInfo | None = None) -> dict[str, Any]:
        info = self.info(obj["apiVersion"], obj["kind"])
        options = WriteOptions(trusted=user is None) if user is None else WriteOptions(user=user)
        return self.api.create(info, obj["metadata"].get("namespace"), obj, options)

    def patch(
        self, kind: str, node_or_repair: str, patch: dict[str, Any], user: UserInfo, *, subresource: str = ""
    ) -> dict[str, Any]:
        info = self.info("v1", "Node") if kind == "Node" else self.info("repairbot.io/v1alpha1", "GPURepair")
        raw = json.dumps(patch).encode()
        return self.api.patch(info, None, node_or_repair, MERGE, raw, WriteOptions(user=user), subresource=subresource)

    def delete_node(self, node: str, user: UserInfo) -> None:
        self.api.delete_object(self.info("v1", "Node"), None, node, WriteOptions(user=user))


A, B = "gpu-a", "gpu-b"


def _node(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "nvidia.com/gpu.present": "true"}},
        "spec": {"unschedulable": True, "taints": [{"key": "repairbot.io/repair", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def _repair(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "repairbot.io/v1alpha1",
        "kind": "GPURepair",
        "metadata": {"name": f"{node}-xid-79", "labels": {"repairbot.io/node": node}},
        "spec": {"nodeName": node, "source": "agent", "findings": []},
    }


@pytest.fixture
def cluster(chart: Any) -> Cluster:
    policies = [obj for obj in render(chart).objects if obj["kind"] in POLICY_KINDS]
    assert {p["metadata"]["name"] for p in policies} == {AGENT_POLICY, WEBHOOK_POLICY}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return Cluster([*crds(chart), namespace, *policies, _node(A), _node(B)])


def _agent(node: str | None) -> UserInfo:
    return service_account(NAMESPACE, name("agent"), node=node)


WEBHOOK = service_account(NAMESPACE, name("webhook"))
OPERATOR = service_account(NAMESPACE, name("operator"))


def _denied(policy: str, message: str) -> str:
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {message}"


def _refusal(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


HEALTHY = {"status": {"conditions": [{"type": "GPUHealthy", "status": "False", "reason": "Xid79"}]}}


def test_the_agent_of_node_a_may_not_mark_node_b_unhealthy(cluster: Cluster) -> None:
    error = _refusal(lambda: cluster.patch("Node", B, HEALTHY, _agent(A), subresource="status"))
    message = _denied(
        AGENT_POLICY, f"the RepairBot agent on node {A} may write only its own node status, not {B}/status"
    )
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == f'nodes "{B}" is forbidden: {message}'
    assert error.details == {"name": B, "kind": "nodes", "causes": [{"message": message}]}
    stored = cluster.api.get(cluster.info("v1", "Node"), None, B)
    assert stored["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_the_agent_writes_its_own_node_status(cluster: Cluster) -> None:
    written = cluster.patch("Node", A, HEALTHY, _agent(A), subresource="status")
    assert written["status"]["conditions"][0]["type"] == "GPUHealthy"


def test_the_agent_may_not_touch_its_own_node_object_only_its_status(cluster: Cluster) -> None:
    patch = {"metadata": {"labels": {"repairbot.io/state": "faulty"}}}
    error = _refusal(lambda: cluster.patch("Node", A, patch, _agent(A)))
    assert error.message.endswith(f"the RepairBot agent on node {A} may write only its own node status, not {A}")


def test_the_agent_of_node_a_may_not_open_a_repair_of_node_b(cluster: Cluster) -> None:
    error = _refusal(lambda: cluster.create(_repair(B), _agent(A)))
    assert error.code == 403
    assert error.message == (
        f'gpurepairs.repairbot.io "{B}-xid-79" is forbidden: '
        + _denied(AGENT_POLICY, f"the RepairBot agent on node {A} may write only GPURepairs whose spec.nodeName is {A}")
    )
    assert error.details is not None and error.details["group"] == "repairbot.io"
    assert cluster.api.store.get("repairbot.io/gpurepairs", None, f"{B}-xid-79") is None


def test_the_agent_opens_and_answers_a_repair_of_its_own_node(cluster: Cluster) -> None:
    cluster.create(_repair(A), _agent(A))
    answer = {"status": {"agent": {"requestId": "r1", "result": "running"}}}
    written = cluster.patch("GPURepair", f"{A}-xid-79", answer, _agent(A), subresource="status")
    assert written["status"]["agent"]["result"] == "running"


def test_the_agent_of_node_a_may_not_answer_a_repair_of_node_b(cluster: Cluster) -> None:
    cluster.create(_repair(B))  # the operator's, say
    answer = {"status": {"agent": {"requestId": "r1", "result": "succeeded"}}}
    error = _refusal(lambda: cluster.patch("GPURepair", f"{B}-xid-79", answer, _agent(A), subresource="status"))
    assert error.message.endswith(f"may write only GPURepairs whose spec.nodeName is {A}")


def test_an_agent_token_that_names_no_node_is_refused(cluster: Cluster) -> None:
    error = _refusal(lambda: cluster.patch("Node", A, HEALTHY, _agent(None), subresource="status"))
    assert "names no node (authentication.kubernetes.io/node-name)" in error.message


def test_the_agent_policy_binds_no_one_else(cluster: Cluster) -> None:
    written = cluster.patch("Node", B, HEALTHY, OPERATOR, subresource="status")
    assert written["status"]["conditions"][0]["type"] == "GPUHealthy"


# ----------------------------------------------------------------- the webhook


def _tag_faulty_patch(cluster: Cluster, node: str) -> dict[str, Any]:
    """A faulty label, guarded by the node's resourceVersion (as intake once wrote it; RBAC now grants the
    webhook no node patch at all, and this policy is the second fence should a cluster's RBAC grant more)."""
    current = cluster.api.get(cluster.info("v1", "Node"), None, node)
    return {
        "metadata": {
            "resourceVersion": current["metadata"]["resourceVersion"],
            "labels": {"repairbot.io/state": "faulty"},
        }
    }


def test_the_policy_lets_the_webhook_set_a_repairbot_label_should_rbac_allow_it(cluster: Cluster) -> None:
    written = cluster.patch("Node", B, _tag_faulty_patch(cluster, B), WEBHOOK)
    assert written["metadata"]["labels"]["repairbot.io/state"] == "faulty"


@pytest.mark.parametrize(
    ("attempt", "patch", "why"),
    [
        ("uncordon", {"spec": {"unschedulable": False}}, f"may not change the spec of node {B}"),
        ("add a taint", {"spec": {"taints": [{"key": "evil", "effect": "NoExecute"}]}}, "may not change the spec"),
        ("relabel", {"metadata": {"labels": {"nvidia.com/gpu.present": "false"}}}, "only repairbot.io/ labels"),
        ("drop a label", {"metadata": {"labels": {"kubernetes.io/hostname": None}}}, "only repairbot.io/ labels"),
        ("annotate", {"metadata": {"annotations": {"x": "y"}}}, f"may not change the annotations of node {B}"),
    ],
)
def test_the_webhook_may_change_nothing_but_repairbot_labels(
    cluster: Cluster, attempt: str, patch: dict[str, Any], why: str
) -> None:
    error = _refusal(lambda: cluster.patch("Node", B, patch, WEBHOOK))
    assert (error.code, error.reason) == (403, "Forbidden"), attempt
    assert error.message.startswith(f'nodes "{B}" is forbidden: {_denied(WEBHOOK_POLICY, "the RepairBot webhook")}')
    assert why in error.message, attempt
    assert cluster.api.get(cluster.info("v1", "Node"), None, B)["spec"]["unschedulable"] is True


def test_the_webhook_may_neither_delete_nor_create_a_node_nor_write_its_status(cluster: Cluster) -> None:
    error = _refusal(lambda: cluster.delete_node(B, WEBHOOK))
    assert error.message.endswith(f"the RepairBot webhook may only relabel nodes, not DELETE node {B}")
    error = _refusal(lambda: cluster.create(_node("gpu-c"), WEBHOOK))
    assert error.message.endswith("may only relabel nodes, not CREATE node gpu-c")
    error = _refusal(lambda: cluster.patch("Node", B, HEALTHY, WEBHOOK, subresource="status"))
    assert error.message.endswith(f"may only relabel nodes, not UPDATE status node {B}")


def test_the_operator_still_uncordons(cluster: Cluster) -> None:
    written = cluster.patch("Node", B, {"spec": {"unschedulable": False}}, OPERATOR)
    assert written["spec"]["unschedulable"] is False


def test_each_policy_has_its_own_switch(chart: Any) -> None:
    def policies(values: dict[str, Any]) -> set[str]:
        return {p["metadata"]["name"] for p in render(chart, values).of_kind("ValidatingAdmissionPolicy")}

    assert policies({"admissionPolicy": {"enabled": False}}) == {WEBHOOK_POLICY}
    assert policies({"admissionPolicy": {"webhookNodeLabelsOnly": False}}) == {AGENT_POLICY}
    assert policies({"agent": {"enabled": False}, "webhook": {"enabled": False}}) == set()
