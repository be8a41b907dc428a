"""The whole operator (kopf, its handlers, its caches) against the emulated API server: the two ``faulty`` paths.

A human's ``repairbot.io/state=faulty`` label on a node with no repair opens a manual repair. The operator
now writes that same label itself, on the node of a repair it queues behind the budget (issue 16: intake no
longer does for alerts); it does so only while that repair exists, so the label must never read as a
human's and open a second repair beside it — nor, once the queued repair is cancelled, be left behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from waiting import wait_for

from repairbot.kube.intake import Intake
from repairbot.model import (
    ANNOTATION_CANCEL_REQUESTED_BY,
    GROUP,
    LABEL_STATE,
    PLURAL,
    VERSION,
    Action,
    Finding,
    GpuRef,
    Source,
)
from repairbot.operator.main import build_operator, run_kopf
from repairbot.policy import parse_policy


@pytest.fixture
def operator(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> Iterator[None]:
    """gpu-0 out of service (cordoned by someone) and a budget of one: any new repair queues."""
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    for node in ("gpu-0", "gpu-1", "gpu-2"):
        apiserver.server.create_object(kube_objects.gpu_node(node))
    client.CoreV1Api(api).patch_node("gpu-0", {"spec": {"unschedulable": True}})
    parts = build_operator(api, parse_policy({"budget": {"maxUnavailable": 1}}), namespace="repairbot")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_kopf, args=(parts, stop, ready), name="operator", daemon=True)
    thread.start()
    assert ready.wait(20), "the operator did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(20)


def _repairs(api: client.ApiClient, node: str) -> list[dict[str, Any]]:
    return Intake(api).repairs_of(node)


def _label(api: client.ApiClient, node: str) -> str | None:
    return (client.CoreV1Api(api).read_node(node).metadata.labels or {}).get(LABEL_STATE)


@pytest.mark.timeout(90)
def test_the_operators_own_faulty_tag_on_a_queued_alert_repair_opens_no_second_repair(
    operator: None, api: client.ApiClient
) -> None:
    finding = Finding("xid-79", "Xid 79", Action.REBOOT, gpu=GpuRef(index=1), source=Source.ALERTMANAGER)
    opened = Intake(api).report("gpu-1", [finding], source=Source.ALERTMANAGER)
    wait_for(lambda: _label(api, "gpu-1") == "faulty", message="the operator to tag the queued repair's node")
    client.CoreV1Api(api).patch_node("gpu-1", {"metadata": {"labels": {"example.com/touched": "1"}}})  # news
    time.sleep(2)  # every node event the tag and the touch caused has been handled

    [repair] = _repairs(api, "gpu-1")
    assert repair["metadata"]["name"] == opened.name and repair["status"]["phase"] == "Pending"
    assert [f["source"] for f in repair["spec"]["findings"]] == ["alertmanager"]  # no "labelled faulty by hand"

    cancel = {"metadata": {"annotations": {ANNOTATION_CANCEL_REQUESTED_BY: "alice"}}}
    client.CustomObjectsApi(api).patch_cluster_custom_object(GROUP, VERSION, PLURAL, opened.name, cancel)
    wait_for(lambda: _label(api, "gpu-1") is None, message="the cancelled repair's tag taken off")
    time.sleep(2)
    [repair] = _repairs(api, "gpu-1")  # the label gone with its repair: no manual repair of a healthy node
    assert repair["status"]["phase"] == "Cancelled"


@pytest.mark.timeout(90)
def test_a_humans_faulty_label_still_opens_one_manual_repair(operator: None, api: client.ApiClient) -> None:
    client.CoreV1Api(api).patch_node("gpu-2", {"metadata": {"labels": {LABEL_STATE: "faulty"}}})
    [repair] = wait_for(lambda: _repairs(api, "gpu-2"), message="the manual repair the label asks for")
    assert repair["spec"]["source"] == "manual"
    wait_for(lambda: (_repairs(api, "gpu-2")[0].get("status") or {}).get("phase") == "Pending", message="queued")
    time.sleep(2)
    assert len(_repairs(api, "gpu-2")) == 1 and _label(api, "gpu-2") == "faulty"
