"""The emulated API server refuses what a real one refuses by size: a body over 3 MiB, an object over etcd's 1.5 MiB."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "repairbot.io", "v1alpha1", "gpurepairs"


def repair(name: str, message: str) -> dict[str, object]:
    finding = {"code": "alert-x", "message": message, "firstSeen": "2026-05-01T10:00:00Z"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
        "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]},
    }


def test_a_request_body_over_3mib_is_413_request_entity_too_large(kube_api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as raised:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("big", "x" * (3 * 1024 * 1024)))
    assert raised.value.status == 413
    status = json.loads(raised.value.body)
    assert status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == "Request entity too large: limit is 3145728"
    assert custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"] == []


def test_an_object_over_etcds_limit_is_refused_with_etcds_words_and_nothing_is_stored(
    kube_api: client.ApiClient,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as raised:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("big", "x" * (1600 * 1024)))
    assert raised.value.status == 500
    status = json.loads(raised.value.body)
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "etcdserver: request is too large", "code": 500}  # fmt: skip
    assert custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"] == []


def test_an_update_that_grows_an_object_past_etcds_limit_is_refused_and_the_old_object_stays(
    kube_api: client.ApiClient,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("grows", "small"))
    # within the CRD's maxItems (256), over etcd's 1.5 MiB
    history = [{"step": "queue", "outcome": "done", "message": "m" * 7000, "at": "2026-05-01T10:00:00Z"}] * 250
    with pytest.raises(ApiException) as raised:
        custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, "grows", {"status": {"history": history}})
    assert raised.value.status == 500 and "request is too large" in raised.value.body
    stored = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "grows")
    assert not (stored.get("status") or {}).get("history")


def test_an_object_just_under_etcds_limit_is_stored(kube_api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_api)
    created = custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, repair("fits", "x" * (1400 * 1024)))
    assert created["metadata"]["name"] == "fits"
