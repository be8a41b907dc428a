"""A restarted agent takes back what the last one knew, and says Unknown — never True — until it has looked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from repairbot.agent.recovery import CursorFile, Recovery, recovery_from
from repairbot.agent.runner import NodeAgent
from repairbot.detectors.base import DetectorReport
from repairbot.kube.nodes import NodeCondition
from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Action, Finding, SignalKind


def kmsg_finding(code: str, seq: int, boot: str = "boot-a") -> Finding:
    return Finding(
        code, code, Action.REBOOT, signal="kmsg", signal_kind=SignalKind.EVENT,
        evidence={EVIDENCE_KMSG_SEQ: str(seq), EVIDENCE_KMSG_BOOT: boot},
    )  # fmt: skip


def repair(phase: str | None, *findings: Finding, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"gpu-node-001-{phase}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    return {"metadata": meta, "spec": {"findings": [f.to_dict() for f in findings]}, "status": {"phase": phase}}


def test_recovery_takes_the_active_repairs_findings_and_every_repairs_kernel_log_marks() -> None:
    recovery = recovery_from(
        [
            repair("Succeeded", kmsg_finding("xid-48", 7)),
            repair("Blocked", kmsg_finding("xid-79", 12)),
            repair("Cordoned", kmsg_finding("xid-31", 30), deleting=True),
        ]
    )
    assert [f.code for f in recovery.findings] == ["xid-79"]
    assert (recovery.findings[0].signal, recovery.findings[0].signal_kind) == ("kmsg", SignalKind.EVENT)
    assert sorted(recovery.marks) == [("boot-a", 7), ("boot-a", 12), ("boot-a", 30)]


def test_a_quarantined_nodes_standing_faults_come_back_while_it_stays_quarantined() -> None:
    older = repair("Quarantined", kmsg_finding("xid-48", 3))
    older["metadata"]["creationTimestamp"] = "2026-11-20T10:00:00Z"
    latest = repair("Quarantined", kmsg_finding("xid-64", 9))
    latest["metadata"].update(name="gpu-node-001-latest", creationTimestamp="2026-11-22T10:00:00Z")
    done = repair("Succeeded", kmsg_finding("xid-79", 1))
    assert [f.code for f in recovery_from([latest, older, done], quarantined=True).findings] == ["xid-64"]
    assert recovery_from([latest, older, done], quarantined=False).findings == ()  # released: history only


def test_a_finding_without_kernel_log_evidence_leaves_no_mark() -> None:
    plain = Finding("row-remap-pending", "x", Action.GPU_RESET, signal="nvml-health", signal_kind=SignalKind.POLLED)
    odd = kmsg_finding("xid-79", 1)
    odd.evidence[EVIDENCE_KMSG_SEQ] = "not-a-number"
    assert recovery_from([repair("Pending", plain, odd)]).marks == ()


def test_the_cursor_file_keeps_the_highest_mark_per_boot(tmp_path: Path) -> None:
    cursor = CursorFile(tmp_path / "state" / "kmsg-cursor.json")
    assert cursor.load() == []
    assert cursor.advance([("boot-a", 5), ("boot-a", 3)])
    assert not cursor.advance([("boot-a", 4)])  # behind the saved mark: nothing to write
    assert cursor.advance([("boot-b", 1)])
    again = CursorFile(tmp_path / "state" / "kmsg-cursor.json")  # a new agent process
    assert sorted(again.load()) == [("boot-a", 5), ("boot-b", 1)]


def test_the_cursor_file_keeps_only_the_last_few_boots(tmp_path: Path) -> None:
    cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    for boot in range(10):
        cursor.advance([(f"boot-{boot}", 1)])
    assert [boot for boot, _ in CursorFile(tmp_path / "kmsg-cursor.json").load()] == [f"boot-{b}" for b in range(6, 10)]


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"boot-a": "seven", "boot-b": true}', "\udcff"])
def test_a_garbled_cursor_file_reads_as_empty(tmp_path: Path, garbage: str) -> None:
    path = tmp_path / "kmsg-cursor.json"
    path.write_bytes(garbage.encode("utf-8", "surrogateescape"))
    assert CursorFile(path).load() == []


# --- the runner's start-up --------------------------------------------------------------------------------


@dataclass
class CleanDetector:
    name: str = "nvml-health"

    def poll(self) -> DetectorReport:
        return DetectorReport(self.name)


@dataclass
class KernelLog:
    """A resumable event source that never yields; ``caught_up`` is set by the test."""

    name: str = "kmsg"
    caught_up: bool = False
    marks: list[tuple[str, int]] = field(default_factory=list)

    def resume_after(self, marks: Iterable[tuple[str, int]]) -> None:
        self.marks.extend(marks)

    def events(self, stop: threading.Event) -> Iterator[Finding]:
        stop.wait()
        return iter(())


@dataclass
class Conditions:
    seen: list[NodeCondition] = field(default_factory=list)

    def set_condition(self, node: str, condition: NodeCondition) -> None:
        self.seen.append(condition)


@dataclass
class Intake:
    fail: bool = False
    got: list[Finding] = field(default_factory=list)

    def report(self, node: str, findings: list[Finding]) -> None:
        if self.fail:
            raise ConnectionError("API server down")
        self.got.extend(findings)


def test_an_agent_is_unknown_until_its_first_complete_poll_after_recovery() -> None:
    log = KernelLog()
    conditions = Conditions()
    agent = NodeAgent("gpu-node-001", [CleanDetector()], [log], conditions=conditions, recover=Recovery)
    assert agent.poll_once().condition.reason == "AgentStarting"  # not recovered yet
    assert agent.recover_once()
    assert agent.poll_once().condition.reason == "AgentStarting"  # the kernel log is not read up to now yet
    log.caught_up = True
    assert agent.poll_once().condition.status == "True"
    assert agent.ready
    assert [c.status for c in conditions.seen] == ["Unknown", "True"]  # never True before the look was complete


def test_a_failed_recovery_is_retried_and_the_node_stays_unknown() -> None:
    attempts: list[int] = []

    def recover() -> Recovery:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("API server down")
        return Recovery(findings=(kmsg_finding("xid-79", 4),), marks=(("boot-a", 4),))

    log = KernelLog(caught_up=True)
    agent = NodeAgent("gpu-node-001", [CleanDetector()], [log], recover=recover)
    assert not agent.recover_once()
    assert agent.poll_once().condition.status == "Unknown"
    assert agent.recover_once()
    report = agent.poll_once()
    assert (report.condition.status, report.condition.reason) == ("False", "Xid79")  # the fault came back
    assert log.marks == [("boot-a", 4)]


def test_the_kernel_log_reader_resumes_after_the_repairs_and_the_state_files_marks(tmp_path: Path) -> None:
    cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    cursor.advance([("boot-a", 40)])
    log = KernelLog()
    agent = NodeAgent("gpu-node-001", [CleanDetector()], [log], recover=lambda: Recovery(marks=(("boot-a", 12),)))
    agent.cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    agent.recover_once()
    assert sorted(log.marks) == [("boot-a", 12), ("boot-a", 40)]


def test_the_kernel_log_cursor_moves_only_once_intake_has_the_findings(tmp_path: Path) -> None:
    intake = Intake(fail=True)
    agent = NodeAgent("gpu-node-001", [CleanDetector()], [], sink=intake)
    agent.cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    agent.on_event(kmsg_finding("xid-79", 9), "kmsg")
    assert not (tmp_path / "kmsg-cursor.json").exists()  # intake refused: a restart must read line 9 again
    intake.fail = False
    agent.flush()
    assert [f.code for f in intake.got] == ["xid-79"]
    assert json.loads((tmp_path / "kmsg-cursor.json").read_text()) == {"boot-a": 9}
