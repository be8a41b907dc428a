"""The quarantine's pure rules: one history line per merged finding count, and who releases it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from repairbot.model import Action, Finding, GpuRef, NodeState
from repairbot.operator.quarantine import BY_LABEL, STEP_FINDING_WHILE_QUARANTINED, finding_entries, release_reason

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def xid79(count: int, *, stamped: bool = True) -> Finding:
    evidence = {"whileQuarantined": str(count)} if stamped else {}
    return Finding(code="xid-79", message="GPU has fallen off the bus", action=Action.REBOOT,
                   gpu=GpuRef(pci="0000:3b:00.0"), count=count, evidence=evidence)  # fmt: skip


def test_each_merged_count_is_one_history_line_written_once() -> None:
    [entry] = finding_entries("gpu-7", [xid79(1)], [], NOW)
    assert entry["step"] == STEP_FINDING_WHILE_QUARANTINED and entry["outcome"] == "noted"
    assert "xid-79 on GPU 0000:3b:00.0 while node gpu-7 is quarantined" in entry["message"]
    assert "repairbot release gpu-7" in entry["message"]
    assert finding_entries("gpu-7", [xid79(1)], [entry], NOW) == []  # reconciled again: nothing new
    [again] = finding_entries("gpu-7", [xid79(2)], [entry], NOW)  # the same Xid once more
    assert again["finding"] != entry["finding"]


def test_findings_from_before_the_quarantine_write_nothing() -> None:
    assert finding_entries("gpu-7", [xid79(3, stamped=False)], [], NOW) == []


def repair(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "gpu-7-1", "annotations": annotations or {}}, "status": {"phase": "Quarantined"}}


@pytest.mark.parametrize(
    ("obj", "state", "exists", "expected"),
    [
        (repair(), NodeState.QUARANTINED, True, None),
        (repair({"repairbot.io/released-by": "alice"}), NodeState.QUARANTINED, True, "alice"),
        (repair(), None, True, BY_LABEL),
        (repair(), NodeState.FAULTY, True, BY_LABEL),
        (repair({"repairbot.io/released-by": "alice"}), None, False, None),
    ],
    ids=["held", "cli", "label-removed", "label-changed", "node-gone"],
)
def test_who_releases_a_quarantine(
    obj: dict[str, Any], state: NodeState | None, exists: bool, expected: str | None
) -> None:
    assert release_reason(obj, state, exists) == expected
