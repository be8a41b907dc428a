"""A real kopf operator runs against the emulated API server.

kopf exercises the parts most likely to betray an emulator: discovery of a
CRD and its status subresource, list-then-watch with resourceVersions,
finalizers on delete, merge patches of metadata and status, and events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from kubernetes import client, config
from waiting import wait_for

GROUP, VERSION, PLURAL = "repairbot.io", "v1alpha1", "gpurepairs"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, what: str, name: str) -> None:
        with self.lock:
            self.calls.append((what, name))

    def has(self, what: str, name: str) -> bool:
        with self.lock:
            return (what, name) in self.calls


@pytest.fixture
def operator(apiserver: Any) -> Iterator[Recorder]:
    registry = kopf.OperatorRegistry()
    seen = Recorder()
    url = apiserver.url

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 10
        settings.watching.client_timeout = 15
        settings.persistence.finalizer = "repairbot.io/test-finalizer"

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, token=apiserver.server.admin_token)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(name: str, spec: kopf.Spec, patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
        # No return value: the CRD's status schema would prune kopf's status.<handler> result,
        # exactly as a real server does (kopf logs "Merge-patching finished with inconsistencies").
        seen.add("create", name)
        patch.status["phase"] = "Pending"
        patch.status["reason"] = f"watch-{spec['nodeName']}"
        patch.metadata.labels["seen-by"] = "kopf"
        kopf.info(body, reason="RepairSeen", message=f"repair of {spec['nodeName']} seen")

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    def updated(name: str, patch: kopf.Patch, **_: Any) -> None:
        seen.add("update", name)
        patch.status["phase"] = "Cordoned"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        seen.add("delete", name)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    def node_event(type: str | None, name: str, **_: Any) -> None:
        # kopf reports objects from its initial listing with type None: if the node was
        # created before the watch began, that listing is how kopf first sees it.
        seen.add(f"node-{type or 'ADDED'}", name)

    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        kopf.run(registry=registry, standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready)

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    assert ready.wait(20), "kopf did not start"
    try:
        yield seen
    finally:
        stop.set()
        thread.join(20)


@pytest.mark.timeout(60)
def test_kopf_sees_nodes_and_gpurepairs(apiserver: Any, operator: Recorder, kube_objects: Any) -> None:
    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    try:
        apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
        wait_for(lambda: operator.has("node-ADDED", "gpu-1"), message="kopf to see the node")
        core.patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/state": "faulty"}}})
        wait_for(lambda: operator.has("node-MODIFIED", "gpu-1"), message="kopf to see the node change")

        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPURepair",
            "metadata": {"name": "gpu-1-x", "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "manual"},
        }
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

        def status_landed() -> dict[str, Any] | None:
            obj = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-x")
            done = obj.get("status", {}).get("reason") == "watch-gpu-1"
            return obj if done else None

        obj = wait_for(status_landed, message="kopf's status patch")
        assert obj["status"]["phase"] == "Pending"
        assert obj["metadata"]["labels"]["seen-by"] == "kopf"
        assert "repairbot.io/test-finalizer" in obj["metadata"]["finalizers"]

        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-x", {"spec": {"reason": "seen by hand"}})
        wait_for(lambda: operator.has("update", "gpu-1-x"), message="the update handler")
        wait_for(
            lambda: (
                custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-x")["status"].get("phase") == "Cordoned"
            ),
            message="the update's status patch",
        )

        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-x")
        wait_for(lambda: operator.has("delete", "gpu-1-x"), message="the delete handler")
        wait_for(
            lambda: not custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"],
            message="the finalizer to be released",
        )
        wait_for(
            lambda: any(
                e.involved_object.name == "gpu-1-x" and e.reason == "RepairSeen"
                for e in core.list_event_for_all_namespaces().items
            ),
            message="kopf's k8s event (core v1, posted to 'default' for a cluster-scoped object)",
        )
    finally:
        api.close()
