"""The CRD is the wire contract; model.py is the Python view. They must name the same things."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pytest

from repairbot.contract import AGENT_REQUEST_ACTIONS, AgentResult
from repairbot.model import (
    API_VERSION,
    KIND,
    PLURAL,
    SHORT_NAME,
    Action,
    Finding,
    GpuRef,
    Phase,
    SignalKind,
    Source,
    repair_name,
    strongest,
)
from repairbot_sim.crd import load_crd


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd()


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_names_match(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    assert f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}" == API_VERSION
    assert names["kind"] == KIND
    assert names["plural"] == PLURAL
    assert SHORT_NAME in names["shortNames"]
    assert crd["spec"]["scope"] == "Cluster"
    assert "status" in crd["spec"]["versions"][0]["subresources"]


def test_phase_enum_matches(crd: dict[str, Any]) -> None:
    status = _schema(crd)["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [p.value for p in Phase]


def test_action_enums_match(crd: dict[str, Any]) -> None:
    schema = _schema(crd)
    expected = [a.value for a in Action]
    assert schema["properties"]["status"]["properties"]["action"]["enum"] == expected
    assert schema["properties"]["spec"]["properties"]["requestedAction"]["enum"] == expected
    finding = schema["properties"]["spec"]["properties"]["findings"]["items"]["properties"]
    assert finding["action"]["enum"] == expected


def test_source_enum_matches(crd: dict[str, Any]) -> None:
    assert _schema(crd)["properties"]["spec"]["properties"]["source"]["enum"] == [s.value for s in Source]


def test_printer_columns_are_the_documented_ones(crd: dict[str, Any]) -> None:
    columns = [c["name"].upper() for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["NODE", "PHASE", "REASON", "ACTION", "ATTEMPT", "TICKET", "AGE"]


def test_finding_round_trips_through_crd_shape(crd: dict[str, Any]) -> None:
    finding = Finding(
        code="xid-79",
        message="GPU has fallen off the bus",
        action=Action.REBOOT,
        gpu=GpuRef(index=2, uuid="GPU-abc", pci="0000:3a:00.0"),
        xid=79,
        first_seen=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        signal="kmsg",
        signal_kind=SignalKind.EVENT,
    )
    item = finding.to_dict()
    allowed = set(_schema(crd)["properties"]["spec"]["properties"]["findings"]["items"]["properties"])
    assert set(item) <= allowed
    assert Finding.from_dict(item) == finding


def test_a_findings_gpu_with_its_board_serial_fits_the_crd_so_the_api_server_keeps_it(crd: dict[str, Any]) -> None:
    """The emulator (and a real API server) prune fields the schema lacks: the serial must be in it."""
    gpu = GpuRef(index=2, uuid="GPU-abc", pci="0000:3a:00.0", gpu_instance=5, compute_instance=1, serial="16501230")
    finding = _schema(crd)["properties"]["spec"]["properties"]["findings"]["items"]["properties"]
    assert set(gpu.to_dict()) == set(finding["gpu"]["properties"])
    assert len(gpu.to_dict()) == len(fields(GpuRef)), "every GpuRef field has its place in the CRD"
    assert finding["gpu"]["properties"]["serial"]["type"] == "string"


def test_merge_keeps_first_seen_and_counts_up() -> None:
    first = Finding("xid-48", "DBE", Action.GPU_RESET, first_seen=datetime(2026, 1, 1, tzinfo=UTC))
    later = Finding("xid-48", "DBE", Action.REBOOT, first_seen=datetime(2026, 1, 2, tzinfo=UTC))
    first.merge(later)
    assert first.count == 2
    assert first.first_seen == datetime(2026, 1, 1, tzinfo=UTC)
    assert first.last_seen == datetime(2026, 1, 2, tzinfo=UTC)
    assert first.action is Action.REBOOT


def test_signal_kind_enum_matches(crd: dict[str, Any]) -> None:
    finding = _schema(crd)["properties"]["spec"]["properties"]["findings"]["items"]["properties"]
    assert finding["signalKind"]["enum"] == [k.value for k in SignalKind]
    agent = _schema(crd)["properties"]["status"]["properties"]["agent"]["properties"]
    assert agent["signals"]["additionalProperties"]["type"] == "string"


@pytest.mark.parametrize(
    ("first", "then", "named"),
    [
        (("nvml-health", SignalKind.POLLED), ("kmsg", SignalKind.EVENT), ("kmsg", SignalKind.EVENT)),
        (("kmsg", SignalKind.EVENT), ("nvml-health", SignalKind.POLLED), ("kmsg", SignalKind.EVENT)),
        (("nvml-health", SignalKind.POLLED), ("nvml-health", SignalKind.POLLED), ("nvml-health", SignalKind.POLLED)),
        (("", None), ("nvml-health", SignalKind.POLLED), ("nvml-health", SignalKind.POLLED)),
        (("nvml-health", SignalKind.POLLED), ("", None), ("nvml-health", SignalKind.POLLED)),
    ],
)
def test_merge_keeps_the_stickier_signal(
    first: tuple[str, SignalKind | None], then: tuple[str, SignalKind | None], named: tuple[str, SignalKind | None]
) -> None:
    """Once an event has raised a finding, no later poll may clear it: an event outranks a poll."""
    found = Finding("ecc-dbe", "DBE", Action.GPU_RESET, signal=first[0], signal_kind=first[1])
    found.merge(Finding("ecc-dbe", "DBE", Action.GPU_RESET, signal=then[0], signal_kind=then[1]))
    assert (found.signal, found.signal_kind) == named


def test_action_severity_order() -> None:
    assert strongest([Action.NOTIFY, Action.REBOOT, Action.GPU_RESET]) is Action.REBOOT
    assert strongest([]) is Action.NONE
    assert not Action.NOTIFY.is_destructive
    assert Action.GPU_RESET.is_destructive and Action.POWER_CYCLE.is_destructive
    assert not Action.QUARANTINE.is_destructive


def test_repair_name_format() -> None:
    assert repair_name("gpu-node-002", datetime(2026, 11, 22, 19, 5, 3, tzinfo=UTC)) == "gpu-node-002-20261122190503"


def test_terminal_phases() -> None:
    assert Phase.SUCCEEDED.is_terminal and Phase.QUARANTINED.is_terminal
    assert not Phase.BLOCKED.is_terminal and not Phase.DRAINING.is_terminal


def test_the_agent_answer_results_and_request_actions_match_the_crd(crd: dict[str, Any]) -> None:
    status = _schema(crd)["properties"]["status"]["properties"]
    assert status["agent"]["properties"]["result"]["enum"] == [r.value for r in AgentResult]
    assert set(status["request"]["properties"]["action"]["enum"]) >= AGENT_REQUEST_ACTIONS


def test_a_finding_on_a_mig_instance_keeps_its_gpu_and_compute_instance_in_the_crd(crd: dict[str, Any]) -> None:
    """A contained Xid names the MIG instance whose workloads must move; the CRD must not prune it."""
    finding = Finding(
        code="xid-94",
        message="Contained: CE User Channel",
        action=Action.NOTIFY,
        gpu=GpuRef(pci="0000:01:00.0", gpu_instance=5, compute_instance=1),
        xid=94,
        first_seen=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
    )
    item = finding.to_dict()
    gpu_schema = _schema(crd)["properties"]["spec"]["properties"]["findings"]["items"]["properties"]["gpu"]
    assert set(item["gpu"]) <= set(gpu_schema["properties"])
    assert {gpu_schema["properties"][k]["type"] for k in ("gpuInstance", "computeInstance")} == {"integer"}
    assert Finding.from_dict(item) == finding
