"""An injected fault flows through the real detectors, intake and executor to the API server."""

from __future__ import annotations

import time
from typing import Any

from e2e_support import eventually, gpu_condition, inject, repairs_of
from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.background import BackgroundSandbox


def test_xid79_opens_a_repair_with_reboot_and_marks_the_node(
    sandbox: BackgroundSandbox, kube: client.ApiClient
) -> None:
    # Agents report healthy nodes too, before any fault.
    eventually(lambda: (gpu_condition(kube, "gpu-node-002") or {}).get("status") == "True")

    inject(sandbox, "gpu-node-002", "xid:79", gpu=3)

    (repair,) = eventually(lambda: repairs_of(kube, "gpu-node-002"))
    assert repair["metadata"]["name"].startswith("gpu-node-002-")
    assert repair["spec"]["nodeName"] == "gpu-node-002"
    assert repair["spec"]["source"] == "agent"
    xid79 = next(f for f in repair["spec"]["findings"] if f["code"] == "xid-79")
    assert xid79["action"] == "reboot"
    assert xid79["xid"] == 79
    assert xid79["gpu"]["index"] == 3 and xid79["gpu"]["pci"] == "0000:5d:00.0"
    assert xid79["count"] == 1  # NVML and the kernel log saw one fault, not two

    condition = eventually(lambda: (c := gpu_condition(kube, "gpu-node-002")) and c["status"] == "False" and c)
    assert condition["reason"] == "Xid79"
    assert not repairs_of(kube, "gpu-node-001")  # nothing happened elsewhere


def test_application_xid_opens_no_repair(sandbox: BackgroundSandbox, kube: client.ApiClient) -> None:
    inject(sandbox, "gpu-node-001", "xid:13", gpu=0)
    inject(sandbox, "gpu-node-003", "xid:48", gpu=1)  # a control: this one must open a repair
    eventually(lambda: repairs_of(kube, "gpu-node-003"))
    assert repairs_of(kube, "gpu-node-001") == []
    assert (gpu_condition(kube, "gpu-node-001") or {}).get("status") == "True"


def test_second_fault_merges_into_the_active_repair(sandbox: BackgroundSandbox, kube: client.ApiClient) -> None:
    inject(sandbox, "gpu-node-000", "xid:48", gpu=1)
    eventually(lambda: repairs_of(kube, "gpu-node-000"))
    inject(sandbox, "gpu-node-000", "row-remap-failure", gpu=1)
    repair = eventually(
        lambda: next(
            (
                r
                for r in repairs_of(kube, "gpu-node-000")
                if {"xid-64", "row-remap-failure"} & {f["code"] for f in r["spec"]["findings"]}
            ),
            None,
        )
    )
    assert len(repairs_of(kube, "gpu-node-000")) == 1
    assert repair["spec"]["findings"][0]["code"] == "xid-48"


def request_action(
    kube: client.ApiClient,
    name: str,
    request_id: str,
    action: str,
    gpu: dict[str, Any] | None = None,
    diag_level: int = 0,
) -> None:
    body: dict[str, Any] = {"status": {"phase": "Remediating", "request": {"id": request_id, "action": action}}}
    if gpu:
        body["status"]["request"]["gpu"] = gpu
    if diag_level:
        body["status"]["request"]["dcgmDiagLevel"] = diag_level
    client.CustomObjectsApi(kube).patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body)


def agent_answer(kube: client.ApiClient, name: str, request_id: str) -> dict[str, Any] | None:
    obj = client.CustomObjectsApi(kube).get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    answer = (obj.get("status") or {}).get("agent") or {}
    if answer.get("requestId") == request_id and answer.get("result") not in (None, "running"):
        return dict(answer)
    return None


def test_reboot_request_succeeds_when_boot_id_changes_then_validation_passes(
    sandbox: BackgroundSandbox, kube: client.ApiClient
) -> None:
    inject(sandbox, "gpu-node-002", "fall-off-bus", gpu=2)
    (repair,) = eventually(lambda: repairs_of(kube, "gpu-node-002"))
    name = repair["metadata"]["name"]
    boot_before = sandbox.sandbox.agents.members["gpu-node-002"].node.boot_id  # type: ignore[union-attr]

    request_action(kube, name, "req-reboot-1", "reboot")
    answer = eventually(lambda: agent_answer(kube, name, "req-reboot-1"))
    assert answer["result"] == "succeeded"
    assert answer["bootId"] == boot_before
    assert boot_before in answer["message"] and "→" in answer["message"]

    request_action(kube, name, "req-validate-1", "validate", diag_level=2)
    verdict = eventually(lambda: agent_answer(kube, name, "req-validate-1"))
    assert verdict["result"] == "succeeded", verdict
    assert "dcgmi diag -r 2 passed" in verdict["message"]
    eventually(lambda: (gpu_condition(kube, "gpu-node-002") or {}).get("status") == "True")


def test_validation_fails_while_hardware_stays_broken(sandbox: BackgroundSandbox, kube: client.ApiClient) -> None:
    node = sandbox.sandbox.agents.members["gpu-node-001"].node  # type: ignore[union-attr]
    node.inject("row-remap-failure", 4, persistent=True)
    (repair,) = eventually(lambda: repairs_of(kube, "gpu-node-001"))
    name = repair["metadata"]["name"]
    request_action(kube, name, "req-reset-1", "gpu-reset", {"index": 4})
    eventually(lambda: agent_answer(kube, name, "req-reset-1"))
    request_action(kube, name, "req-validate-1", "validate")
    verdict = eventually(lambda: agent_answer(kube, name, "req-validate-1"))
    assert verdict["result"] == "failed"
    assert "row-remap-failure" in verdict["message"]


def test_a_request_is_performed_once(sandbox: BackgroundSandbox, kube: client.ApiClient) -> None:
    member = sandbox.sandbox.agents.members["gpu-node-003"]  # type: ignore[union-attr]
    inject(sandbox, "gpu-node-003", "xid:79", gpu=0)
    (repair,) = eventually(lambda: repairs_of(kube, "gpu-node-003"))
    name = repair["metadata"]["name"]
    boots_before = member.node.boot_count
    request_action(kube, name, "req-once", "reboot")
    eventually(lambda: agent_answer(kube, name, "req-once"))
    time.sleep(1.5)  # several executor resyncs and watch events later …
    member.connected.executor.reconcile()
    assert member.node.boot_count == boots_before + 1
