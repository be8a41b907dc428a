"""The reconciler's in-memory maps are pruned: a repair that ended or was deleted leaves nothing behind."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.model import GROUP, LABEL_DISABLED, PLURAL, VERSION
from repairbot.operator.main import build_operator
from repairbot.operator.reconciler import OWN_WRITES_MAX
from repairbot.policy import parse_policy

NAME = "gpu-1-20261122030000"


def open_repair(custom: client.CustomObjectsApi, name: str = NAME) -> None:
    finding = {"code": "xid-79", "firstSeen": "2026-11-22T03:00:00.000Z", "action": "reboot"}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


def test_the_reconciler_forgets_its_own_writes_once_a_repair_ends(
    kube_api: client.ApiClient, apiserver: Any, kube_objects: Any
) -> None:
    node = kube_objects.gpu_node("gpu-1")
    node["metadata"]["labels"][LABEL_DISABLED] = "true"  # opted out: the repair is cancelled at once
    apiserver.server.create_object(node)
    custom = client.CustomObjectsApi(kube_api)
    open_repair(custom)
    reconciler = build_operator(kube_api, parse_policy({}), namespace="default").reconciler
    reconciler.reconcile(NAME)
    ended = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)
    assert ended["status"]["phase"] == "Cancelled"
    assert not reconciler.wrote_last(NAME, ended["metadata"]["resourceVersion"])
    assert NAME not in reconciler._own_writes


def test_the_reconcilers_memory_of_own_writes_is_bounded(kube_api: client.ApiClient) -> None:
    reconciler = build_operator(kube_api, parse_policy({}), namespace="default").reconciler
    custom = client.CustomObjectsApi(kube_api)
    open_repair(custom, "gpu-1-a")
    for i in range(OWN_WRITES_MAX + 10):
        reconciler._own_writes[f"gone-{i}"] = str(i)  # repairs deleted mid-flight, never reconciled again
    current = custom.get_cluster_custom_object("repairbot.io", "v1alpha1", "gpurepairs", "gpu-1-a")
    reconciler._patch_status("gpu-1-a", {"message": "x"}, version=current["metadata"]["resourceVersion"])
    assert len(reconciler._own_writes) == OWN_WRITES_MAX
    assert "gpu-1-a" in reconciler._own_writes and "gone-0" not in reconciler._own_writes
