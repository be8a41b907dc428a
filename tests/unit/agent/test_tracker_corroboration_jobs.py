"""One Xid, two sources: NVML's event and the kernel-log line are one occurrence, and it names the job.

NVML usually tells first and knows no job; the kernel-log line that corroborates it a moment later is the
only source of ``name[pid]``. An escalation rule that counts distinct jobs needs that job on the occurrence
the repair already holds, never a second occurrence (a plain count rule would count the Xid twice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from repairbot.agent.runner import compact_outbox
from repairbot.agent.tracker import FindingTracker
from repairbot.kube.intake import merge_findings
from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Action, Finding, GpuRef

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
PCI = "0000:5d:00.0"


def nvml_xid13(at: datetime = T0) -> Finding:
    gpu = GpuRef(index=3, uuid="GPU-3", pci=PCI, serial="1650123012345")
    return Finding("xid-13", "Xid 13", Action.NONE, gpu=gpu, xid=13, first_seen=at, last_seen=at)


def kmsg_xid13(seq: int, pid: int, at: datetime = T0) -> Finding:
    evidence = {EVIDENCE_KMSG_SEQ: str(seq), EVIDENCE_KMSG_BOOT: "boot-1", "pid": str(pid), "process": "python3"}
    gpu = GpuRef(index=3, pci=PCI)
    return Finding("xid-13", "Xid 13 (line)", Action.NONE, gpu=gpu, xid=13, first_seen=at, last_seen=at,
                   evidence=evidence)  # fmt: skip


def tracker_at(now: list[float]) -> FindingTracker:
    return FindingTracker(clock=lambda: now[0], counted_codes=("xid-13",))


def test_nvml_first_then_the_kernel_log_line_is_one_occurrence_with_the_job() -> None:
    now = [100.0]
    tracker = tracker_at(now)
    assert tracker.observe_event(nvml_xid13(), "nvml-events")
    first = merge_findings([], tracker.take_outbox())  # intake opened the repair, jobless
    now[0] += 0.4
    assert not tracker.observe_event(kmsg_xid13(41, 4101, T0 + timedelta(milliseconds=400)), "kmsg")
    (stored,) = merge_findings(first, tracker.take_outbox())
    assert stored["count"] == 1
    assert stored["occurrences"] == [{"at": "2026-12-01T10:00:00.000Z", "job": "python3[4101]", "ref": "boot-1:41"}]
    assert stored["evidence"][EVIDENCE_KMSG_SEQ] == "41"  # a restarted agent's cursor starts after the line
    assert stored["gpu"]["serial"] == "1650123012345"
    # The agent's own record learned the job too.
    (active,) = tracker.active()
    assert [o.job for o in active.sightings()] == ["python3[4101]"]


def test_both_reaching_intake_in_one_batch_is_one_occurrence_with_the_job() -> None:
    """Intake was away: the finding and its corroboration wait together, compacted, and still make one."""
    now = [100.0]
    tracker = tracker_at(now)
    tracker.observe_event(nvml_xid13(), "nvml-events")
    now[0] += 0.4
    tracker.observe_event(kmsg_xid13(41, 4101), "kmsg")
    pending = tracker.take_outbox()
    for batch in (pending, compact_outbox(pending)):
        (stored,) = merge_findings([], batch)
        assert stored["count"] == 1
        assert [o["job"] for o in stored["occurrences"]] == ["python3[4101]"]


def test_kernel_log_first_then_nvml_is_one_occurrence_with_the_job() -> None:
    now = [100.0]
    tracker = tracker_at(now)
    assert tracker.observe_event(kmsg_xid13(41, 4101), "kmsg")
    now[0] += 0.4
    assert not tracker.observe_event(nvml_xid13(T0 + timedelta(milliseconds=400)), "nvml-events")
    (stored,) = merge_findings([], tracker.take_outbox())
    assert stored["count"] == 1
    (occurrence,) = Finding.from_dict(stored).sightings()
    assert (occurrence.job, occurrence.ref) == ("python3[4101]", "boot-1:41")


def test_a_corroboration_sent_again_counts_nothing() -> None:
    now = [100.0]
    tracker = tracker_at(now)
    tracker.observe_event(nvml_xid13(), "nvml-events")
    stored = merge_findings([], tracker.take_outbox())
    now[0] += 0.4
    tracker.observe_event(kmsg_xid13(41, 4101), "kmsg")
    update = tracker.take_outbox()
    once = merge_findings(stored, update)
    twice = merge_findings(once, update)  # the reply was lost: the agent sends it again
    assert twice == once
    assert once[0]["count"] == 1 and len(once[0]["occurrences"]) == 1


def test_a_corroboration_without_a_job_sends_nothing() -> None:
    now = [100.0]
    tracker = tracker_at(now)
    tracker.observe_event(nvml_xid13(), "nvml-events")
    tracker.take_outbox()
    line = kmsg_xid13(41, 4101)
    del line.evidence["pid"]
    now[0] += 0.4
    assert not tracker.observe_event(line, "kmsg")
    assert tracker.take_outbox() == []


def test_a_corroboration_of_a_finding_intake_never_heard_sends_nothing() -> None:
    now = [100.0]
    tracker = FindingTracker(clock=lambda: now[0])  # no rule counts xid-13: intake never hears of it
    assert not tracker.observe_event(nvml_xid13(), "nvml-events")
    now[0] += 0.4
    assert not tracker.observe_event(kmsg_xid13(41, 4101), "kmsg")
    assert tracker.take_outbox() == []


def test_a_late_kernel_log_line_is_a_sighting_of_its_own() -> None:
    now = [100.0]
    tracker = tracker_at(now)
    tracker.observe_event(nvml_xid13(), "nvml-events")
    now[0] += 60
    assert tracker.observe_event(kmsg_xid13(41, 4101, T0 + timedelta(seconds=60)), "kmsg")
    (stored,) = merge_findings([], tracker.take_outbox())
    assert stored["count"] == 2
