"""The agent's start-up recovery and its clean-signal evidence, against the emulated API server (CRD pruning on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from kubernetes import client

from repairbot.agent.recovery import read_recovery
from repairbot.agent.signals import RepairSignalSink
from repairbot.model import (
    EVIDENCE_KMSG_BOOT,
    EVIDENCE_KMSG_SEQ,
    GROUP,
    PLURAL,
    VERSION,
    Action,
    Finding,
    SignalKind,
)

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def gpu_repair(name: str, phase: str, *findings: Finding) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-1"}},
        "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [f.to_dict() for f in findings]},
        "status": {"phase": phase},
    }


def xid(seq: int) -> Finding:
    evidence = {EVIDENCE_KMSG_SEQ: str(seq), EVIDENCE_KMSG_BOOT: "boot-a"}
    return Finding("xid-79", "Xid 79", Action.REBOOT, signal="kmsg", signal_kind=SignalKind.EVENT, evidence=evidence)


def stored(kube_api: client.ApiClient, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(kube_api).get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    return found


def test_recovery_reads_back_signal_names_and_kernel_log_marks_through_the_crd(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    apiserver.server.create_object(gpu_repair("gpu-1-old", "Succeeded", xid(4)))
    apiserver.server.create_object(gpu_repair("gpu-1-now", "Blocked", xid(11)))
    recovery = read_recovery(kube_api, "gpu-1")
    (finding,) = recovery.findings
    assert (finding.code, finding.signal, finding.signal_kind) == ("xid-79", "kmsg", SignalKind.EVENT)  # not pruned
    assert sorted(recovery.marks) == [("boot-a", 4), ("boot-a", 11)]


def polled(code: str, signal: str) -> Finding:
    return Finding(code, code, Action.GPU_RESET, signal=signal, signal_kind=SignalKind.POLLED)


def test_clean_signals_are_written_once_per_change_and_a_dirty_signal_is_removed(
    apiserver: Any, kube_api: client.ApiClient
) -> None:
    apiserver.server.create_object(
        gpu_repair("gpu-1-now", "Cordoned", polled("row-remap-pending", "nvml-health"), polled("ib-down", "infiniband"))
    )
    apiserver.server.create_object(gpu_repair("gpu-1-xid", "Cordoned", xid(1)))

    def active() -> list[dict[str, Any]]:
        return [stored(kube_api, "gpu-1-now"), stored(kube_api, "gpu-1-xid")]

    sink = RepairSignalSink(kube_api, active)
    clean = {"nvml-health": T0, "infiniband": T0 + timedelta(seconds=1), "gpu-count": T0}

    httpx.delete(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file)
    sink.publish("gpu-1", clean)
    sink.publish("gpu-1", clean)  # nothing changed: no second write
    signals = stored(kube_api, "gpu-1-now")["status"]["agent"]["signals"]
    # only the signals behind the repair's own polled findings; the Xid repair gets nothing (no poll clears it)
    assert signals == {"nvml-health": "2026-11-22T10:00:00.000Z", "infiniband": "2026-11-22T10:00:01.000Z"}
    assert "agent" not in stored(kube_api, "gpu-1-xid")["status"]
    counted = httpx.get(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file).json()
    assert sum(r["count"] for r in counted["requests"] if r["verb"] == "patch") == 1

    sink.publish("gpu-1", {"infiniband": T0 + timedelta(seconds=1)})  # nvml-health saw a fault again
    assert stored(kube_api, "gpu-1-now")["status"]["agent"]["signals"] == {"infiniband": "2026-11-22T10:00:01.000Z"}
