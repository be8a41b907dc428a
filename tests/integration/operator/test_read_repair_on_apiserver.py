"""Reading one GPURepair by name, as every operator loop does: a deleted repair is None, anything else is raised."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from repairbot.kube.repairs import read_repair
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.kube.faults import FaultRule


def _create(custom: client.CustomObjectsApi, name: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "manual", "findings": []}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


def test_a_repair_read_by_name_is_the_api_servers_current_object(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    _create(custom, "gpu-1-20261122100000")
    obj = read_repair(custom, "gpu-1-20261122100000")
    assert obj is not None and obj["spec"]["nodeName"] == "gpu-1"


def test_a_repair_deleted_before_its_read_is_none_not_an_error(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    _create(custom, "gpu-1-20261122100000")
    custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-20261122100000")
    assert read_repair(custom, "gpu-1-20261122100000") is None


def test_an_api_server_error_on_the_read_is_raised_for_the_caller_to_retry(
    apiserver: Any, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    _create(custom, "gpu-1-20261122100000")
    apiserver.server.faults.add(FaultRule(action="fail", method="GET", path=r"gpurepairs/gpu-1-20261122100000$",
                                          status=500))  # fmt: skip
    with pytest.raises(client.ApiException) as failed:
        read_repair(custom, "gpu-1-20261122100000")
    assert failed.value.status == 500
