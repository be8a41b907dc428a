"""Each component may do what its code does and nothing more (least privilege, checked rule by rule)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from chart_support import FORCING, NAMESPACE, NOTIFYING, SCENARIOS, Rendered, name, render

from repairbot_sim.kube.attributes import RequestAttributes
from repairbot_sim.kube.identity import service_account
from repairbot_sim.kubeapi import KubeApiServer

_ALL = "*"


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # "pods", "pods/eviction", "gpurepairs"
    group: str = ""
    namespace: str | None = None  # None: cluster-wide
    name: str | None = None

    def attributes(self) -> RequestAttributes:
        resource, _, subresource = self.resource.partition("/")
        return RequestAttributes(
            verb=self.verb,
            path="",
            resource_request=True,
            group=self.group,
            resource=resource,
            subresource=subresource,
            namespace=self.namespace or "",
            name=self.name or "",
        )


def installed(out: Rendered) -> KubeApiServer:
    """An emulated cluster holding this rendering's RBAC, as ``helm install`` leaves it (one per rendering)."""
    server: KubeApiServer | None = getattr(out, "_installed", None)
    if server is None:
        server = KubeApiServer()
        for obj in out.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                server.apply_object(obj)
        out._installed = server  # type: ignore[attr-defined]
    return server


def allowed(out: Rendered, component: str, request: Request) -> bool:
    """Would kube-apiserver's RBAC let ``component``'s ServiceAccount make ``request``? (the emulator's authorizer)"""
    user = service_account(NAMESPACE, name(component))
    return installed(out).authorizer.authorize(user, request.attributes()).allowed


def every_rule(out: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{role['kind']} {role['metadata']['name']}", rule)
        for role in out.of_kind("ClusterRole") + out.of_kind("Role")
        for rule in role.get("rules", [])
    ]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_rule_uses_a_wildcard(chart: Any, scenario: str) -> None:
    for role, rule in every_rule(render(chart, SCENARIOS[scenario])):
        for field in ("apiGroups", "resources", "verbs"):
            assert _ALL not in rule.get(field, []), f"{role}: {field} {rule[field]}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_cluster_wide_secrets_at_all(chart: Any, scenario: str) -> None:
    out = render(chart, SCENARIOS[scenario])
    for role in out.of_kind("ClusterRole"):
        assert not [rule for rule in role["rules"] if "secrets" in rule["resources"]], role["metadata"]["name"]
    for component in ("operator", "agent", "webhook"):
        for verb in ("get", "list", "watch"):
            assert not allowed(out, component, Request(verb, "secrets", namespace="kube-system"))
            assert not allowed(out, component, Request(verb, "secrets"))


def test_the_operator_reads_secrets_only_in_its_namespace_and_never_lists_them(chart: Any) -> None:
    out = render(chart)
    assert allowed(out, "operator", Request("get", "secrets", namespace=NAMESPACE, name="node-17-bmc"))
    assert not allowed(out, "operator", Request("list", "secrets", namespace=NAMESPACE))
    assert not allowed(out, "operator", Request("watch", "secrets", namespace=NAMESPACE))
    assert not allowed(out, "agent", Request("get", "secrets", namespace=NAMESPACE, name="node-17-bmc"))
    assert not allowed(out, "webhook", Request("get", "secrets", namespace=NAMESPACE, name="node-17-bmc"))


def test_a_named_bmc_secret_is_the_only_secret_the_operator_may_read(chart: Any) -> None:
    out = render(chart, NOTIFYING)
    assert allowed(out, "operator", Request("get", "secrets", namespace=NAMESPACE, name="bmc-credentials"))
    assert not allowed(out, "operator", Request("get", "secrets", namespace=NAMESPACE, name="repairbot-slack"))


def test_the_operator_can_do_what_its_code_does(chart: Any) -> None:
    out = render(chart)
    needed = [
        Request("watch", "nodes"),
        Request("patch", "nodes"),
        Request("watch", "gpurepairs", "repairbot.io"),
        Request("create", "gpurepairs", "repairbot.io"),
        Request("update", "gpurepairs", "repairbot.io"),
        Request("patch", "gpurepairs/status", "repairbot.io"),
        Request("delete", "gpurepairs", "repairbot.io"),  # operator/retention.py: finished repairs past retention
        Request("list", "pods"),
        Request("create", "pods/eviction"),
        Request("watch", "customresourcedefinitions", "apiextensions.k8s.io"),
        Request("create", "leases", "coordination.k8s.io", namespace=NAMESPACE),
        Request("update", "leases", "coordination.k8s.io", namespace=NAMESPACE, name="repairbot-operator"),
        Request("get", "configmaps", namespace=NAMESPACE, name="repairbot-breaker"),
        Request("update", "configmaps", namespace=NAMESPACE, name="repairbot-breaker"),
        Request("create", "events", namespace="default"),
        Request("patch", "events", namespace="default"),
    ]
    assert [request for request in needed if not allowed(out, "operator", request)] == []


def test_the_operator_cannot_touch_other_leases_configmaps_or_delete_pods_by_default(chart: Any) -> None:
    out = render(chart)
    for request in [
        Request("update", "leases", "coordination.k8s.io", namespace=NAMESPACE, name="kube-scheduler"),
        Request("update", "configmaps", namespace=NAMESPACE, name="repairbot-policy"),
        Request("create", "configmaps", namespace="kube-system"),
        Request("delete", "pods", namespace="ml-training"),
        Request("delete", "nodes"),
        Request("create", "events", namespace="kube-system"),
        Request("list", "poddisruptionbudgets", "policy", namespace="ml-training"),  # a 429 names its budget
    ]:
        assert not allowed(out, "operator", request), request
    # The one GPURepair delete: a second Pending repair of a node folded into the node's record (operator/twins.py).
    assert allowed(out, "operator", Request("delete", "gpurepairs", "repairbot.io"))


def test_force_deleting_pods_is_granted_only_when_the_policy_allows_force(chart: Any) -> None:
    out = render(chart, FORCING)
    assert allowed(out, "operator", Request("delete", "pods", namespace="ml-training"))
    assert not allowed(out, "operator", Request("delete", "nodes"))


def test_the_agent_writes_its_node_status_and_repairs_but_deletes_nothing(chart: Any) -> None:
    out = render(chart)
    for request in [
        Request("get", "nodes"),
        Request("patch", "nodes/status"),
        Request("list", "gpurepairs", "repairbot.io"),
        Request("watch", "gpurepairs", "repairbot.io"),
        Request("create", "gpurepairs", "repairbot.io"),
        Request("update", "gpurepairs", "repairbot.io"),
        Request("patch", "gpurepairs/status", "repairbot.io"),
    ]:
        assert allowed(out, "agent", request), request
    for request in [
        Request("delete", "nodes"),
        Request("patch", "nodes"),  # no cordoning, no labels: only its status condition
        Request("delete", "pods", namespace="ml-training"),
        Request("list", "pods"),
        Request("create", "pods/eviction", namespace="ml-training"),
        Request("delete", "gpurepairs", "repairbot.io"),
        Request("create", "leases", "coordination.k8s.io", namespace=NAMESPACE),
    ]:
        assert not allowed(out, "agent", request), request


def test_the_webhook_reads_nodes_and_opens_repairs_but_never_writes_a_node_nor_drains(chart: Any) -> None:
    """The operator tags a waiting repair's node faulty; intake in the webhook only reads the node (opt-out)."""
    out = render(chart)
    for request in [
        Request("list", "nodes"),
        Request("get", "nodes"),
        Request("list", "gpurepairs", "repairbot.io"),
        Request("create", "gpurepairs", "repairbot.io"),
        Request("update", "gpurepairs", "repairbot.io"),
    ]:
        assert allowed(out, "webhook", request), request
    for verb, resource in [("create", "pods/eviction"), ("delete", "pods"), ("list", "pods"), ("get", "pods")]:
        assert not allowed(out, "webhook", Request(verb, resource, namespace="ml-training")), (verb, resource)
        assert not allowed(out, "webhook", Request(verb, resource)), (verb, resource)
    assert not allowed(out, "webhook", Request("patch", "gpurepairs/status", "repairbot.io"))
    for verb in ("patch", "update", "delete", "create"):
        assert not allowed(out, "webhook", Request(verb, "nodes")), verb


def test_rbac_create_false_renders_no_roles(chart: Any) -> None:
    out = render(chart, {"rbac": {"create": False}, "serviceAccount": {"create": False}})
    kinds = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    assert [obj["kind"] for obj in out.objects if obj["kind"] in kinds] == []
    pod = out.get("Deployment", name("operator"))["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name("operator")  # the one the user must provide
