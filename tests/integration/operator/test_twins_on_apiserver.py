"""Reporters racing across a second boundary: the later Pending repair is folded into the record, never admitted."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.kube.intake import Intake
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, GpuRef, Source
from repairbot.operator.twins import fold_twin


def _repair(custom: client.CustomObjectsApi, name: str, finding: Finding, source: Source) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": source.value, "findings": [finding.to_dict()]}}  # fmt: skip
    return dict(custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body))  # type: ignore[arg-type]


def _xid(gpu: int, source: Source) -> Finding:
    return Finding(code="xid-79", message="off the bus", action=Action.REBOOT, gpu=GpuRef(index=gpu), source=source)


def _twins(apiserver: Any, custom: client.CustomObjectsApi, kube_objects: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Node gpu-1 and the race on it: the agent's repair, then Grafana's for another GPU one second later."""
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    first = _repair(custom, "gpu-1-20261122100000", _xid(0, Source.AGENT), Source.AGENT)
    second = _repair(custom, "gpu-1-20261122100001", _xid(2, Source.GRAFANA), Source.GRAFANA)
    return first, second


def test_two_reporters_a_second_apart_end_as_one_repair_with_both_findings(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    custom = client.CustomObjectsApi(api)
    first, second = _twins(apiserver, custom, kube_objects)

    assert fold_twin(api, first) is None  # the record itself is admitted as usual
    assert fold_twin(api, second) == first["metadata"]["name"]

    [left] = Intake(api).repairs_of("gpu-1")
    assert left["metadata"]["name"] == first["metadata"]["name"]
    assert sorted(f["source"] for f in left["spec"]["findings"]) == ["agent", "grafana"]


def test_a_twin_that_took_a_finding_meanwhile_is_not_deleted(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    custom = client.CustomObjectsApi(api)
    first, second = _twins(apiserver, custom, kube_objects)
    stale = dict(second)
    second["spec"]["findings"].append(_xid(3, Source.MANUAL).to_dict())
    custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, second["metadata"]["name"], second)

    assert fold_twin(api, stale) is None  # the delete's precondition failed: folded again next reconcile
    names = sorted(r["metadata"]["name"] for r in Intake(api).repairs_of("gpu-1"))
    assert names == [first["metadata"]["name"], second["metadata"]["name"]]
