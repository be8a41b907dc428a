"""An Xid NVML told first still moves the kernel-log cursor past its line, once intake has the finding."""

from __future__ import annotations

from pathlib import Path

from repairbot.agent.recovery import CursorFile
from repairbot.agent.runner import NodeAgent
from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Action, Finding, GpuRef


class Intake:
    def __init__(self) -> None:
        self.down = False
        self.reports: list[list[Finding]] = []

    def report(self, node: str, findings: list[Finding]) -> None:
        if self.down:
            raise ConnectionError("intake unreachable")
        self.reports.append(findings)


def xid79(*, seq: int | None = None) -> Finding:
    evidence = {EVIDENCE_KMSG_SEQ: str(seq), EVIDENCE_KMSG_BOOT: "boot-1"} if seq is not None else {}
    return Finding("xid-79", "Xid 79", Action.REBOOT, gpu=GpuRef(index=3), xid=79, evidence=evidence)


def test_a_kernel_log_line_that_corroborates_an_nvml_xid_moves_the_cursor_so_a_restart_never_reports_it(
    tmp_path: Path,
) -> None:
    intake = Intake()
    cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    agent = NodeAgent(node="n1", detectors=[], sink=intake, cursor=cursor)
    agent.on_event(xid79(), origin="nvml-events")  # NVML is first: intake hears of the Xid
    agent.on_event(xid79(seq=41), origin="kmsg")  # the same Xid's kernel-log line only corroborates it
    assert len(intake.reports) == 1
    assert cursor.load() == [("boot-1", 41)]  # a restarted agent starts after line 41


def test_the_cursor_waits_while_the_corroborated_finding_has_not_reached_intake(tmp_path: Path) -> None:
    intake = Intake()
    intake.down = True
    cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    agent = NodeAgent(node="n1", detectors=[], sink=intake, cursor=cursor)
    agent.on_event(xid79(), origin="nvml-events")  # queued: intake is down
    agent.on_event(xid79(seq=41), origin="kmsg")
    assert cursor.load() == []  # the line must not be passed while its finding may still be lost
    intake.down = False
    agent.flush()
    assert len(intake.reports) == 1 and cursor.load() == [("boot-1", 41)]


def test_a_corroborating_line_that_names_the_job_is_sent_as_a_corroboration_and_moves_the_cursor(
    tmp_path: Path,
) -> None:
    intake = Intake()
    cursor = CursorFile(tmp_path / "kmsg-cursor.json")
    agent = NodeAgent(node="n1", detectors=[], sink=intake, cursor=cursor)
    agent.on_event(xid79(), origin="nvml-events")
    line = xid79(seq=41)
    line.evidence.update({"pid": "4101", "process": "python3"})
    agent.on_event(line, origin="kmsg")
    assert [[f.count for f in batch] for batch in intake.reports] == [[1], [0]]  # the second counts nothing
    assert [o.job for o in intake.reports[1][0].sightings()] == ["python3[4101]"]
    assert cursor.load() == [("boot-1", 41)]
