"""The real kubernetes Python client against the emulated API server, over a socket."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from repairbot_sim.kube.faults import FaultRule

GROUP, VERSION, PLURAL = "repairbot.io", "v1alpha1", "gpurepairs"


@pytest.fixture
def api_client(kube_api: client.ApiClient) -> client.ApiClient:
    return kube_api


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def repair(name: str, node: str = "gpu-1", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": name, "labels": {"repairbot.io/node": node}},
        "spec": {"nodeName": node, "source": "agent"},
    }
    if status:
        body["status"] = status
    return body


def admin_request(apiserver: Any, path: str) -> urllib.request.Request:
    """A GET of ``path`` with the cluster-admin token the kubeconfig carries."""
    return urllib.request.Request(apiserver.url + path, headers=apiserver.admin_headers)


def _tls(apiserver: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=apiserver.ca_file)


def raw(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    content_type: str = "application/json",
    *,
    ca: str,
    token: str = "",
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context(cafile=ca)) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_list_then_watch_resumes_from_resource_version(
    apiserver: Any, core: client.CoreV1Api, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    listed = core.list_node()
    assert [n.metadata.name for n in listed.items] == ["gpu-1"]
    since = listed.metadata.resource_version
    apiserver.server.create_object(kube_objects.gpu_node("gpu-2"))
    core.patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/state": "faulty"}}})
    core.delete_node("gpu-2")
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_node, resource_version=since, timeout_seconds=1)
    ]
    assert events == [("ADDED", "gpu-2"), ("MODIFIED", "gpu-1"), ("DELETED", "gpu-2")]
    versions = [int(n.metadata.resource_version) for n in core.list_node().items]
    assert all(v > int(since) for v in versions)


def test_watch_from_compacted_version_is_410(apiserver: Any, core: client.CoreV1Api, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    old = core.list_node().metadata.resource_version
    core.patch_node("gpu-1", {"metadata": {"labels": {"x": "1"}}})
    apiserver.run(_compact(apiserver.server))
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(core.list_node, resource_version=old, timeout_seconds=1))
    assert caught.value.status == 410
    # the raw stream is one ERROR event carrying a 410 Status, as from a real server
    status, _, _ = 0, None, None
    with urllib.request.urlopen(
        admin_request(apiserver, f"/api/v1/nodes?watch=true&resourceVersion={old}"), timeout=5, context=_tls(apiserver)
    ) as resp:
        status = resp.status
        event = json.loads(resp.readline())
    assert status == 200
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


async def _compact(server: Any) -> None:
    server.store.compact()


def test_watch_sends_bookmarks_and_selector_transitions(
    apiserver: Any, core: client.CoreV1Api, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    since = core.list_node(label_selector="repairbot.io/state=faulty").metadata.resource_version
    core.patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/state": "faulty"}}})
    core.patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/state": None}}})
    stream = watch.Watch().stream(
        core.list_node,
        label_selector="repairbot.io/state=faulty",
        resource_version=since,
        allow_watch_bookmarks=True,
        timeout_seconds=2,
    )
    types = [e["type"] for e in stream]
    assert types[:2] == ["ADDED", "DELETED"]
    assert "BOOKMARK" in types[2:]


def test_stale_update_conflicts_and_duplicate_create_exists(
    apiserver: Any, core: client.CoreV1Api, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    stale = core.read_node("gpu-1")
    core.patch_node("gpu-1", {"spec": {"unschedulable": True}})
    stale.metadata.labels["touched"] = "yes"
    with pytest.raises(ApiException) as conflict:
        core.replace_node("gpu-1", stale)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as exists:
        core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="gpu-1")))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    fresh = core.read_node("gpu-1")
    fresh.metadata.labels["touched"] = "yes"
    assert core.replace_node("gpu-1", fresh).metadata.labels["touched"] == "yes"


def test_patch_types(
    apiserver: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    # strategic merge (the client's default for dict bodies): conditions merge by type
    condition = {"type": "GPUHealthy", "status": "False", "reason": "Xid79", "message": "GPU fell off the bus"}
    node = core.patch_node_status("gpu-1", {"status": {"conditions": [condition]}})
    assert {c.type: c.status for c in node.status.conditions} == {"Ready": "True", "GPUHealthy": "False"}
    # taints have no merge key: the list is replaced, as on a real cluster
    taint = {"key": "repairbot.io/unhealthy", "value": "xid-79", "effect": "NoSchedule"}
    core.patch_node("gpu-1", {"spec": {"taints": [{"key": "other", "effect": "NoExecute"}]}})
    node = core.patch_node("gpu-1", {"spec": {"taints": [taint]}})
    assert [t.key for t in node.spec.taints] == ["repairbot.io/unhealthy"]
    # JSON patch (list body)
    node = core.patch_node(
        "gpu-1", [{"op": "add", "path": "/metadata/labels/repairbot.io~1state", "value": "repairing"}]
    )
    assert node.metadata.labels["repairbot.io/state"] == "repairing"
    # merge patch on a custom resource
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("r1"))
    patched = custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "r1", {"spec": {"reason": "seen by hand"}})
    assert patched["spec"] == {"nodeName": "gpu-1", "source": "agent", "reason": "seen by hand"}
    # strategic merge is not supported for custom resources: 415
    status, _, body = raw(
        f"{apiserver.url}/apis/{GROUP}/{VERSION}/{PLURAL}/r1",
        "PATCH",
        b"{}",
        "application/strategic-merge-patch+json",
        token=apiserver.server.admin_token,
        ca=apiserver.ca_file,
    )
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    status, _, body = raw(
        f"{apiserver.url}/api/v1/nodes/gpu-1",
        "PATCH",
        b"{}",
        "text/plain",
        token=apiserver.server.admin_token,
        ca=apiserver.ca_file,
    )
    assert status == 415


def test_status_subresource(apiserver: Any, custom: client.CustomObjectsApi) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("r1", phase="Succeeded"))
    assert "status" not in created  # status is dropped on create
    assert created["metadata"]["generation"] == 1
    main = custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "r1", {"status": {"phase": "Failed"}})
    assert "status" not in main and main["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    status = custom.patch_cluster_custom_object_status(
        GROUP, VERSION, PLURAL, "r1", {"status": {"phase": "Cordoned", "attempt": 1}, "spec": {"nodeName": "gpu-9"}}
    )
    assert status["status"] == {"phase": "Cordoned", "attempt": 1}
    assert status["spec"]["nodeName"] == "gpu-1"  # spec changes via /status are ignored
    assert status["metadata"]["generation"] == 1  # status changes do not bump generation
    spec = custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "r1", {"spec": {"reason": "seen by hand"}})
    assert spec["metadata"]["generation"] == 2 and spec["status"]["phase"] == "Cordoned"


def test_schema_validation_names_the_field(custom: client.CustomObjectsApi) -> None:
    bad = repair("bad")
    bad["spec"]["source"] = "carrier-pigeon"
    del bad["spec"]["nodeName"]
    with pytest.raises(ApiException) as caught:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, bad)
    body = json.loads(caught.value.body)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.nodeName", "spec.source"}
    assert 'spec.source: Unsupported value: "carrier-pigeon"' in body["message"]


def test_selectors_and_pagination(apiserver: Any, core: client.CoreV1Api, kube_objects: Any) -> None:
    for index in range(5):
        apiserver.server.create_object(
            kube_objects.running_pod(f"p{index}", f"gpu-{index % 2}", labels={"app": "train", "n": str(index)})
        )
    assert {p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-1").items} == {
        "p1",
        "p3",
    }
    assert [p.metadata.name for p in core.list_namespaced_pod("ml", label_selector="n in (0,4),app=train").items] == [
        "p0",
        "p4",
    ]
    assert core.list_namespaced_pod("other").items == []
    first = core.list_namespaced_pod("ml", limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"] and first.metadata._continue
    apiserver.server.create_object(kube_objects.running_pod("p2a", "gpu-0"))  # not in the snapshot
    second = core.list_namespaced_pod("ml", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_pod("ml", limit=2, _continue=second.metadata._continue)
    assert [p.metadata.name for p in second.items + third.items] == ["p2", "p3", "p4"]
    assert not third.metadata._continue
    assert second.metadata.resource_version == first.metadata.resource_version
    apiserver.run(_compact(apiserver.server))
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("ml", limit=2, _continue=first.metadata._continue)
    assert caught.value.status == 410


def test_eviction_honours_disruption_budget(apiserver: Any, core: client.CoreV1Api, kube_objects: Any) -> None:
    server = apiserver.server
    server.create_object(kube_objects.running_pod("a", "gpu-1", termination_seconds=1))
    server.create_object(kube_objects.running_pod("b", "gpu-1"))
    server.create_object(kube_objects.pdb("train", min_available=2))
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="a", namespace="ml"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_eviction("a", "ml", eviction)
    body = json.loads(caught.value.body)
    assert caught.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget train needs 2 healthy pods and has 2 currently",
        }
    ]
    # Budget status follows pod writes shortly after (as the disruption controller's does).
    deadline = time.monotonic() + 2
    while True:
        budget = client.PolicyV1Api(core.api_client).read_namespaced_pod_disruption_budget("train", "ml")
        if budget.status is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (budget.status.current_healthy, budget.status.disruptions_allowed) == (2, 0)
    client.PolicyV1Api(core.api_client).patch_namespaced_pod_disruption_budget(
        "train", "ml", {"spec": {"minAvailable": 1}}
    )
    core.create_namespaced_pod_eviction("a", "ml", eviction)
    terminating = core.read_namespaced_pod("a", "ml")
    assert terminating.metadata.deletion_timestamp is not None  # graceful: still there
    with pytest.raises(ApiException) as again:  # a terminating pod no longer counts as healthy
        core.create_namespaced_pod_eviction("b", "ml", client.V1Eviction(metadata=client.V1ObjectMeta(name="b")))
    assert again.value.status == 429
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(p.metadata.name == "a" for p in core.list_namespaced_pod("ml").items):
        time.sleep(0.1)
    assert [p.metadata.name for p in core.list_namespaced_pod("ml").items] == ["b"]


def test_pod_with_two_budgets_cannot_be_evicted(apiserver: Any, core: client.CoreV1Api, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.running_pod("a", "gpu-1"))
    apiserver.server.create_object(kube_objects.pdb("one", min_available=0))
    apiserver.server.create_object(kube_objects.pdb("two", min_available=0))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_eviction("a", "ml", client.V1Eviction(metadata=client.V1ObjectMeta(name="a")))
    assert caught.value.status == 500


def test_finalizers_hold_deletion(custom: client.CustomObjectsApi) -> None:
    body = repair("r1")
    body["metadata"]["finalizers"] = ["repairbot.io/cleanup"]
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "r1")
    held = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "r1")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "r1", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as caught:
        custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "r1")
    assert caught.value.status == 404


def test_dry_run_and_generate_name(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="cm-"))
    )
    assert made.metadata.name.startswith("cm-") and len(made.metadata.name) == 8
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry")), dry_run="All"
    )
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == [made.metadata.name]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert caught.value.status == 404


def test_errors_are_status_objects(apiserver: Any) -> None:
    status, _, body = raw(
        f"{apiserver.url}/api/v1/namespaces/default/configmaps",
        "POST",
        b"{not json",
        token=apiserver.server.admin_token,
        ca=apiserver.ca_file,
    )
    assert (status, body["kind"], body["reason"]) == (400, "Status", "BadRequest")
    status, _, body = raw(
        f"{apiserver.url}/api/v1/nodes/gpu-404", token=apiserver.server.admin_token, ca=apiserver.ca_file
    )
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'nodes "gpu-404" not found')
    status, _, body = raw(
        f"{apiserver.url}/api/v1/frobnicators", token=apiserver.server.admin_token, ca=apiserver.ca_file
    )
    assert status == 404
    status, _, body = raw(
        f"{apiserver.url}/api/v1/nodes/x/status",
        "POST",
        b"{}",
        token=apiserver.server.admin_token,
        ca=apiserver.ca_file,
    )
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


def test_fault_injection(apiserver: Any, core: client.CoreV1Api) -> None:
    apiserver.server.faults.add(FaultRule(method="GET", path=r"^/api/v1/nodes", status=500, message="etcd is on fire"))
    with pytest.raises(ApiException) as caught:
        core.list_node()
    assert caught.value.status == 500 and "etcd is on fire" in caught.value.body
    assert core.list_node().items == []  # only the next request failed
    status, _, rule = raw(
        f"{apiserver.url}/_sim/faults",
        "POST",
        json.dumps({"path": "/api/v1/namespaces", "status": 429, "retry_after": 3, "count": 2}).encode(),
        ca=apiserver.ca_file,
    )
    assert status == 201 and rule["count"] == 2
    for _ in range(2):
        status, headers, body = raw(
            f"{apiserver.url}/api/v1/namespaces", token=apiserver.server.admin_token, ca=apiserver.ca_file
        )
        assert (status, headers.get("Retry-After"), body["reason"]) == (429, "3", "TooManyRequests")
    assert raw(f"{apiserver.url}/api/v1/namespaces", token=apiserver.server.admin_token, ca=apiserver.ca_file)[0] == 200
    apiserver.server.faults.add(FaultRule(action="delay", path="/api/v1/namespaces", seconds=0.3))
    started = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - started >= 0.3
    apiserver.server.faults.add(FaultRule(action="drop_watch", path="/api/v1/namespaces", after_events=2))
    with pytest.raises(Exception):  # noqa: B017 - the client sees a cut connection, whatever its type
        list(watch.Watch().stream(core.list_namespace, timeout_seconds=5))
    assert raw(f"{apiserver.url}/_sim/faults", "DELETE", ca=apiserver.ca_file)[0] == 200


def test_watch_list_protocol_and_crd_deletion_cascades(apiserver: Any, custom: client.CustomObjectsApi) -> None:
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("r1"))
    url = f"/apis/{GROUP}/{VERSION}/{PLURAL}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
    with urllib.request.urlopen(
        admin_request(apiserver, url + "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"),
        timeout=5,
        context=_tls(apiserver),
    ) as resp:
        first, second = json.loads(resp.readline()), json.loads(resp.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "r1")
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    extensions = client.ApiextensionsV1Api(custom.api_client)
    extensions.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
    with pytest.raises(ApiException) as caught:
        custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert caught.value.status == 404
    assert apiserver.server.store.list(f"{GROUP}/{PLURAL}") == []
