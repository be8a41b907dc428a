"""The emulated API server authenticates and authorizes like kube-apiserver, as the real client sees it.

Wording of the 401 and 403 bodies: k8s.io/apiserver endpoints/handlers/responsewriters (Unauthorized,
Forbidden → forbiddenMessage) and apimachinery errors.NewForbidden; matching rules: kubernetes
plugin/pkg/auth/authorizer/rbac (RuleAllows, appliesToUser, RoleBinding scoping).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.kube.api import WriteOptions
from repairbot_sim.kube.identity import UserInfo, service_account

AGENT = service_account("repairbot", "repairbot-agent", node="gpu-1")
AGENT_NAME = "system:serviceaccount:repairbot:repairbot-agent"
RBAC = "rbac.authorization.k8s.io/v1"

Connect = Callable[[UserInfo], client.ApiClient]


@pytest.fixture
def connect(apiserver: Any, tmp_path: Path) -> Iterator[Connect]:
    """A real kubernetes client that authenticates as ``user`` (its own token and kubeconfig)."""
    opened: list[client.ApiClient] = []

    def make(user: UserInfo) -> client.ApiClient:
        path = tmp_path / f"kubeconfig-{len(opened)}"
        apiserver.server.write_kubeconfig(path, token=apiserver.server.issue_token(user))
        opened.append(api_client(str(path)))
        return opened[-1]

    yield make
    for api in opened:
        api.close()


def _grant(apiserver: Any, rules: list[dict[str, Any]], *, namespace: str | None = None, **binding: Any) -> None:
    """A (Cluster)Role with ``rules`` bound to the agent's ServiceAccount (or ``subjects``)."""
    role_kind = binding.get("role_kind") or ("Role" if namespace else "ClusterRole")
    meta = {"name": "probe", **({"namespace": namespace} if namespace else {})}
    apiserver.server.create_object({"apiVersion": RBAC, "kind": role_kind, "metadata": meta, "rules": rules})
    subjects = binding.get("subjects") or [
        {"kind": "ServiceAccount", "name": "repairbot-agent", "namespace": "repairbot"}
    ]
    apiserver.server.create_object(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": {"name": "probe", **({"namespace": namespace} if namespace else {})},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": binding.get("role", "probe"),
            },
            "subjects": subjects,
        }
    )


def _status(caught: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(caught.value.body)
    return body


def test_an_unknown_bearer_token_is_refused_401_even_though_anonymous_requests_are_allowed(apiserver: Any) -> None:
    answer = httpx.get(
        f"{apiserver.url}/version", headers={"Authorization": "Bearer forged"}, timeout=5, verify=apiserver.ca_file
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_without_a_token_only_version_and_health_answer(apiserver: Any) -> None:
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert httpx.get(f"{apiserver.url}{path}", timeout=5, verify=apiserver.ca_file).status_code == 200, path
    denied = httpx.get(f"{apiserver.url}/api", timeout=5, verify=apiserver.ca_file)
    assert denied.status_code == 403
    assert denied.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'forbidden: User "system:anonymous" cannot get path "/api"',
        "reason": "Forbidden",
        "details": {},
        "code": 403,
    }
    listing = httpx.get(f"{apiserver.url}/api/v1/nodes", timeout=5, verify=apiserver.ca_file).json()
    assert listing["message"] == (
        'nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    assert listing["details"] == {"kind": "nodes"}


def test_the_admin_kubeconfig_is_cluster_admin_through_system_masters(apiserver: Any, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    core = client.CoreV1Api(api_client(str(apiserver.kubeconfig)))
    core.delete_node("gpu-1")
    decisions = httpx.get(f"{apiserver.url}/_sim/audit", timeout=5, verify=apiserver.ca_file).json()["decisions"]
    (row,) = [d for d in decisions if d.get("verb") == "delete"]
    assert (row["user"], row["allowed"], row["by"], row["name"]) == (
        "repairbot-sandbox-admin",
        True,
        "system:masters",
        "gpu-1",
    )


def test_a_service_account_signed_in_may_discover_the_api_but_nothing_more(apiserver: Any, connect: Connect) -> None:
    api = connect(AGENT)
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]  # system:discovery, for system:authenticated
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_node()
    assert caught.value.status == 403
    assert _status(caught)["message"] == (
        f'nodes is forbidden: User "{AGENT_NAME}" cannot list resource "nodes" in API group "" at the cluster scope'
    )


def test_a_namespaced_grant_allows_its_namespace_only_and_a_denied_delete_names_the_pod(
    apiserver: Any, connect: Connect, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.running_pod("x", "gpu-1", namespace="train"))
    _grant(apiserver, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], namespace="train")
    core = client.CoreV1Api(connect(AGENT))
    assert [p.metadata.name for p in core.list_namespaced_pod("train").items] == ["x"]
    with pytest.raises(ApiException) as elsewhere:
        core.list_namespaced_pod("ml")
    assert elsewhere.value.status == 403
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod("x", "train")
    assert _status(caught) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'pods "x" is forbidden: User "{AGENT_NAME}" cannot delete resource "pods" in API group "" '
        'in the namespace "train"',
        "reason": "Forbidden",
        "details": {"name": "x", "kind": "pods"},
        "code": 403,
    }
    with pytest.raises(ApiException) as eviction:  # pods/eviction is its own resource: "pods" does not cover it
        core.create_namespaced_pod_eviction("x", "train", {"metadata": {"name": "x", "namespace": "train"}})
    assert _status(eviction)["message"] == (
        f'pods "x" is forbidden: User "{AGENT_NAME}" cannot create resource "pods/eviction" in API group "" '
        'in the namespace "train"'
    )
    assert apiserver.server.get_object("v1", "Pod", "x", "train") is not None


def test_resource_names_allow_the_named_object_and_never_a_create_or_a_list(apiserver: Any, connect: Connect) -> None:
    _grant(
        apiserver,
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["breaker"],
                "verbs": ["get", "create", "list"],
            }
        ],
        namespace="default",
    )
    apiserver.server.create_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "breaker"}})
    apiserver.server.create_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})
    core = client.CoreV1Api(connect(AGENT))
    assert core.read_namespaced_config_map("breaker", "default").metadata.name == "breaker"
    for attempt in (
        lambda: core.read_namespaced_config_map("other", "default"),
        lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "breaker2"}}),
        lambda: core.list_namespaced_config_map("default"),
    ):
        with pytest.raises(ApiException) as caught:
            attempt()
        assert caught.value.status == 403
    # A list pinned to the name by a field selector carries that name, as kube-apiserver's RequestInfo does.
    pinned = core.list_namespaced_config_map("default", field_selector="metadata.name=breaker")
    assert [c.metadata.name for c in pinned.items] == ["breaker"]


def test_a_role_binding_to_a_cluster_role_grants_it_in_the_binding_namespace_only(
    apiserver: Any, connect: Connect
) -> None:
    apiserver.server.create_object(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        }
    )
    _grant(apiserver, [], namespace="default", role_kind="ClusterRole", role="configmap-reader")
    core = client.CoreV1Api(connect(AGENT))
    core.list_namespaced_config_map("default")
    for attempt in (lambda: core.list_namespaced_config_map("kube-system"), core.list_config_map_for_all_namespaces):
        with pytest.raises(ApiException) as caught:
            attempt()
        assert caught.value.status == 403


def test_group_subjects_and_star_subresources_match_and_watch_is_its_own_verb(apiserver: Any, connect: Connect) -> None:
    _grant(
        apiserver,
        [
            {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list"]},
            {"apiGroups": [GROUP], "resources": ["*/status"], "verbs": ["patch"]},
        ],
        subjects=[{"kind": "Group", "name": "system:serviceaccounts:repairbot"}],
    )
    apiserver.server.create_object(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPURepair",
            "metadata": {"name": "r1"},
            "spec": {"nodeName": "gpu-1", "source": "agent"},
        }
    )
    custom = client.CustomObjectsApi(connect(AGENT))
    assert [r["metadata"]["name"] for r in custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]] == ["r1"]
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, "r1", {"status": {"phase": "Pending"}})
    with pytest.raises(ApiException) as watching:
        custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, watch=True, timeout_seconds=1)
    assert watching.value.status == 403
    with pytest.raises(ApiException) as caught:
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "r1", {"metadata": {"labels": {"x": "y"}}})
    assert _status(caught)["message"] == (
        f'gpurepairs.repairbot.io "r1" is forbidden: User "{AGENT_NAME}" cannot patch resource "gpurepairs" '
        'in API group "repairbot.io" at the cluster scope'
    )
    assert _status(caught)["details"] == {"name": "r1", "group": GROUP, "kind": PLURAL}


def test_a_binding_to_a_missing_role_says_so_in_the_denial(apiserver: Any, connect: Connect) -> None:
    _grant(apiserver, [], role="not-installed")
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(connect(AGENT)).list_node()
    assert _status(caught)["message"].endswith(
        ': RBAC: clusterrole.rbac.authorization.k8s.io "not-installed" not found'
    )


def test_writes_carry_the_authenticated_user_to_the_api_layer(
    apiserver: Any, connect: Connect, kube_objects: Any
) -> None:
    """Admission (ValidatingAdmissionPolicy's request.userInfo) reads WriteOptions.user: it is the caller's."""
    apiserver.server.create_object(kube_objects.running_pod("x", "gpu-1", namespace="train"))
    _grant(apiserver, [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}], namespace="train")
    seen: list[WriteOptions] = []
    original = apiserver.server.api.delete_object

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return original(*args, **kwargs)

    apiserver.server.api.delete_object = spy
    client.CoreV1Api(connect(AGENT)).create_namespaced_pod_eviction(
        "x", "train", {"metadata": {"name": "x", "namespace": "train"}}
    )
    assert [options.user for options in seen] == [AGENT]
