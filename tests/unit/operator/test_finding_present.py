"""A finding clears only on positive evidence: a clean poll of the very signal that raised it, after it was seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.machine import RepairView
from repairbot.model import Action, Finding, SignalKind, Source, format_time
from repairbot.operator.facts import finding_present

SEEN = datetime(2026, 11, 22, 10, tzinfo=UTC)
LATER = format_time(SEEN + timedelta(seconds=10))
EARLIER = format_time(SEEN - timedelta(seconds=10))


def polled(code: str = "row-remap-pending", signal: str = "nvml-health") -> Finding:
    return Finding(code, code, Action.GPU_RESET, first_seen=SEEN, signal=signal, signal_kind=SignalKind.POLLED)


def event(code: str = "xid-79", signal: str = "kmsg") -> Finding:
    return Finding(code, code, Action.REBOOT, first_seen=SEEN, signal=signal, signal_kind=SignalKind.EVENT)


def judged(findings: list[Finding], signals: dict[str, str] | None) -> bool | None:
    obj: dict[str, Any] = {
        "metadata": {"name": "gpu-node-001-20261122100000"},
        "spec": {"nodeName": "gpu-node-001", "findings": [f.to_dict() for f in findings]},
        "status": {"phase": "Cordoned", "detectedAt": format_time(SEEN)},
    }
    if signals is not None:
        obj["status"]["agent"] = {"signals": signals}
    return finding_present(obj, RepairView.from_object(obj))


def alert() -> Finding:
    found = polled()
    found.source = Source.GRAFANA
    return found


def seen_again() -> Finding:
    found = polled()
    found.last_seen = SEEN + timedelta(seconds=20)  # it came back after the clean streak began
    return found


@pytest.mark.parametrize(
    ("findings", "signals", "expected"),
    [
        ([polled()], {"nvml-health": LATER}, False),  # the very signal, clean since after the finding
        ([polled()], {"nvml-health": EARLIER}, None),  # clean since before: that poll predates the fault
        ([polled()], {"infiniband": LATER}, None),  # another signal's clean poll says nothing
        ([polled()], {}, None),  # the signal is not clean now
        ([polled()], None, None),  # an agent that has published nothing (e.g. just restarted)
        ([seen_again()], {"nvml-health": LATER}, None),
        ([event()], {"kmsg": LATER, "nvml-health": LATER}, None),  # an Xid event has no poll to clear it
        ([polled(), event()], {"nvml-health": LATER}, None),  # every finding must clear
        ([polled(), polled("ib-port-down", "infiniband")], {"nvml-health": LATER, "infiniband": LATER}, False),
        ([alert()], {"nvml-health": LATER}, None),  # an alert's finding is not the agent's to clear
        ([Finding("manual", "fans loud", Action.NOTIFY, source=Source.MANUAL)], {"": LATER}, None),
        ([Finding("xid-79", "legacy", Action.REBOOT, first_seen=SEEN)], {"": LATER}, None),  # names no signal
        ([], {"nvml-health": LATER}, None),
    ],
)
def test_a_finding_clears_only_on_a_clean_poll_of_its_own_signal(
    findings: list[Finding], signals: dict[str, str] | None, expected: bool | None
) -> None:
    assert judged(findings, signals) is expected


def test_a_healthy_gpu_condition_clears_nothing() -> None:
    """What a restarted agent wrote before it knew better (``GPUHealthy=True``) is not evidence."""
    obj: dict[str, Any] = {
        "metadata": {"name": "r"},
        "spec": {"nodeName": "n", "findings": [event().to_dict()]},
        "status": {"phase": "Blocked", "detectedAt": format_time(SEEN)},
    }
    assert finding_present(obj, RepairView.from_object(obj)) is None
