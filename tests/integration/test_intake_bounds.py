"""Intake keeps every repair small, and a write the API server refuses for its size is shrunk once, never looped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from repairbot.bounds import FINDINGS_MAX, FOLDED_FINDINGS_CODE, OBJECT_SIZE_TARGET
from repairbot.kube.intake import Intake, IntakeTooLarge
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, GpuRef, Severity, Source
from repairbot_sim.kube.faults import FaultRule

T0 = datetime(2026, 5, 1, tzinfo=UTC)
TOO_LARGE = "etcdserver: request is too large"


def alert(i: int, message: str = "") -> Finding:
    return Finding(f"alert-gpu-{i}", message or f"alert {i}", Action.NOTIFY, Severity.WARNING, GpuRef(index=i % 8),
                   source=Source.ALERTMANAGER, first_seen=T0 + timedelta(seconds=i),
                   evidence={f"label.{n}": "v" * 900 for n in range(60)})  # fmt: skip


@pytest.fixture(autouse=True)
def node_gpu_1(apiserver: Any, kube_objects: Any) -> None:
    """Intake opens repairs of nodes that exist: the node every test reports for."""
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))


def repairs(api: client.ApiClient) -> list[dict[str, Any]]:
    return list(client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])


def test_a_900kb_finding_message_makes_a_repair_under_the_size_limit(kube_api: client.ApiClient) -> None:
    Intake(kube_api).report("gpu-1", [alert(1, "x" * 900_000)], source=Source.ALERTMANAGER, reason="r" * 900_000)
    (repair,) = repairs(kube_api)
    assert len(json.dumps(repair)) < 64 * 1024
    assert "truncated" in repair["spec"]["findings"][0]["message"]


def test_a_thousand_distinct_alerts_for_one_node_keep_one_small_repair_with_a_tally(kube_api: client.ApiClient) -> None:
    intake = Intake(kube_api)
    for batch in range(10):
        intake.report("gpu-1", [alert(batch * 100 + i) for i in range(100)], source=Source.ALERTMANAGER)
    (repair,) = repairs(kube_api)
    findings = repair["spec"]["findings"]
    assert len(findings) == FINDINGS_MAX
    assert findings[-1]["code"] == FOLDED_FINDINGS_CODE
    assert sum(f["count"] for f in findings) == 1000  # nothing seen is lost from the tally
    assert len(json.dumps(repair)) < OBJECT_SIZE_TARGET


def test_intake_refused_as_too_large_shrinks_the_findings_and_retries_once(
    kube_api: client.ApiClient, apiserver: Any
) -> None:
    intake = Intake(kube_api)
    intake.report("gpu-1", [alert(0)], source=Source.ALERTMANAGER)
    apiserver.server.faults.add(FaultRule(method="PUT", path="/gpurepairs/", status=500, message=TOO_LARGE, count=1))
    result = intake.report("gpu-1", [alert(i) for i in range(1, 30)], source=Source.ALERTMANAGER)
    assert not result.created
    (repair,) = repairs(kube_api)
    assert len(repair["spec"]["findings"]) == 4
    assert sum(f["count"] for f in repair["spec"]["findings"]) == 30


def test_intake_refused_as_too_large_twice_raises_a_clear_error_instead_of_retrying(
    kube_api: client.ApiClient, apiserver: Any
) -> None:
    apiserver.server.faults.add(FaultRule(method="POST", path="/gpurepairs", status=413, message="Request entity too "
                                          "large: limit is 3145728", count=-1))  # fmt: skip
    with pytest.raises(IntakeTooLarge, match="node gpu-1: the API server refused the repair as too large"):
        Intake(kube_api).report("gpu-1", [alert(1)], source=Source.ALERTMANAGER)
    posts = [f for f in apiserver.server.faults.fired if f[1] == "POST"]
    assert len(posts) == 2  # the report and its one shrunk retry, not api_retrying's six
